"""One-item surveys: grouping factors read from a combination of columns, the model without a
respondent residual (``components.residual = false``), many-level groups through an index
gather, and the integrated likelihood's no-residual path."""

from __future__ import annotations

from dataclasses import replace

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from conftest import generic_codebook, generic_frame
from scipy.special import expit

from scsurvey.core import dims
from scsurvey.inference.rounds import ONE_EVALUATION, check_memory, trace_values
from scsurvey.inputs.codebook import parse_codebook
from scsurvey.inputs.survey import DataError, prepare
from scsurvey.model import graph as model_module
from scsurvey.model.graph import build
from scsurvey.model.spec import SpecError, parse_spec
from scsurvey.posterior.integrated_likelihood import compute
from scsurvey.posterior.predictive import observed_dataset, respondent_log_likelihood, survey_constants

COUNTRIES = ["A", "B", "C", "D"]
WAVES = {"A": [3, 4], "B": [3, 4, 5], "C": [5], "D": [3, 5]}


def one_item_codebook() -> dict:
    """One 4-point item, a country factor and country x wave nested in it."""
    raw = generic_codebook(n_categories=4, batteries=(("policy", 1),), groups=False)
    raw["covariates"] = []
    cw = [(c, w) for c in COUNTRIES for w in WAVES[c]]
    raw["groups"] = [
        {"id": "country", "column": "country", "levels": COUNTRIES},
        {
            "id": "country_wave",
            "column": ["country", "wave"],
            "levels": [f"{c}:{w}" for c, w in cw],
            "nested_in": "country",
            "parents": [c for c, _ in cw],
        },
    ]
    return raw


def one_item_frame(raw: dict, n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = generic_frame(raw, n=n, seed=seed, missing=0.0)
    frame["country"] = rng.choice(COUNTRIES, n)
    frame["wave"] = [rng.choice(WAVES[c]) for c in frame["country"]]
    return frame


def one_item_data(n: int = 400):
    raw = one_item_codebook()
    return prepare(one_item_frame(raw, n), parse_codebook(raw), "one-item")


NO_RESIDUAL = {
    "covariates": False,
    "groups": ["country", "country_wave"],
    "residual": False,
    "discrimination": False,
}


def no_residual_spec():
    return parse_spec({"components": NO_RESIDUAL}, "t", "spec.toml")


def test_a_factor_from_two_columns_reads_joined_levels_and_checks_its_nesting():
    raw = one_item_codebook()
    frame = one_item_frame(raw)
    data = prepare(frame, parse_codebook(raw), "one-item")
    group = data.codebook.group("country_wave")
    labels = np.array(group.levels)[data.groups["country_wave"]]
    expected = frame["country"] + ":" + frame["wave"].astype(str)
    assert (labels == expected.to_numpy()).all()
    # a combination the codebook does not list is named with its columns and values
    frame.loc[3, "wave"] = 9
    with pytest.raises(DataError, match=r"country_wave\): unknown levels \['\w:9'\]"):
        prepare(frame, parse_codebook(raw), "one-item")


def test_a_factor_from_columns_refuses_breaks_and_a_single_name_in_a_list():
    raw = one_item_codebook()
    raw["groups"][1]["column"] = ["country"]
    with pytest.raises(Exception, match=r"one column name, or a list of two or more"):
        parse_codebook(raw)


@pytest.mark.parametrize("key", ["discrimination", "correlated"])
def test_no_residual_refuses_what_needs_a_residual(key):
    with pytest.raises(SpecError, match=rf"components\.residual = false with components\.{key} = true"):
        parse_spec({"components": {"residual": False, "discrimination": False, key: True}}, "t")


def test_a_residual_on_a_one_item_battery_is_refused_before_compiling():
    spec = parse_spec({"components": {"groups": ["country"]}}, "t", "spec.toml")
    with pytest.raises(SpecError, match=r"spec\.toml: components\.residual = true: batteries \['policy'\]"):
        build(spec, one_item_data())


def _point(model, seed=3):
    """A random point of the model's free variables (transformed space) and its deterministics."""
    ip = model.initial_point()
    rng = np.random.default_rng(seed)
    point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in ip.items()}
    outs = model.replace_rvs_by_values([model["cuts"], model["u_country"], model["u_country_wave"]])
    det = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore", **ONE_EVALUATION)
    return point, det(point)


def test_the_no_residual_likelihood_is_a_cumulative_logit_in_the_group_intercepts():
    """Against the ordered-logit probabilities written out by hand: eta_i = u_country[c_i] +
    u_country_wave[cw_i] (no residual, discrimination 1)."""
    data = one_item_data()
    built = build(no_residual_spec(), data)
    m = built.model
    free = {v.name for v in m.free_RVs}
    assert not free & {"z_respondent", "a", "a_battery", "mu_alpha", "sigma_alpha", "gbar", "sigma_g"}
    point, (cuts, u_c, u_cw) = _point(m)
    ours = m.compile_logp(vars=[m[dims.OBSERVED]], sum=True, **ONE_EVALUATION)(point)
    eta = u_c[0, data.groups["country"]] + u_cw[0, data.groups["country_wave"]]
    c = np.concatenate([[-np.inf], cuts[0], [np.inf]])
    y = data.responses[:, 0]
    by_hand = np.log(expit(c[y + 1] - eta) - expit(c[y] - eta)).sum()
    assert ours == pytest.approx(by_hand, rel=1e-10)


def test_many_level_groups_through_a_gather_give_the_one_hot_log_density(monkeypatch):
    data = one_item_data()
    spec = no_residual_spec()
    onehot = build(spec, data).model
    point, _ = _point(onehot)
    monkeypatch.setattr(model_module, "ONEHOT_MAX_LEVELS", 1)
    gathered = build(spec, data).model
    assert "index_country" in gathered.named_vars and "member_country" not in gathered.named_vars
    assert gathered.compile_logp(**ONE_EVALUATION)(point) == pytest.approx(
        onehot.compile_logp(**ONE_EVALUATION)(point), rel=1e-12
    )


def test_centring_a_nested_factor_keeps_its_prior():
    """The nested factor's intercepts have the same prior written non-centred (w = 0) and
    centred (w = 1): the sd of the prior draws agrees within 5% (4,000 draws per level give
    a Monte Carlo error of the sd near 1-2%)."""
    data = one_item_data()
    sds = []
    for w in (0.0, 1.0):
        spec = parse_spec({"components": NO_RESIDUAL, "centering": {"groups": w}}, "t")
        m = build(spec, data).model
        prior = pm.sample_prior_predictive(draws=4000, model=m, random_seed=5, var_names=["u_country_wave"])
        sds.append(prior.prior["u_country_wave"].std(("chain", "draw")).values)
    np.testing.assert_allclose(sds[0], sds[1], rtol=0.05)
    # a country with one wave has no wave effect left: it is the country's own
    only = data.codebook.group("country_wave").levels.index("C:5")
    assert sds[1][0, only] < 1e-12


def _fake_posterior(built, data, draws=20) -> az.InferenceData:
    """Prior draws of the model standing in for a posterior, with the data groups a stored
    fit has (the no-residual flag included)."""
    with built.model:
        prior = pm.sample_prior_predictive(draws=draws, random_seed=11)
    post = prior.prior.drop_vars([v for v in prior.prior.data_vars if "respondent" in prior.prior[v].dims])
    post.attrs.update(link="logit", residual=0)
    return az.InferenceData(
        posterior=post,
        observed_data=observed_dataset(data),
        constant_data=survey_constants(data),
    )


def test_without_a_residual_the_integrated_likelihood_is_the_conditional_one():
    """Nothing to integrate: the kernel's log-likelihood per respondent equals PyMC's
    pointwise log-likelihood of the same draws, and each answer's predictive CDF is the
    category CDF averaged over draws."""
    data = one_item_data()
    built = build(no_residual_spec(), data)
    idata = _fake_posterior(built, data)
    ours = compute(idata, max_draws=None)
    assert ours.attrs["method"].startswith("none")
    pymc = respondent_log_likelihood(
        az.InferenceData(posterior=idata.posterior.drop_vars(["cuts"])), built.model
    )[dims.OBSERVED]
    np.testing.assert_allclose(ours[dims.OBSERVED].values, pymc.values, rtol=1e-9)
    cuts = idata.posterior["cuts"].values[0]  # (draw, item, threshold)
    u = idata.posterior["u_country"].values[0][:, 0, data.groups["country"]]
    u = u + idata.posterior["u_country_wave"].values[0][:, 0, data.groups["country_wave"]]
    y = data.responses[:, 0]
    c = np.concatenate([cuts[:, 0], np.full((cuts.shape[0], 1), np.inf)], axis=1)
    hi = expit(np.take_along_axis(c, np.broadcast_to(y, (c.shape[0], y.size)), axis=1) - u).mean(0)
    np.testing.assert_allclose(ours["cdf_hi"].values[:, 0], hi, rtol=1e-9)
    assert isinstance(ours, xr.Dataset)


def test_the_distinct_respondents_weighted_give_the_full_log_density():
    """What NUTS samples (one weighted term per distinct respondent) has the full model's
    log density at any point: the same posterior from far fewer terms."""
    data = one_item_data()
    built = build(no_residual_spec(), data)
    assert built.sampling_model is not None
    distinct = len(built.sampling_model.coords[dims.RESPONDENT])
    assert distinct <= 9 * 4 < data.n_respondents  # 9 country-waves x 4 answers
    point, _ = _point(built.model)
    full = built.model.compile_logp(**ONE_EVALUATION)(point)
    assert built.sampling_model.compile_logp(**ONE_EVALUATION)(point) == pytest.approx(full, rel=1e-10)
    # a model with a residual has no such shortcut
    raw = generic_codebook(groups=False)
    two = prepare(generic_frame(raw, n=50), parse_codebook(raw), "generic")
    assert build(parse_spec({}, "t"), two).sampling_model is None


def test_a_fit_of_the_distinct_respondents_stores_every_respondents_traits():
    """Through the whole fit (approximate mode, which shares every step after sampling):
    the traits of all respondents at the predictive's draws are their group intercepts, and
    the integrated log-likelihood is the conditional one."""
    from scsurvey.posterior.assemble import fit_survey

    data = one_item_data()
    spec = no_residual_spec().replace(
        sampler={"name": "advi", "vi_steps": 500, "draws": 100, "prior_draws": 50, "seed": 4}
    )
    idata, _ = fit_survey(spec, data, progress=False)
    theta = idata[dims.RESPONDENT_DRAWS]["theta"]
    rep = idata.posterior_predictive
    np.testing.assert_array_equal(theta["draw"].values, rep["draw"].values)
    assert theta.sizes[dims.RESPONDENT] == data.n_respondents
    at = idata.posterior.sel(draw=rep["draw"].values)
    expected = at["u_country"].values[..., 0, data.groups["country"]]
    expected = expected + at["u_country_wave"].values[..., 0, data.groups["country_wave"]]
    np.testing.assert_allclose(theta.values[..., 0], expected, rtol=1e-5, atol=1e-6)
    assert not [v for v in idata.prior.data_vars if dims.RESPONDENT in idata.prior[v].dims]
    np.testing.assert_allclose(
        idata.log_likelihood_integrated[dims.OBSERVED].values,
        idata.log_likelihood[dims.OBSERVED].values,
        rtol=1e-4,
    )


def test_the_memory_check_counts_the_model_sampled_not_every_respondent():
    """Without a residual NUTS samples one term per distinct respondent: the draws it keeps
    are the groups' and the distinct respondents', so a survey of 184,924 one-item answers
    (the shipped `wvs_immig`) fits in memory; counting two values per respondent and
    battery refused it (33 GiB)."""
    data = one_item_data(n=4000)
    built = build(no_residual_spec(), data)
    assert built.sampling_model is not None
    sampled = trace_values(built.sampling_model)
    # 4 answers x 9 country-waves: at most 36 distinct respondents, and a few dozen parameters
    assert sampled < 200, sampled
    assert trace_values(built.model) > data.n_respondents  # the full model's per-respondent theta
    sampler = parse_spec({"components": NO_RESIDUAL, "sampler": {"draws": 1000}}, "t", "spec.toml").sampler
    check_memory(trace_values(built.sampling_model), sampler)
    with pytest.raises(SpecError, match=r"sampler\.draws = 10000000000000 .* GiB, more than"):
        check_memory(trace_values(built.sampling_model), replace(sampler, draws=10**13))


def test_a_fit_checks_the_memory_of_the_model_it_samples(monkeypatch):
    """fit_survey passes the check the distinct respondents' count, before sampling."""
    from scsurvey.posterior import assemble

    class Checked(Exception):
        pass

    def check(n_quantities, sampler):
        raise Checked(n_quantities)

    monkeypatch.setattr(assemble, "check_memory", check)
    with pytest.raises(Checked) as caught:
        assemble.fit_survey(no_residual_spec(), one_item_data(n=4000), progress=False)
    assert caught.value.args[0] < 200  # two values per respondent would be 8,000
