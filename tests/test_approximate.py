"""The approximate mode (mean-field ADVI): its PSIS diagnostic passes an approximation that
is right and fails one that is wrong, and its posterior is labelled approximate everywhere."""

import json
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
from conftest import make_project

from scsurvey.inference.approximate import PSIS_K_MAX, fit_advi
from scsurvey.inference.diagnostics import diagnose, is_approximate

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_full.nc"


def gaussian_model(rho: float) -> pm.Model:
    """A two-dimensional Gaussian posterior with correlation ``rho``."""
    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(2), cov=np.array([[1.0, rho], [rho, 1.0]]))
    return model


@pytest.mark.parametrize(("rho", "usable"), [(0.0, True), (0.999, False)])
def test_psis_passes_a_right_approximation_and_fails_a_wrong_one(rho, usable):
    """Independent Gaussians are what mean-field ADVI represents exactly: k-hat at most 0.27
    over 8 seeds (10,000 draws each). At correlation 0.999 its sd along the posterior's major
    axis is 0.03 of the posterior's, and the ratios' true Pareto k is 1 - 0.001 = 0.999; the
    estimate from 10,000 draws ranged 0.72-1.05 over 8 seeds, so the verdict is taken on the
    median of three fits (a median under 0.7 had probability about 0.04 at those rates)."""
    ks, last = [], None
    for seed in (1, 2, 3):
        last, info = fit_advi(gaussian_model(rho), steps=4000, draws=10000, seed=seed, progress=False)
        ks.append(info["psis_khat"])
    assert bool(np.median(ks) <= PSIS_K_MAX) is usable, ks
    assert is_approximate(last)
    diag = diagnose(last)
    assert diag.psis_khat == pytest.approx(ks[-1]) and diag.ok is bool(ks[-1] <= PSIS_K_MAX)
    if not diag.ok:
        assert "PSIS k-hat" in diag.failures[0] and "fit with NUTS" in diag.failures[0]
    if usable:  # and the draws are the posterior's: sds 1 within the optimiser's noise
        # (Monte Carlo error of 10,000 draws is 0.007; 4,000 noisy Adam steps leave about 5%)
        sd = last.posterior["x"].std(("chain", "draw")).values
        np.testing.assert_allclose(sd, 1.0, atol=0.1)


def test_the_headline_names_an_approximate_posterior_first(codebook):
    import arviz as az
    import pandas as pd

    from scsurvey.posterior import summaries
    from scsurvey.report.html import headline

    idata = az.from_netcdf(FIXTURE)
    support = summaries.support_table(idata, codebook)
    for ok, word in ((True, "usable"), (False, "not usable")):
        text = headline(support, None, codebook, ok, pd.DataFrame(), True, "mean-field ADVI")
        assert text.startswith(f"An approximate posterior (mean-field ADVI), {word} by its PSIS diagnostic.")
        assert "Convergence diagnostics of the approximation" in text
    assert "approximate" not in headline(support, None, codebook, True, pd.DataFrame(), True)


@pytest.mark.slow
def test_an_approximate_fit_is_labelled_in_the_file_run_json_and_report(tmp_path, small_twin):
    from scsurvey.core.paths import model_paths
    from scsurvey.report.html import write_report
    from scsurvey.storage.reader import load_posterior
    from scsurvey.workflows.named_models import fit

    _, csv, _ = small_twin
    project = make_project(tmp_path, csv)
    with pytest.warns(UserWarning, match=r"approximate posterior \(mean-field ADVI\): PSIS k-hat"):
        _, run = fit(
            "full",
            root=project,
            progress=False,
            overrides={"name": "advi", "vi_steps": 2000, "draws": 400, "prior_draws": 50},
        )
    # a hierarchical posterior in ~700 dimensions is beyond mean field: flagged, not hidden
    assert run["rounds"][0]["psis_khat"] > PSIS_K_MAX and not run["diagnostics_ok"]
    stored = load_posterior("full", project)
    assert is_approximate(stored) and stored.posterior.attrs["inference"] == "mean-field ADVI"
    on_disk = json.loads(model_paths("full", project)["run"].read_text())
    assert on_disk["sampler"]["name"] == "advi" and on_disk["diagnostics"]["psis_khat"] > PSIS_K_MAX
    page = write_report("full", root=project).read_text()
    assert 'id="approximate"' in page and "Approximate posterior (mean-field ADVI)" in page
    assert "An approximate posterior (mean-field ADVI), not usable by its PSIS diagnostic." in page


def test_draws_made_in_chunks_are_the_draws_made_at_once(monkeypatch):
    """Large surveys draw from q in chunks (memory); the PSIS ratios must not depend on it
    (one random stream, chunk after chunk) and the stored draws must have q's moments."""
    import scsurvey.inference.approximate as approximate

    model = gaussian_model(0.0)
    with model:
        approx = pm.fit(n=2000, method="advi", random_seed=4, progressbar=False)
    k_whole, ratios_whole = approximate.psis_khat(model, approx, 3000, seed=9)
    whole = approximate.draw(approx, 4000, seed=11)
    monkeypatch.setattr(approximate, "CHUNK_VALUES", 2 * 700)  # chunks of 700 draws of 2 values
    assert approximate.chunk_sizes(4000, 2) == [700] * 5 + [500]
    k_chunked, ratios_chunked = approximate.psis_khat(model, approx, 3000, seed=9)
    np.testing.assert_allclose(ratios_chunked, ratios_whole, rtol=1e-12, atol=1e-12)
    assert k_chunked == pytest.approx(k_whole, abs=1e-9)
    chunked = approximate.draw(approx, 4000, seed=11)
    x = chunked.posterior["x"]
    assert x.sizes["chain"] == 1 and list(x["draw"].values) == list(range(4000))
    assert x.dims == whole.posterior["x"].dims
    mu, sd = approx.mean.eval(), approx.std.eval()
    # 4,000 independent draws: the mean's standard error is sd / 63; 5 standard errors
    np.testing.assert_allclose(x.values.reshape(-1, 2).mean(0), mu, atol=5 * sd.max() / np.sqrt(4000))
    np.testing.assert_allclose(x.values.reshape(-1, 2).std(0), sd, rtol=0.1)
    assert not np.array_equal(x.values, whole.posterior["x"].values)  # other seeds per chunk
