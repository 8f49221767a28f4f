"""The model: builds for any codebook, finite at the start, right dims, sane priors."""

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from conftest import generic_codebook, generic_frame
from scipy import stats

from scsurvey.core import dims
from scsurvey.inference.rounds import ONE_EVALUATION
from scsurvey.inputs.codebook import parse_codebook
from scsurvey.inputs.survey import prepare
from scsurvey.model.graph import build, build_model, cholesky_from_partials, lkj_partial_alphas
from scsurvey.model.likelihood import answer_tables, category_probs, ordinal_logp, ordinal_random
from scsurvey.model.priors import merge_priors, sd_rms
from scsurvey.model.spec import SpecError, parse_spec


def make_spec(**components):
    return parse_spec({"components": components}, "test")


FULL = {"covariates": True, "groups": ["site"], "item_covariates": ["x1"], "correlated": True}


def generic_data(k=5, batteries=(("a", 4), ("b", 3)), n=60, seed=0):
    raw = generic_codebook(n_categories=k, batteries=batteries)
    return prepare(generic_frame(raw, n=n, seed=seed), parse_codebook(raw), "generic")


@pytest.mark.parametrize(
    ("k", "batteries"),
    [
        (5, (("a", 4), ("b", 3))),
        (4, (("a", 3), ("b", 3), ("c", 2))),
        (7, (("only", 5),)),
        (2, (("a", 3),)),
    ],
)
@pytest.mark.parametrize("link", ["logit", "probit"])
def test_builds_and_is_finite_at_the_initial_point(k, batteries, link):
    data = generic_data(k, batteries)
    spec = make_spec(**FULL).replace(link=link)
    model = build_model(spec, data)
    point = model.initial_point()
    logps = model.point_logps(point, **ONE_EVALUATION)
    assert all(np.isfinite(v) for v in logps.values()), logps
    grad = model.compile_dlogp(**ONE_EVALUATION)(point)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    assert model.named_vars_to_dims["y"] == (dims.RESPONDENT, dims.ITEM)
    assert model["cuts"].type.shape[-1] in (None, k - 1)


def test_dims_and_coords_follow_the_codebook(codebook, small_twin):
    _, csv, _ = small_twin
    from scsurvey.inputs.survey import load_survey

    data = load_survey(csv, codebook)
    spec = make_spec(
        covariates=True,
        groups=["region", "province", "occupation", "age_cohort"],
        item_covariates=["media_foreign"],
        correlated=True,
    )
    model = build_model(spec, data)
    d = model.named_vars_to_dims
    assert d["alpha"] == (dims.ITEM,)
    assert d["cuts"] == (dims.ITEM, dims.THRESHOLD)
    assert d["g"] == (dims.ITEM, dims.GAP)
    assert d["beta"] == (dims.BATTERY, dims.COVARIATE)
    assert d["theta"] == (dims.RESPONDENT, dims.BATTERY)
    assert d["u_province"] == (dims.BATTERY, "province")
    assert d["delta"] == (dims.ITEM_COVARIATE, dims.ITEM)
    assert d["corr_matrix"] == (dims.BATTERY, dims.BATTERY_OTHER)
    c = model.coords
    assert list(c[dims.ITEM]) == codebook.item_ids
    assert list(c[dims.BATTERY]) == ["surveillance", "punishment"]
    assert list(c[dims.CATEGORY]) == list(codebook.scale.labels)
    assert len(c[dims.THRESHOLD]) == 4 and len(c["province"]) == 31
    assert list(c[dims.COVARIATE]) == data.covariate_names


def test_prior_predictive_shapes_and_category_shares():
    data = generic_data(5, n=80)
    model = build_model(make_spec(**FULL), data)
    prior = pm.sample_prior_predictive(300, model=model, random_seed=1)
    y = prior.prior_predictive["y"]
    assert y.shape == (1, 300, 80, 7)
    shares = np.bincount(y.values.ravel(), minlength=5) / y.size
    # Weakly informative priors: every category used, none dominating (each 5-60%).
    assert ((shares > 0.05) & (shares < 0.6)).all(), shares
    assert y.values.min() == 0 and y.values.max() == 4


def test_bad_spec_names_the_key():
    with pytest.raises(SpecError, match=r"unknown keys \['components.colour'\]"):
        parse_spec({"components": {"colour": 1}}, "x", "x.toml")
    with pytest.raises(SpecError, match=r"x.toml: link = 'cloglog'"):
        parse_spec({"link": "cloglog"}, "x", "x.toml")
    with pytest.raises(SpecError, match=r"\[priors\].beta.scale: unknown field"):
        parse_spec({"priors": {"beta": {"scale": 1}}}, "x", "x.toml")
    # a spec (or a stored posterior's spec) written for the half-normal sd priors
    with pytest.raises(SpecError, match=r"x.toml: \[priors\].sigma_g.sigma: .*Gamma\(shape, rate\).*refit"):
        parse_spec({"priors": {"sigma_g": {"sigma": 0.5}}}, "x", "x.toml")
    with pytest.raises(SpecError, match=r"sampler.draws = 0: must be positive"):
        parse_spec({"sampler": {"draws": 0}}, "x", "x.toml")
    with pytest.raises(SpecError, match=r"missing required key 'inputs.data'"):
        parse_spec({"inputs": {"codebook": "c"}}, "x", "x.toml", require_inputs=True)
    with pytest.raises(SpecError, match=r"codebook and data go in an \[inputs\] table"):
        parse_spec({"codebook": "c", "data": "d"}, "x", "x.toml")
    with pytest.raises(SpecError, match=r"components.groups = 'site': expected a list of names"):
        parse_spec({"components": {"groups": "site"}}, "x", "x.toml")
    with pytest.raises(SpecError, match=r"sampler.target_accept = '0.9': expected"):
        parse_spec({"sampler": {"target_accept": "0.9"}}, "x", "x.toml")
    with pytest.raises(SpecError, match=r"sampler.rhat_target = 1.02: not in \(1, 1.01\]"):
        parse_spec({"sampler": {"rhat_target": 1.02}}, "x", "x.toml")
    with pytest.raises(SpecError, match=r"sampler.device = 'tpu': expected one of \('auto', 'cpu', 'gpu'\)"):
        parse_spec({"sampler": {"device": "tpu"}}, "x", "x.toml")
    spec = make_spec(covariates=True, groups=["nowhere"])
    with pytest.raises(SpecError, match=r"components.groups: \['nowhere'\] not in codebook"):
        build_model(spec, generic_data())


def test_prior_overrides_reach_the_model():
    spec = parse_spec(
        {
            "components": {"covariates": True},
            "priors": {"beta": {"sigma": 0.123}},
        },
        "x",
    )
    model = build_model(spec, generic_data())
    sigma = model["beta"].owner.inputs[-1].eval()
    assert np.allclose(sigma, 0.123)


@pytest.mark.parametrize("shape", [None, 1.0])
def test_pooled_sds_have_little_prior_mass_near_zero(shape):
    """Gamma(2, rate) on every pooled sd: P(sigma < 0.02) is 0.47% for the gap and group sds
    (3.2% under the half-normal used before, whose mode at zero opens the funnel's neck).
    20,000 draws give a binomial sd of 0.05 pp, so 1.5% separates the two by 20 sds. A spec's
    `shape = 1` (exponential) must reach the model: then 9.5% fall below 0.02. The mean square
    (the centring pilot's fallback) has a Monte Carlo sd of at most 1.6% (exponential), so
    6% is about 4 sds."""
    overrides = {} if shape is None else {k: {"shape": shape} for k in ("sigma_g", "sigma_group")}
    spec = make_spec(**FULL).replace(priors=merge_priors(overrides))
    model = build_model(spec, generic_data())
    for name in ("sigma_alpha", "sigma_g", "sigma_site"):
        draws = pm.draw(model[name], draws=20_000, random_seed=1).ravel()
        prior = spec.priors["sigma_group" if name == "sigma_site" else name]
        assert np.mean(draws**2) == pytest.approx(sd_rms(prior) ** 2, rel=0.06), name
        below = np.mean(draws < 0.02)
        if shape is None or name == "sigma_alpha":
            assert below < 0.015, (name, below)
        else:
            assert below > 0.06, (name, below)


def test_likelihood_matches_pymc_ordered_distributions():
    rng = np.random.default_rng(5)
    y = rng.integers(-1, 5, size=(40, 6))
    eta = rng.normal(0, 2, size=(40, 6))
    cuts = np.sort(rng.normal(0, 2, size=(6, 4)), axis=1)
    tables = {k: pt.as_tensor(v) for k, v in answer_tables(y, cuts.shape[1]).items()}
    for link, dist, given in (
        ("logit", pm.OrderedLogistic, None),
        ("logit", pm.OrderedLogistic, tables),  # the masks and indices precomputed from y
        ("probit", pm.OrderedProbit, None),
    ):
        mine = ordinal_logp(pt.as_tensor(y), pt.as_tensor(eta), pt.as_tensor(cuts), link, tables=given).eval()
        ref = pm.logp(dist.dist(eta=eta, cutpoints=cuts), np.where(y < 0, 0, y)).eval()
        np.testing.assert_allclose(mine[y >= 0], ref[y >= 0], rtol=1e-5, atol=1e-6)
        assert (mine[y < 0] == 0).all()


def test_likelihood_stays_finite_in_the_tails():
    y = np.array([[0, 4, 2, 2]])
    eta = np.array([[-40.0, 40.0, 35.0, -35.0]])
    cuts = np.tile([-1.0, 0.0, 1.0, 2.0], (4, 1))
    for link in ("logit", "probit"):
        e = pt.dmatrix("e")
        lp = ordinal_logp(pt.as_tensor(y), e, pt.as_tensor(cuts), link).sum()
        value, grad = (lp.eval({e: eta}), pt.grad(lp, e).eval({e: eta}))
        assert np.isfinite(value) and np.all(np.isfinite(grad)), link


def test_random_draws_follow_the_category_probabilities():
    rng = np.random.default_rng(0)
    eta = np.full((200_000, 1), 0.4)
    cuts = np.array([[-1.5, -0.2, 0.9, 2.0]])
    for link in ("logit", "probit"):
        draws = ordinal_random(eta, cuts, link=link, rng=rng)
        observed = np.bincount(draws.ravel(), minlength=5) / draws.size
        expected = category_probs(eta[:1], cuts, link)[0, 0]
        # multinomial sd of a share at n = 200,000 is <= 0.0011; allow 5 sd
        np.testing.assert_allclose(observed, expected, atol=0.0056)


def test_vine_construction_is_lkj():
    """Correlations built from the C-vine partials have LKJ's Beta marginals."""
    n, eta = 3, 2.0
    b = lkj_partial_alphas(n, eta)
    rng = np.random.default_rng(3)
    p = pt.dvector("p")
    chol = cholesky_from_partials(p, n)
    f = (chol @ chol.T).eval
    draws = np.array([f({p: 2 * rng.beta(b, b) - 1}) for _ in range(3000)])
    a = eta - 1 + n / 2  # LKJ marginal: (r + 1) / 2 ~ Beta(a, a)
    for i, j in ((1, 0), (2, 0), (2, 1)):
        # 3 KS tests at 3000 draws; alpha 0.001 each keeps false alarms rare
        assert stats.kstest((draws[:, i, j] + 1) / 2, stats.beta(a, a).cdf).pvalue > 0.001
    assert np.allclose(draws[:, range(n), range(n)], 1.0)


def test_group_effects_sum_to_zero_and_eta_handles_missing():
    data = generic_data()
    built = build(make_spec(**FULL), data)
    prior = pm.sample_prior_predictive(20, model=built.model, random_seed=3)
    u = prior.prior["u_site"].values
    np.testing.assert_allclose(u.sum(-1), 0, atol=1e-10)
    delta = prior.prior["delta"].values  # zero-sum within each battery
    np.testing.assert_allclose(delta[..., :4].sum(-1), 0, atol=1e-10)
    np.testing.assert_allclose(delta[..., 4:].sum(-1), 0, atol=1e-10)


def unbalanced_site_data(n=60, small=4, seed=0):
    """Generic answers whose site s3 holds ``small`` respondents and s1 most of the rest."""
    raw = generic_codebook()
    frame = generic_frame(raw, n=n, seed=seed)
    frame["site"] = ["s3"] * small + ["s2"] * 10 + ["s1"] * (n - small - 10)
    return prepare(frame, parse_codebook(raw), "generic")


@pytest.mark.parametrize("group_mean", ["levels", "respondents"])
def test_group_effects_average_zero_where_the_spec_says(group_mean):
    data = unbalanced_site_data()
    built = build(make_spec(groups=["site"], group_mean=group_mean), data)
    u = pm.sample_prior_predictive(20, model=built.model, random_seed=3).prior["u_site"].values
    over_respondents = u[..., data.groups["site"]].mean(-1)  # (chain, draw, battery)
    # exact identities of the parameterisation, so only floating-point error is tolerated
    if group_mean == "levels":
        np.testing.assert_allclose(u.sum(-1), 0, atol=1e-10)
        assert np.abs(over_respondents).max() > 0.01
    else:
        np.testing.assert_allclose(over_respondents, 0, atol=1e-10)
        assert np.abs(u.sum(-1)).max() > 0.01
    # the contrasts between levels, which the sd describes, are the same in both forms
    other = build(make_spec(groups=["site"], group_mean="levels"), data)
    v = pm.sample_prior_predictive(20, model=other.model, random_seed=3).prior["u_site"].values
    np.testing.assert_allclose(np.diff(u, axis=-1), np.diff(v, axis=-1), atol=1e-10)


def test_an_unknown_group_mean_names_the_key():
    with pytest.raises(SpecError, match=r"components.group_mean = 'sample'.*levels.*respondents"):
        make_spec(groups=["site"], group_mean="sample")


@pytest.mark.parametrize("link", ["logit", "probit"])
@pytest.mark.parametrize(
    "support",
    [
        (True, True, False, False, False),  # bottom two
        (False, False, True, False, False),  # the middle
        (True, False, False, False, True),  # both ends, not contiguous
        (False, False, False, True, True),  # top two
    ],
)
def test_support_share_counts_any_set_of_levels(link, support):
    """Against the share of answers drawn by thresholding a latent variable (200,000 draws
    per item: Monte Carlo sd at most 0.0011; tolerance 0.005, about 4.5 sd)."""
    from scsurvey.model.likelihood import ordinal_random, support_share

    eta = np.array([-1.0, 0.3, 1.5])
    cuts = np.array([[-2.0, -0.5, 0.4, 1.8], [-1.0, 0.0, 0.5, 1.0], [-0.5, 1.0, 2.0, 3.5]])
    answers = ordinal_random(eta, cuts, link, rng=3, size=(200_000, 3))
    expected = np.isin(answers, np.flatnonzero(support)).mean(axis=0)
    np.testing.assert_allclose(support_share(eta, cuts, support, link), expected, atol=0.005)
    # the PyTensor form (SBC's derived quantity) agrees with the NumPy one
    import pytensor.tensor as pt

    tensor = support_share(pt.as_tensor(eta), pt.as_tensor(cuts), support, link).eval()
    np.testing.assert_allclose(tensor, support_share(eta, cuts, support, link), rtol=1e-10)
