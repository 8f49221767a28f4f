"""Response styles and informative non-response: spec, likelihood, twin, kernels, a real fit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import PLANTED_BACKEND, density_function, generic_codebook, generic_frame, relative_error

from scsurvey.inputs.codebook import parse_codebook
from scsurvey.inputs.survey import prepare
from scsurvey.model.graph import build
from scsurvey.model.likelihood import category_probs
from scsurvey.model.spec import SpecError, parse_spec, spec_from_configs
from scsurvey.model.styles import item_key, kappa_centred, spread_thresholds


def _data(n=150, reverse=("a1", "b2"), n_categories=5, seed=0, missing=0.08):
    raw = generic_codebook(n_categories=n_categories, reverse=reverse, groups=False)
    return prepare(generic_frame(raw, n=n, seed=seed, missing=missing), parse_codebook(raw))


RICH = {"response_style": ["extreme", "acquiescence"], "nonresponse": "informative"}


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ({"response_style": ["extremes"]}, r"response_style: \['extremes'\]: expected some of"),
        ({"response_style": ["extreme", "extreme"]}, r"a style twice"),
        ({"response_style": "extreme"}, r"expected a list of names"),
        ({"nonresponse": "selection"}, r"nonresponse = 'selection': expected one of"),
        (
            {"nonresponse": "informative", "residual": False, "discrimination": False},
            r"needs components.residual",
        ),
        (
            {"response_style": ["extreme"], "residual": False, "discrimination": False},
            r"needs components.residual",
        ),
    ],
)
def test_bad_components_are_refused_naming_the_key(components, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({"components": components}, "m", "m.toml")


def test_acquiescence_needs_a_battery_keyed_both_ways_and_extreme_more_than_two_categories():
    with pytest.raises(SpecError, match=r"acquiescence.*has 0 reverse-keyed and 0 other"):
        build(spec_from_configs("m", {"response_style": ["acquiescence"]}), _data(reverse=()))
    # one reverse-keyed item: its discrimination and the acquiescence's variance trade
    with pytest.raises(SpecError, match=r"at least two each way.*has 1 reverse-keyed and 3 other"):
        build(spec_from_configs("m", {"response_style": ["acquiescence"]}), _data(reverse=("a1",)))
    with pytest.raises(SpecError, match=r"extreme.*two categories"):
        build(spec_from_configs("m", {"response_style": ["extreme"]}), _data(n_categories=2))


def test_unused_components_and_their_priors_leave_the_hash_alone():
    plain = parse_spec({}, "m")
    moved = parse_spec({"priors": {"style_sd": {"rate": 3.0}, "mu_kappa": {"mu": -1.0}}}, "m")
    assert plain.hash() == moved.hash()
    rich = parse_spec({"components": RICH}, "m")
    rich_moved = parse_spec({"components": RICH, "priors": {"style_sd": {"rate": 3.0}}}, "m")
    assert rich.hash() not in (plain.hash(), rich_moved.hash())


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA", "JAX"])
def test_the_fused_operations_equal_the_graph_form(mode):
    """The spread ordered logit and the non-response cells, each one Op with its own
    gradient, against the graph form (log-sigmoids of per-answer thresholds; PyMC's
    Bernoulli) on each backend, with random upstream gradients (not only a sum's): 1e-8
    relative, the values and every gradient (the tolerance of tests/test_fused_likelihood.py).
    That the whole models agree is tested there, for every spec."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    from scsurvey.model import fused_likelihood
    from scsurvey.model.likelihood import ordinal_logp

    fused_likelihood.register_jax()
    rng = np.random.default_rng(2)
    n, items, k = 300, 7, 5
    y = rng.integers(-1, k, (n, items)).astype(np.int64)  # about 1 in k missing
    values = [rng.normal(0, 2, (n, items)), np.sort(rng.normal(0, 2, (items, k - 1)), axis=1)]
    values.append(rng.normal(0, 0.6, n))
    values[0][0, :] = 25.0  # far tails
    eta, cuts, spread = (pt.tensor(shape=v.shape, dtype="float64") for v in values)
    weights = rng.normal(size=y.shape)
    outs = []
    for fused in (True, False):
        lp = ordinal_logp(pt.as_tensor(y), eta, cuts, "logit", fused=fused, log_spread=spread)
        grads = pytensor.grad((lp * weights).sum(), [eta, cuts, spread])
        outs.append(pytensor.function([eta, cuts, spread], [lp, *grads], mode=mode)(*values))
    for mine, reference in zip(*outs, strict=True):
        assert relative_error(mine, reference) < 1e-8
    assert np.all(outs[0][0][y < 0] == 0)
    # the non-response cells
    logit = pt.matrix(shape=(n, items), dtype="float64")
    d = (y < 0).astype(np.int64)
    cells = [
        fused_likelihood.bernoulli_logit_logp(d, logit),
        pm.logp(pm.Bernoulli.dist(logit_p=logit), d),
    ]
    outs = [
        # without the tail row: PyMC's Bernoulli takes log(sigmoid(x)), which loses relative
        # precision where it is near zero
        pytensor.function([logit], [c, pytensor.grad((c * weights).sum(), logit)], mode=mode)(
            np.clip(values[0], -6.0, 6.0)
        )
        for c in cells
    ]
    for mine, reference in zip(*outs, strict=True):
        assert relative_error(mine, reference) < 1e-8
    if mode == "JAX":  # nutpie's JAX backend compiles the whole model, its data frozen
        from pymc.model.transform.optimization import freeze_dims_and_data

        data = _data()
        spec = spec_from_configs("m", {"covariates": True, **RICH})
        rich, graph = build(spec, data).model, build(spec, data, fused=False).model
        names = sorted(rv.name for rv in rich.free_RVs)
        point = {k: v + rng.normal(0, 0.4, np.shape(v)) for k, v in rich.initial_point().items()}
        got = density_function(freeze_dims_and_data(rich), names, mode)(point)
        want = density_function(graph, names, "FAST_COMPILE")(point)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-8)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-8, atol=1e-10)


def test_the_style_likelihood_reads_each_answer_against_its_respondents_thresholds():
    """The model's answer log-probabilities, computed by hand from category probabilities at
    thresholds ``m + exp(s) (c - m)`` and eta shifted by the acquiescence times the key."""
    data = _data(reverse=("a1", "b2"))
    built = build(spec_from_configs("m", {"response_style": ["extreme", "acquiescence"]}), data)
    model = built.model
    rng = np.random.default_rng(5)
    point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in model.initial_point().items()}
    eta, cuts, style, acq, got = _at(
        model,
        point,
        [
            built.eta,
            built.cuts,
            model["style"],
            model["acquiescence"],
            model.logp(vars=[model["y"]], sum=False)[0],
        ],
    )
    y = data.responses
    probs = category_probs(eta + acq[:, None] * item_key(data.codebook), spread_thresholds(cuts, style))
    want = np.where(y >= 0, np.log(np.take_along_axis(probs, np.maximum(y, 0)[..., None], -1)[..., 0]), 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert item_key(data.codebook).tolist().count(-1.0) == 2


def _at(model, point, outputs):
    """``outputs`` of ``model`` evaluated with its random variables at ``point``."""
    import pytensor

    outputs = model.replace_rvs_by_values(outputs)
    f = pytensor.function(model.value_vars, outputs, on_unused_input="ignore")
    return f(*[point[v.name] for v in model.value_vars])


def test_kappa_is_centred_only_when_the_items_rates_differ_beyond_noise():
    rng = np.random.default_rng(0)
    same = np.where(rng.random((2000, 10)) < 0.05, -1, 1)
    differ = np.where(rng.random((2000, 10)) < np.linspace(0.01, 0.2, 10), -1, 1)
    assert not kappa_centred(same) and kappa_centred(differ)


def test_the_twin_plants_trait_dependent_non_response_and_is_unchanged_without_it(root):
    from conftest import TWIN

    from scsurvey.inputs.codebook import load_codebook
    from scsurvey.workflows.twin import make_twin

    small = {"n": 600, "population": 20_000}
    before = make_twin(TWIN, root=root, overrides=small)
    zero = make_twin(TWIN, root=root, overrides={**small, "nonresponse_slope": 0.0})
    planted = make_twin(TWIN, root=root, overrides={**small, "nonresponse_slope": -1.5})
    items = [i.column for i in load_codebook(root / "data/codebook/scs2020.toml").items]
    assert before.frame[items].equals(zero.frame[items])
    missing = (planted.frame[items].isna() | planted.frame[items].isin([8, 9])).to_numpy()
    theta = np.asarray(planted.truth["z_respondent"])[:, 0]  # the residual moves the trait
    low, high = theta < np.quantile(theta, 1 / 3), theta > np.quantile(theta, 2 / 3)
    rate = missing[:, :6].mean(axis=1)  # the first battery's items
    # planted at -1.5 per unit of support: the least supportive third on the residual alone
    # leaves about three times as many items unanswered as the most supportive
    assert rate[low].mean() > 2.0 * rate[high].mean(), (rate[low].mean(), rate[high].mean())
    assert not before.frame[items].equals(planted.frame[items])


def test_the_kernels_read_a_style_as_the_spread_thresholds_say():
    """The integrated likelihood's conditional kernel with a style equals the category
    probabilities at the spread thresholds; with a style of zero, the plain kernel."""
    from scsurvey.posterior.integrated_likelihood import Population, conditional

    rng = np.random.default_rng(3)
    n_s, n, n_j = 2, 7, 3
    cuts = np.sort(rng.normal(0, 1.5, (n_s, n_j, 4)), axis=-1)
    theta = rng.normal(size=(n_s, n, 1))
    y = rng.integers(-1, 5, (n, n_j))
    style = rng.normal(0, 0.6, (n_s, n))
    pop = Population(
        mean=theta,
        chol=np.ones((n_s, 1, 1)),
        lam=np.ones((n_s, n_j)),
        offset=np.zeros((n_s, n, n_j)),
        cuts=cuts,
        col=np.zeros(n_j, dtype=np.int64),
        link="logit",
        style=style,
    )
    loglik, _, _ = conditional(pop, theta, y)
    probs = category_probs(np.repeat(theta, n_j, axis=2), pop.answer_cuts())
    lp = np.log(np.take_along_axis(probs, np.maximum(y, 0)[None, ..., None], -1)[..., 0])
    np.testing.assert_allclose(loglik, np.where(y >= 0, lp, 0.0).sum(-1), rtol=1e-10)
    plain = dataclasses.replace(pop, style=None)
    zero = dataclasses.replace(pop, style=np.zeros_like(style))
    np.testing.assert_array_equal(conditional(plain, theta, y)[0], conditional(zero, theta, y)[0])


def _planted_survey(n=300, seed=11):
    """A survey simulated from the rich model on a generic codebook (two batteries of 4 and 3
    items, two of them reverse-keyed): extreme style sd 0.7, acquiescence sd 0.5, non-response
    falling with support (slope -1.5), everything else from the prior."""
    import pymc as pm

    raw = generic_codebook(reverse=("a1", "b2"), groups=False)
    raw["items"][0]["label"] = "<b>fair</b> & square"
    raw["findings"] = [{"covariate": "x1", "direction": "+", "text": "<i>more</i> x1, more support"}]
    data = prepare(generic_frame(raw, n=n, seed=seed, missing=0.0), parse_codebook(raw))
    spec = spec_from_configs("rich", {"covariates": True, **RICH})
    planted = {
        "style_sd": 0.7,
        "acquiescence_sd": 0.5,
        "nonresponse_slope": np.array([-1.5, -1.5]),
        "mu_kappa": -2.5,
        "propensity_sd": 0.3,
        "beta": np.array([[0.6, 0.0], [0.6, 0.0]]),
    }
    model = pm.do(build(spec, data).model, planted)
    names = ["y", "nonresponse", "style", "acquiescence"]
    draw = pm.sample_prior_predictive(draws=1, model=model, var_names=names, random_seed=seed)
    value = {
        k: (draw.prior_predictive if k in draw.prior_predictive else draw.prior)[k].values[0, 0]
        for k in names
    }
    y = np.where(value["nonresponse"] == 1, -1, value["y"])
    empty = (y < 0).all(axis=1)
    y[empty, 0] = value["y"][empty, 0]
    frame = generic_frame(raw, n=n, seed=seed, missing=0.0)
    levels = np.asarray(raw["scale"]["levels"], dtype=float)
    for j, item in enumerate(raw["items"]):
        k = np.where(item["reverse"], len(levels) - 1 - y[:, j], y[:, j])  # back to the file's codes
        frame[item["column"]] = np.where(y[:, j] >= 0, levels[np.clip(k, 0, len(levels) - 1)], np.nan)
    return raw, frame, value


@pytest.fixture(scope="module")
def planted_fits():
    """Real fits (the whole pipeline) of one planted survey, plain and rich."""
    import scsurvey as ss

    raw, frame, truth = _planted_survey()
    sampler = {"draws": 300, "tune": 300, "chains": 2, "rounds": 1, **PLANTED_BACKEND}
    fits = {}
    for name, extra in (("plain", {}), ("rich", RICH)):
        m = ss.SurveyModel(
            frame, parse_codebook(raw), model_config={"covariates": True, **extra}, sampler_config=sampler
        )
        m.fit(progress=False)
        fits[name] = m
    return truth, fits


def test_the_planted_styles_are_read_back(planted_fits):
    """Seven items a respondent give a noisy reading of their style: the posterior means
    correlate with the planted styles at about 0.5 (extreme) and 0.6 (acquiescence) here;
    0.3 is far below that and far above what no information gives (|r| < 0.12 for 300
    respondents at two sds)."""
    from scsurvey.posterior import styles

    truth, fits = planted_fits
    est = styles.respondent_styles(fits["rich"].idata)
    assert np.corrcoef(est["extreme"], truth["style"])[0, 1] > 0.3
    assert np.corrcoef(est["acquiescence"], truth["acquiescence"])[0, 1] > 0.3
    nonresp = styles.nonresponse_estimates(fits["rich"].idata)
    assert (nonresp["slope_high"] < 0).all(), nonresp  # planted at -1.5 in both batteries


def test_the_rich_fit_stores_non_answers_and_reloads(planted_fits, tmp_path):
    import scsurvey as ss

    _, fits = planted_fits
    idata = fits["rich"].idata
    observed = idata.observed_data["nonresponse"].values
    assert ((observed == 1) == (idata.observed_data["y"].values < 0)).all()
    rep = idata.posterior_predictive["nonresponse"]
    assert rep.dtype == np.int8 and set(np.unique(rep.values)) == {0, 1}
    # the replicated non-answer rate brackets the observed one (a calibrated fit's 90% band)
    rate = rep.mean(("respondent", "item")).values.ravel()
    assert np.quantile(rate, 0.01) < observed.mean() < np.quantile(rate, 0.99)
    assert np.isfinite(idata.log_likelihood_integrated["y"].values).all()
    fits["rich"].save(tmp_path / "rich.nc")
    again = ss.load(tmp_path / "rich.nc")
    assert again.model_config["response_style"] == ["extreme", "acquiescence"]


def test_the_report_sets_the_rich_fit_beside_the_plain_one(planted_fits, tmp_path):
    from scsurvey.report.html import render_report

    _, fits = planted_fits
    rich = fits["rich"]
    spec = dataclasses.replace(spec_from_configs("rich", rich.model_config), baseline="plain")
    page = render_report(
        rich.idata, spec, rich.data.codebook, {}, tmp_path, others={"plain": fits["plain"].idata}
    )
    page = page.read_text()
    section = page.split('id="styles"')[1].split("<h2")[0]
    assert "Answers not taken at face value" in page
    assert "Beside plain, which reads every answer at face value" in page.split('id="styles"')[0]
    assert "<b>fair</b>" not in page and "&lt;b&gt;fair&lt;/b&gt; &amp; square" in section
    assert "&lt;i&gt;more&lt;/i&gt; x1" in section
    assert section.count("<tr>") >= 7 + 2 + 2 + 1  # items, styles, batteries, a finding (and headers)
    assert (tmp_path / "figures" / "nonresponse.png").stat().st_size > 0
    alone = render_report(rich.idata, spec, rich.data.codebook, {}, tmp_path / "alone").read_text()
    assert "No current fit of <code>plain</code>" in alone


@pytest.mark.styles_study
def test_the_styles_study_meets_its_targets(root):
    """make styles-study: 20 surveys with a planted style and 8 with planted non-response,
    simulated from the model on the twin's items. Targets: the median correlation of
    estimated and true styles at least 0.6; style_sd's 90% interval covering the planted
    value in at least 85% of surveys; the calibrated check flagging at least 80% of the plain
    fits and at most 10% of the style fits; the informative model's 90% intervals of the
    support shares covering the truth at least 85% of the time."""
    from scsurvey.workflows import styles_study

    summary = styles_study.summarize(styles_study.run(root=root))
    assert all(summary["passes"].values()), styles_study.format_summary(summary)


# the components' SBC (make sbc MODEL=<spec> SBC_ARGS="--sims 60 --respondents 200"): 60 surveys of 200
# respondents simulated from each rich spec's prior, styles and non-answers included
SBC_OF_COMPONENTS = {
    "bfi_keyed_styles": ("style_sd", "acquiescence_sd"),
    "gss_spending_nonresponse": ("nonresponse_slope[0]", "propensity_sd", "mu_kappa", "sigma_kappa"),
}


@pytest.mark.styles_study
@pytest.mark.parametrize("name", sorted(SBC_OF_COMPONENTS))
def test_sbc_of_each_component_passes(root, name):
    """Every ranked quantity of the converged fits passes at the family-wise 5% level (the
    study's own verdict), the components' population-level quantities among them."""
    from scsurvey.workflows import sbc

    summary = sbc.run_study(name, root=root, progress=False, n_sims=60, n_respondents=200)
    assert set(SBC_OF_COMPONENTS[name]) <= set(summary.index), sorted(summary.index)
    converged = summary["verdict_converged"]
    assert (converged == "pass").all(), summary[converged != "pass"]


def test_sbc_simulates_the_non_answers_of_an_informative_spec(tmp_path, small_twin):
    """SBC of an informative spec leaves missing exactly the cells the model made non-answers
    (not the file's own missing cells), so that the fits see the selection they are judged on."""
    from conftest import make_project

    from scsurvey.workflows import sbc

    _, csv, _ = small_twin
    project = make_project(tmp_path, csv, spec="full_styles")
    settings = sbc.Settings(model="full_styles", n_sims=3, n_respondents=80, seed=4)
    truths, surveys = sbc.simulate(settings, str(project))
    file_mask = sbc._prepare(settings, str(project))["data"].mask
    assert surveys.shape == (3, 80, 13)
    for truth, survey in zip(truths, surveys, strict=True):
        assert "nonresponse_slope" in truth and "style_sd" in truth
        assert not np.array_equal(survey < 0, ~file_mask)
    rates = (surveys < 0).mean(axis=(1, 2))
    assert (rates > 0).all() and (rates < 0.9).all(), rates


def test_the_leave_one_answer_out_cdfs_reweight_the_draws_by_the_answer():
    """With a style the draws of the respondent-level latents were fitted to the answer being
    checked: across draws its CDF is averaged with weights 1 / p(y_ij | y_i,-j, draw). With
    one item there are no other answers, so each draw's weight is 1 / p(y_ij | draw), its
    integrated likelihood, and each draw's own CDF is the kernel's on that draw alone."""
    from scsurvey.posterior.integrated_likelihood import Population, integrate

    rng = np.random.default_rng(8)
    n_s, n = 6, 5
    cuts = np.sort(rng.normal(0, 1.0, (n_s, 1, 4)), axis=-1)
    style = rng.normal(0, 0.8, (n_s, n))

    def pop(s, loo):
        return Population(
            mean=np.zeros((len(s), n, 1)),
            chol=np.ones((len(s), 1, 1)),
            lam=np.ones((len(s), 1)),
            offset=np.zeros((len(s), n, 1)),
            cuts=cuts[s],
            col=np.zeros(1, dtype=np.int64),
            link="logit",
            style=style[s],
            loo_draws=loo,
        )

    y = rng.integers(0, 5, (n, 1))
    centre, scale = np.zeros((n, 1)), np.ones((n, 1, 1))
    loglik, cdf_hi, _ = integrate(pop(np.arange(n_s), True), y, centre, scale)
    per_draw = np.array([integrate(pop([s], False), y, centre, scale)[1][:, 0] for s in range(n_s)])
    weight = np.exp(-loglik)  # (sample, respondent)
    np.testing.assert_allclose(cdf_hi[:, 0], (weight * per_draw).sum(0) / weight.sum(0), rtol=1e-10)
    _, unweighted, _ = integrate(pop(np.arange(n_s), False), y, centre, scale)
    assert not np.allclose(unweighted[:, 0], cdf_hi[:, 0])  # the weights matter here
