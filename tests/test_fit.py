"""Fitting and storage: wiring with a mocked sampler, a tiny real fit, stale and
interrupted writes."""

import json
import os
import shutil
from pathlib import Path

import arviz as az
import numpy as np
import pytest
from conftest import TINY_SAMPLER, make_project
from pymc.testing import mock_sample_setup_and_teardown

from scsurvey.core import dims
from scsurvey.core.paths import model_paths
from scsurvey.storage.reader import StalePosteriorError, load_posterior
from scsurvey.workflows.named_models import fit

GROUPS = {
    "posterior",
    "posterior_predictive",
    "log_likelihood",
    "sample_stats",
    "observed_data",
    "constant_data",
    "prior",
    "prior_predictive",
    "fit_data",
}

mock_pymc_sample = pytest.fixture(scope="function")(mock_sample_setup_and_teardown)


def test_the_tests_of_the_session_fit_share_one_worker(request, tiny_fit):
    """`make test` runs two pytest-xdist workers with ``--dist loadgroup``: every test of the
    session's fit is in one group, so the fit runs once. pytest-xdist marks the group in the
    node id, and ignores it silently where pytest does not keep that mark (pytest-xdist#1386)."""
    assert request.node.get_closest_marker("xdist_group").args == ("tiny_fit",)
    if request.config.getoption("loadgroup", False):  # set on the workers of --dist loadgroup
        assert request.node.nodeid.endswith("@tiny_fit"), request.node.nodeid


def test_pymc_draws_the_prior_alone(tiny_fit):
    """The prior predictive draws every variable; the posterior predictive is drawn at the
    posterior's own draws (tests/test_predictive.py), never by PyMC redrawing a variable."""
    *_, run = tiny_fit
    (prior_line,) = run["_sampling_log"]
    assert "g_raw" in prior_line and "beta" in prior_line


def test_fit_stores_every_group_with_dims(tiny_fit):
    project, _idata, _run = tiny_fit
    stored = az.from_netcdf(model_paths("full", project)["posterior"])
    assert set(stored.groups()) >= GROUPS
    # the second round started afresh with longer chains (conftest.TINY_SAMPLER)
    draws = json.loads(model_paths("full", project)["run"].read_text())["rounds"][-1]["draws"]
    assert stored.posterior.sizes["chain"] == 2 and stored.posterior.sizes["draw"] == draws > 100
    assert list(stored.posterior.chain.values) == [0, 1]
    assert stored.sample_stats.sizes["chain"] == 2
    assert stored.posterior["beta"].dims == ("chain", "draw", dims.BATTERY, dims.COVARIATE)
    assert stored.posterior_predictive["y"].dims == ("chain", "draw", dims.RESPONDENT, dims.ITEM)
    ll = stored.log_likelihood["y"]
    assert ll.dims == ("chain", "draw", dims.RESPONDENT) and np.all(np.isfinite(ll.values))
    assert (ll.values < 0).all()
    observed = stored.observed_data["y"].values
    assert observed.shape == (240, 13) and (observed == -1).any()
    # the per-respondent log-likelihood is usable for leave-one-respondent-out LOO
    loo = az.loo(stored)
    assert np.isfinite(loo.elpd_loo) and loo.pareto_k.shape == (240,)
    # readable like any other file the user writes (not mkstemp's private 0600)
    umask = os.umask(0)
    os.umask(umask)
    mode = model_paths("full", project)["posterior"].stat().st_mode & 0o777
    assert mode == 0o666 & ~umask, oct(mode)
    # lean: the sampler's unconstrained copies are not stored, draws are float32
    assert not [v for v in stored.posterior.data_vars if v.endswith("__")]
    assert {"sigma_g", "sigma_province", "partial_corr01"} <= set(stored.posterior.data_vars)
    assert stored.posterior["beta"].dtype == np.float32 and ll.dtype == np.float32
    # respondent-level draws: residuals dropped, traits apart at the predictive's draws
    assert not [v for v in stored.posterior.data_vars if "respondent" in stored.posterior[v].dims]
    theta = stored["posterior_respondents"]["theta"]
    rep = stored.posterior_predictive
    assert theta.sizes["draw"] == rep.sizes["draw"] and theta.dtype == np.float32
    np.testing.assert_array_equal(theta["draw"].values, rep["draw"].values)
    assert "z_respondent" not in stored.posterior
    assert not [v for v in stored.prior.data_vars if "respondent" in stored.prior[v].dims]
    assert {"sigma_g", "beta"} <= set(stored.prior.data_vars)
    # and the stored file still loads into the model it came from
    import scsurvey as ss

    assert ss.load(model_paths("full", project)["posterior"]).spec.name == "full"


def test_fit_is_stamped(tiny_fit):
    project, _idata, _run = tiny_fit
    attrs = az.from_netcdf(model_paths("full", project)["posterior"]).posterior.attrs
    for key in (
        "model_name",
        "spec_hash",
        "data_hash",
        "code_hash",
        "versions",
        "sampler",
        "seed",
        "created_at",
        "diagnostics",
    ):
        assert key in attrs, key
    assert attrs["model_name"] == "full" and attrs["sampler"] == "nutpie"
    assert json.loads(attrs["versions"])["pymc"]


def test_run_json_records_sampler_time_and_diagnostics(tiny_fit):
    project, _, _run = tiny_fit
    stored = json.loads(model_paths("full", project)["run"].read_text())
    assert stored["sampler"]["draws"] == 100 and stored["sampler"]["chains"] == 2
    assert stored["wall_time_s"] > 0
    d = stored["diagnostics"]
    for key in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences", "min_bfmi"):
        assert key in d
    # 2 x 100 draws cannot reach bulk ESS 400: the fit must be flagged, not passed
    assert stored["diagnostics_ok"] is False
    assert any("bulk ESS" in f for f in d["failures"])
    # ... after the two rounds it was allowed, each with its own seed; chains of 100 draws
    # cannot average R-hat within the margin, so the second ran longer ones afresh
    rounds = stored["rounds"]
    assert [r["action"] for r in rounds] == ["first", "lengthen"]
    assert [r["chains_total"] for r in rounds] == [2, 2]
    assert rounds[0]["draws"] == 100 < rounds[1]["draws"] <= 400 and rounds[0]["rhat_floor"] > 1.005
    assert len({r["seed"] for r in rounds}) == 2 and not any(r["clean"] for r in rounds)
    assert set(stored["centering"]["gaps"]) <= {w for w in stored["centering"]["gaps"] if 0 <= w <= 1}


def test_the_prior_drawn_beside_sampling_is_the_prior_drawn_alone(tiny_fit):
    """With nutpie on Numba the prior draws run in a thread while the chains sample. They
    depend on the model, the data and the seed alone, so they must equal the draws made
    with nothing else running (stored as float32, hence the tolerance)."""
    from scsurvey.posterior.predictive import prior_draws
    from scsurvey.surveymodel import SurveyModel

    project, _, run = tiny_fit
    assert run["prior_beside_sampling_s"] > 0 and run["kernels_beside_sampling_s"] > 0
    model = SurveyModel.from_spec(model_paths("full", project)["spec"], root=project)
    alone = prior_draws(model.build(), model.data, model.spec)
    stored = load_posterior("full", project)
    for name in ("sigma_g", "beta", "cuts"):
        np.testing.assert_allclose(stored.prior[name].values, alone.prior[name].values, rtol=1e-6)
    np.testing.assert_array_equal(stored.prior_predictive["y"].values, alone.prior_predictive["y"].values)


def test_load_refuses_a_stale_posterior(tiny_fit, tmp_path):
    project, _, _ = tiny_fit
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    assert load_posterior("full", copy).posterior.attrs["model_name"] == "full"

    spec_path = copy / "models" / "full.toml"
    spec_path.write_text(spec_path.read_text().replace("seed = 1103", "seed = 9"))
    with pytest.raises(StalePosteriorError, match=r"spec .*full.toml changed"):
        load_posterior("full", copy)
    spec_path.write_text(spec_path.read_text().replace("seed = 9", "seed = 1103"))

    data_copy = copy / "survey.csv"
    src = (project / "models" / "full.toml").read_text().split('data = "')[1].split('"')[0]
    lines = Path(src).read_text().splitlines()
    lines[1] = lines[1].replace(",5,", ",4,", 1) if ",5," in lines[1] else lines[1].replace(",4,", ",5,", 1)
    data_copy.write_text("\n".join(lines) + "\n")
    spec_path.write_text(spec_path.read_text().replace(src, str(data_copy)))
    with pytest.raises(StalePosteriorError, match=r"data .*survey.csv or codebook .* changed"):
        load_posterior("full", copy)


def test_interrupted_write_keeps_the_previous_posterior(tiny_fit, tmp_path, monkeypatch):
    project, _, _ = tiny_fit
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    target = model_paths("full", copy)["posterior"]
    before = target.read_bytes()

    def broken(idata, filename):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr("scsurvey.storage.files.to_netcdf", broken)
    with pytest.raises(KeyboardInterrupt):
        fit(
            "full",
            root=copy,
            progress=False,
            overrides={**TINY_SAMPLER, "draws": 20, "tune": 20, "rounds": 1},
        )
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_the_writer_compresses_and_reads_back_through_arviz(tmp_path):
    """Every group and value comes back through ``az.from_netcdf``; numeric variables carry
    the project's zlib level and shuffle filter, which ArviZ's own writer does not set."""
    import h5py

    from scsurvey.storage.files import COMPRESSION, to_netcdf

    rng = np.random.default_rng(0)
    idata = az.from_dict(
        posterior={"beta": rng.normal(size=(2, 50, 3)).astype(np.float32)},
        posterior_predictive={"y": rng.integers(0, 5, size=(2, 50, 7)).astype(np.int8)},
        coords={"item": [f"q{i}" for i in range(7)]},
        dims={"y": ["item"]},
    )
    idata.posterior.attrs["model_name"] = "full"
    path = tmp_path / "p.nc"
    to_netcdf(idata, path)
    back = az.from_netcdf(path)
    assert set(back.groups()) == set(idata.groups())
    for group in idata.groups():
        for name, da in idata[group].data_vars.items():
            np.testing.assert_array_equal(back[group][name].values, da.values)
            assert back[group][name].dtype == da.dtype
    assert list(back.posterior_predictive["item"].values) == [f"q{i}" for i in range(7)]
    assert back.posterior.attrs["model_name"] == "full"
    with h5py.File(path) as f:
        for group, name in (("posterior", "beta"), ("posterior_predictive", "y")):
            stored = f[group][name]
            level = COMPRESSION["complevel"]
            assert (stored.compression, stored.compression_opts, stored.shuffle) == ("gzip", level, True)


def test_pymc_sampler_wiring_with_a_mocked_sampler(mock_pymc_sample, small_twin, root, tmp_path):
    _, csv, _ = small_twin
    project = make_project(tmp_path, csv, sampler="pymc")
    idata, run = fit("full", root=project, progress=False, overrides={"draws": 30, "chains": 1})
    assert run["sampler"]["name"] == "pymc"
    assert run["prior_beside_sampling_s"] is None  # PyMC's sampler: drawn after it
    assert run["kernels_beside_sampling_s"] is None
    assert set(idata.groups()) >= GROUPS - {"sample_stats"}  # the mock records no sampler stats
    assert idata.posterior_predictive["y"].shape[-2:] == (240, 13)
    assert load_posterior("full", project).posterior.attrs["sampler"] == "pymc"


def fake_sampler(shift):
    """Draws of one parameter, iid normal; every round's second chain moved by ``shift``."""
    calls = []

    def draw(seed, target_accept, draws):
        calls.append(seed)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((2, draws))
        x[1] += shift
        stats = {"diverging": np.zeros((2, draws), bool), "energy": rng.standard_normal((2, draws))}
        return az.from_dict(posterior={"x": x}, sample_stats=stats)

    return draw, calls


@pytest.mark.parametrize(
    ("shift", "target", "rounds_run", "chains"),
    # a shift of 0.15 sd in one chain of two gives R-hat 1.0019-1.0025 with these seeds:
    # clean, within the default margin 1.005, never within 1.001; iid draws have an R-hat
    # floor far below either, so those rounds add chains. A shift of 3 sd leaves a bulk ESS
    # of a few: each round starts afresh with longer chains.
    [(0.0, 1.005, 1, 2), (3.0, 1.005, 3, 2), (0.15, 1.005, 1, 2), (0.15, 1.001, 3, 6)],
)
def test_sampling_goes_on_in_rounds_until_clean_with_margin_or_out_of_rounds(
    monkeypatch, shift, target, rounds_run, chains
):
    import scsurvey.inference.rounds as fit_module
    from scsurvey.model.spec import parse_spec

    draw, calls = fake_sampler(shift)
    monkeypatch.setattr(fit_module, "_sampler_for", lambda model, spec, progress: draw)
    spec = parse_spec({"sampler": {"chains": 2, "draws": 2000, "rounds": 3, "rhat_target": target}}, "t")
    lines = []
    result = fit_module.sample(None, spec, progress=False, log=lines.append)
    idata, rounds = result.idata, result.rounds
    assert len(calls) == rounds_run == len(rounds)
    assert idata.posterior.sizes["chain"] == chains
    assert len(set(calls)) == rounds_run  # a new seed every round
    if shift == 3.0:
        assert [r["action"] for r in rounds] == ["first", "lengthen", "lengthen"]
        assert [r["draws"] for r in rounds] == [2000, 8000, 32000]
    assert rounds[-1]["clean"] is (shift < 1)
    assert rounds[-1]["margin"] is (shift < 1 and rounds_run == 1)
    assert lines[0].startswith("compiling the model for nutpie") and "a first compile takes" in lines[0]
    first = next(line for line in lines if line.startswith("round 1/"))
    assert first.startswith("round 1/3: 2 chains x 2000 draws")
    if target == 1.001:
        assert "clean, but max R-hat 1.00" in first and "> the margin 1.001" in first


def test_a_round_that_would_overrun_the_budget_is_not_started(monkeypatch):
    import scsurvey.inference.rounds as fit_module
    from scsurvey.model.spec import parse_spec

    draw, calls = fake_sampler(3.0)
    clock = iter(range(0, 1000, 60))  # every perf_counter call advances 60 s
    monkeypatch.setattr(fit_module, "_sampler_for", lambda model, spec, progress: draw)
    monkeypatch.setattr(fit_module.time, "perf_counter", lambda: next(clock))
    spec = parse_spec({"sampler": {"rounds": 5, "budget_s": 100.0}}, "t")
    lines = []
    fit_module.sample(None, spec, progress=False, log=lines.append)
    assert len(calls) == 1 and "budget 100 s would be overrun" in lines[-1]


def test_divergences_restart_at_a_higher_target_accept_and_discard_the_divergent_chains(monkeypatch):
    import scsurvey.inference.rounds as fit_module
    from scsurvey.model.spec import parse_spec

    seen = []

    def draw(seed, target_accept, draws):
        seen.append(target_accept)
        rng = np.random.default_rng(seed)
        diverging = np.zeros((2, 2000), bool)
        diverging[0, :3] = target_accept < 0.95  # divergent until the steps are small enough
        stats = {"diverging": diverging, "energy": rng.standard_normal((2, 2000))}
        return az.from_dict(posterior={"x": rng.standard_normal((2, 2000))}, sample_stats=stats)

    monkeypatch.setattr(fit_module, "_sampler_for", lambda model, spec, progress: draw)
    spec = parse_spec({"sampler": {"target_accept": 0.8, "rounds": 4}}, "t")
    result = fit_module.sample(None, spec, progress=False, log=lambda line: None)
    idata = result.idata
    assert seen == [0.8, 0.9, 0.95]
    assert [r["action"] for r in result.rounds] == ["first", "restart", "restart"]
    assert result.rounds[-1]["clean"] and int(idata.sample_stats["diverging"].sum()) == 0
    assert idata.posterior.sizes["chain"] == 2  # the divergent chains were dropped
    assert fit_module.next_round(0, 0.9) == ("add", 0.9)


def test_the_jax_path_runs_on_the_device_the_spec_names():
    """device = "cpu" puts the log-density and its draws on the CPU and is recorded; "gpu" on
    a machine without one is refused naming the setting (on a GPU machine it must run)."""
    import jax
    import pymc as pm

    import scsurvey.inference.rounds as sampling
    from scsurvey.model.spec import parse_spec

    try:
        assert sampling.use_device("cpu") == "cpu"
        assert jax.jit(lambda x: x + 1)(1.0).devices() == {jax.devices("cpu")[0]}
        with pm.Model() as model:
            pm.Normal("x", 0, 1, shape=3)
        sampler = {"nutpie_backend": "jax", "device": "cpu", "draws": 100, "tune": 100, "chains": 2}
        spec = parse_spec({"sampler": {**sampler, "rounds": 1}}, "t")
        result = sampling.sample(model, spec, progress=False, log=lambda line: None)
        assert result.device == "cpu" and result.idata.posterior["x"].shape == (2, 100, 3)
        if not [d for d in jax.devices() if d.platform == "gpu"]:
            with pytest.raises(RuntimeError, match=r"sampler.device = 'gpu': JAX finds no gpu device"):
                sampling.use_device("gpu")
        else:
            assert sampling.use_device("gpu") == "gpu"
    finally:
        sampling.use_device("auto")


@pytest.mark.parametrize("value", [1.0, np.inf])
def test_a_start_that_is_not_finite_is_refused_naming_the_variable(value):
    """Checked on nutpie's own compiled function; PyMC compiles only to name the culprit."""
    import pymc as pm

    from scsurvey.inference.rounds import check_compiled, compile_nutpie

    with pm.Model() as model:
        y = pm.Data("y_obs", np.array([0.5, value, 1.3]))
        mu = pm.Normal("mu_start_check", 0, 1)
        pm.Normal("y_start_check", mu, 1, observed=y)
    compiled = compile_nutpie(model, "numba", swappable=True)  # one compile for both values
    if np.isfinite(value):
        check_compiled(compiled, model)  # no error
    else:
        with pytest.raises(FloatingPointError, match="y_start_check"):
            check_compiled(compiled, model)


def test_warm_compiles_the_model_and_stores_nothing(tiny_fit):
    from scsurvey.workflows.named_models import warm

    project, *_ = tiny_fit
    models = project / "models"
    before = {p: p.read_bytes() for p in sorted(models.rglob("*")) if p.is_file()}
    timing = warm("full", root=project)
    after = {p: p.read_bytes() for p in sorted(models.rglob("*")) if p.is_file()}
    assert after == before  # no posterior, run.json or lock written or replaced
    for step in ("compile_s", "sample_s", "predictive_s", "integrated_s"):
        assert timing[step] > 0, step
    assert timing["wall_s"] >= timing["compile_s"] + timing["sample_s"]


def ar1_draws(rng, chains, draws, rho=0.86, k=1):
    """Stationary AR(1) chains: bulk ESS about 0.076 per draw at rho = 0.86."""
    from scipy.signal import lfilter

    e = rng.standard_normal((k, chains, draws + 300)) * np.sqrt(1 - rho**2)
    return lfilter([1.0], [1.0, -rho], e, axis=-1)[..., 300:]


@pytest.mark.parametrize(("chains", "draws"), [(4, 1500), (12, 1500), (4, 3000)])
def test_the_rhat_floor_predicts_the_mean_rhat_whatever_the_number_of_chains(chains, draws):
    from scsurvey.inference.rank_diagnostics import rank_diagnostics
    from scsurvey.inference.rounds import rhat_floor

    x = ar1_draws(np.random.default_rng(chains * draws), chains, draws, k=300)
    d = rank_diagnostics(np.moveaxis(x, 0, -1))
    mean_excess = float((d["rhat"] - 1).mean())
    floor_excess = rhat_floor(chains, float(np.median(d["ess_bulk"]))) - 1
    # 300 quantities put the mean's own noise near 5%; 20% leaves room for the approximation
    assert mean_excess == pytest.approx(floor_excess, rel=0.2)


@pytest.mark.parametrize("policy", ["planned", "always add"])
def test_slowly_mixing_chains_are_lengthened_where_more_chains_would_not_help(monkeypatch, policy):
    import scsurvey.inference.rounds as fit_module
    from scsurvey.model.spec import parse_spec

    def draw(seed, target_accept, draws):
        rng = np.random.default_rng(seed)
        x = ar1_draws(rng, 4, draws, k=20)  # 20 quantities of the same slow mixing
        stats = {"diverging": np.zeros((4, draws), bool), "energy": rng.standard_normal((4, draws))}
        return az.from_dict(posterior={"x": np.moveaxis(x, 0, -1)}, sample_stats=stats)

    monkeypatch.setattr(fit_module, "_sampler_for", lambda model, spec, progress: draw)
    if policy == "always add":
        monkeypatch.setattr(fit_module, "FLOOR_SHARE", float("inf"))
    spec = parse_spec({"sampler": {"chains": 4, "draws": 1500, "rounds": 3}}, "t")
    result = fit_module.sample(None, spec, progress=False, log=lambda line: None)
    idata, rounds = result.idata, result.rounds
    assert rounds[0]["rhat_floor"] > 1.005  # 4 chains of 1,500 draws of ESS 0.076 per draw
    if policy == "planned":
        assert [r["action"] for r in rounds] == ["first", "lengthen"]
        assert rounds[1]["draws"] > 1500 and idata.posterior.sizes["chain"] == 4
        assert rounds[-1]["margin"]
    else:  # 8 and 12 chains of the same length: R-hat stays near its floor
        assert [r["action"] for r in rounds] == ["first", "add", "add"]
        assert not rounds[-1]["margin"]
