"""The integrated likelihood and the calibrated predictive check built on it."""

from __future__ import annotations

import warnings
from itertools import product
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from conftest import generic_codebook
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import log_expit, log_ndtr, logsumexp

import scsurvey as ss
from scsurvey.model.likelihood import category_probs, link_cdf, ordinal_random
from scsurvey.posterior import checks, integrated_likelihood, item_person_fit

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_full.nc"


@pytest.fixture(scope="module")
def tiny():
    return az.from_netcdf(FIXTURE)


def test_quadrature_matches_a_brute_force_monte_carlo_integral(tiny):
    """Adaptive Gauss-Hermite (15 x 15 nodes) against 400,000 prior draws of the two traits, for
    four respondents and two posterior draws. Tolerance: 4 Monte Carlo standard errors of
    the log integral plus 0.002 (the grid's own error: 0.0005 against 31 x 31 nodes on this
    poorly mixed fixture; 0.01 with 9 x 9)."""
    small = integrated_likelihood.thin(tiny, 2)
    pop = integrated_likelihood.population(small)
    y = tiny.observed_data["y"].values.astype(int)
    centre, scale = integrated_likelihood.adaptive_grid(tiny)
    loglik, *_ = integrated_likelihood.integrate(pop, y, centre, scale)
    rng = np.random.default_rng(0)
    m = 400_000
    for s in range(2):
        for i in (0, 17, 41, 79):
            theta = pop.mean[s, i] + rng.standard_normal((m, 2)) @ pop.chol[s].T
            eta = pop.lam[s] * theta[:, pop.col] + pop.offset[s, i]
            probs = category_probs(eta, pop.cuts[s][None], pop.link)  # (m, item, K)
            answered = y[i] >= 0
            p = probs[:, answered, :][:, np.arange(answered.sum()), y[i, answered]]
            log_lik = np.log(p).sum(axis=1)
            top = log_lik.max()
            w = np.exp(log_lik - top)
            mc = top + np.log(w.mean())
            se = w.std() / w.mean() / np.sqrt(m)
            assert abs(loglik[s, i] - mc) < 4 * se + 0.002, (s, i, loglik[s, i], mc, se)


def _brute_force(pop, y, centre, scale, n, prune):
    """The product-grid quadrature written out over every node of weight at least ``prune``,
    in numpy: the reference for the kernel, which reads each item only at the distinct
    traits of its battery."""
    n_b = pop.mean.shape[2]
    x, w = hermegauss(n)
    nodes = np.array(list(product(x, repeat=n_b)))  # (q, b)
    weight = np.array([np.prod(w[list(d)]) for d in product(range(n), repeat=n_b)]) / w.sum() ** n_b
    nodes, log_w = nodes[weight >= prune], np.log(weight[weight >= prune])
    n_s, n_i = pop.mean.shape[:2]
    loglik = np.empty((n_s, n_i))
    hi = np.zeros(y.shape)
    lo = np.zeros(y.shape)
    k1 = pop.cuts.shape[2]
    for i in range(n_i):
        theta = centre[i] + nodes @ scale[i].T  # (q, b)
        for s in range(n_s):
            eta = pop.lam[s] * theta[:, pop.col] + pop.offset[s, i]  # (q, j)
            upper = np.concatenate([pop.cuts[s], np.full((len(pop.col), 1), np.inf)], axis=1)
            lower = np.concatenate([np.full((len(pop.col), 1), -np.inf), pop.cuts[s]], axis=1)
            answered = y[i] >= 0
            k = np.clip(y[i], 0, k1)
            hi_x = upper[np.arange(len(k)), k] - eta
            lo_x = lower[np.arange(len(k)), k] - eta
            f_hi = link_cdf(hi_x, pop.link)
            f_lo = link_cdf(lo_x, pop.link)
            # log(F(hi) - F(lo)) from scipy's log-CDFs, reflected into the lower tail
            log_cdf = log_expit if pop.link == "logit" else log_ndtr
            upper_tail = hi_x + lo_x > 0
            a_x, b_x = np.where(upper_tail, -lo_x, hi_x), np.where(upper_tail, -hi_x, lo_x)
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a, log_b = log_cdf(a_x), log_cdf(b_x)
                log_p = log_a + np.log1p(-np.exp(log_b - log_a))
            log_p = np.where(answered, log_p, 0.0)
            dev = np.linalg.solve(pop.chol[s], (theta - pop.mean[s, i]).T)  # (b, q)
            log_prior = -0.5 * (dev**2).sum(0) - np.log(np.diag(pop.chol[s])).sum()
            log_std = -0.5 * (nodes**2).sum(1)
            log_jac = np.log(np.abs(np.diag(scale[i]))).sum()
            log_mass = log_w + log_p.sum(1) + log_prior - log_std + log_jac
            loglik[s, i] = logsumexp(log_mass)
            rest = np.exp(log_mass[:, None] - log_p - logsumexp(log_mass[:, None] - log_p, axis=0))
            hi[i] += np.where(answered, (rest * f_hi).sum(0), 0.0) / n_s
            lo[i] += np.where(answered, (rest * f_lo).sum(0), 0.0) / n_s
    return loglik, hi, lo


@pytest.mark.parametrize(
    ("n_batteries", "link", "far", "prune"),
    [
        (1, "logit", 0.0, 0.0),
        (2, "probit", 0.0, 0.0),
        (3, "logit", 0.0, 0.0),
        (2, "logit", 30.0, 0.0),
        (2, "logit", 600.0, 0.0),
        (3, "probit", 34.0, 0.0),
        (2, "logit", 0.0, 1e-3),
        (3, "logit", 30.0, 1e-4),
    ],
)
def test_the_kernel_is_the_quadrature_over_every_node(n_batteries, link, far, prune):
    """Random population draws, correlated traits, item covariates, missing answers and a
    sheared grid: the kernel equals the quadrature written over every node, to 1e-9 (the
    two add the same terms in another order). ``far`` shifts two items' predictors for some
    respondents so that answers have probabilities far below 1e-6 (read from their logs),
    and at 600 (logit) and 34 (probit) below 1e-250 (leave-one-out sums in logs). ``prune``
    drops the grid's corners (5 x 5 nodes: 1e-3 leaves 21; 5 x 5 x 5: 1e-4 leaves 81), so
    that prefixes hold unequal numbers of nodes."""
    rng = np.random.default_rng(n_batteries)
    n_s, n_i, n_j, n = 3, 7, 7, 5
    col = rng.integers(0, n_batteries, n_j)
    col[:n_batteries] = np.arange(n_batteries)
    corr = np.atleast_2d(np.corrcoef(rng.normal(size=(n_batteries, n_batteries + 3))))
    pop = integrated_likelihood.Population(
        mean=rng.normal(0, 0.7, (n_s, n_i, n_batteries)),
        chol=np.broadcast_to(np.linalg.cholesky(corr), (n_s, n_batteries, n_batteries)).copy(),
        lam=np.exp(rng.normal(0, 0.3, (n_s, n_j))),
        offset=rng.normal(0, 0.3, (n_s, n_i, n_j)),
        cuts=np.sort(rng.normal(0, 1.5, (n_s, n_j, 3)), axis=2),
        col=col,
        link=link,
    )
    pop.offset[:, : n_i // 2, 0] += far
    pop.offset[:, n_i // 2 :, -1] -= far
    y = rng.integers(0, 4, (n_i, n_j))
    y[rng.random(y.shape) < 0.15] = -1
    centre = rng.normal(0, 0.5, (n_i, n_batteries))
    scale = np.tril(rng.normal(0, 0.2, (n_i, n_batteries, n_batteries))) + 0.6 * np.eye(n_batteries)
    got = integrated_likelihood.integrate(pop, y, centre, scale, per_dim=n, prune=prune)
    want = _brute_force(pop, y, centre, scale, n, prune)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def simulate_battery(n, lam, cuts, rng, link="logit"):
    theta = rng.standard_normal(n)
    return ordinal_random(lam * theta[:, None], cuts, link, rng=rng)


def population_at(lam, cuts, n, link="logit") -> integrated_likelihood.Population:
    """The true parameters as a one-sample Population (one battery, no covariates)."""
    j = len(lam)
    return integrated_likelihood.Population(
        mean=np.zeros((1, n, 1)),
        chol=np.ones((1, 1, 1)),
        lam=np.asarray(lam, float)[None],
        offset=np.zeros((1, n, j)),
        cuts=np.asarray(cuts, float)[None],
        col=np.zeros(j, int),
        link=link,
    )


def test_pit_given_the_rest_is_calibrated_at_the_true_parameters():
    """40 simulated surveys (250 respondents, 6 items): the per-item test rejects at 5% in
    about 5% of the 240 item tests (Bonferroni over three tests makes it a little less).
    Accepted: 1-9% (binomial sd at 5% is 1.4 pp)."""
    rng = np.random.default_rng(11)
    rejections = []
    for _ in range(40):
        lam = np.exp(rng.normal(0, 0.4, 6))
        cuts = np.sort(rng.normal(0, 1.2, (6, 4)), axis=1)
        y = simulate_battery(250, lam, cuts, rng)
        centre = np.zeros((250, 1))
        scale = np.ones((250, 1, 1))  # the prior: wide, so many nodes
        _, hi, lo = integrated_likelihood.integrate(
            population_at(lam, cuts, 250), y, centre, scale, per_dim=41
        )
        u = lo + rng.random(y.shape) * (hi - lo)
        rest = checks.rest_scores(y, np.zeros(6, int))
        table = checks._pit_table(u, y, [f"q{j}" for j in range(6)], 10, rest)
        rejections += list(table["p_item"] < 0.05)
    rate = float(np.mean(rejections))
    assert 0.01 <= rate <= 0.09, rate


N_RANDOM = 20  # respondents appended who answer at random


@pytest.fixture(scope="module")
def misfit():
    """300 respondents, 8 items whose discriminations run from 0.3 to 3.3, plus 20 who answer
    at random, fitted by the model that gives a battery's items one discrimination
    (`discrimination = false`): the wrong model, with a known way of being wrong."""
    raw = generic_codebook(n_categories=5, batteries=(("a", 8),), groups=False)
    rng = np.random.default_rng(1)
    lam = np.exp(np.linspace(-1.2, 1.2, 8))
    cuts = np.sort(rng.normal(0, 1, (8, 4)), axis=1) * 1.5
    theta = rng.standard_normal(300)
    y = ordinal_random(lam * theta[:, None], cuts, "logit", rng=rng)
    y = np.concatenate([y, rng.integers(0, 5, (N_RANDOM, 8))])
    n = len(y)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            **{f"q_a{j}": y[:, j] + 1 for j in range(8)},
            "x1": rng.normal(size=n),
            "sex": rng.integers(0, 2, n),
        }
    )
    m = ss.SurveyModel(
        frame,
        ss.parse_codebook(raw),
        model_config={"discrimination": False},
        sampler_config={"draws": 200, "tune": 300, "chains": 2, "rounds": 1, "prior_draws": 10},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = m.fit(progress=False)
    return idata, theta


def test_a_planted_misfit_is_flagged_by_the_check(misfit):
    """The check must flag at least 3 of the 8 items (measured without the random
    respondents: 5, the extremes at p < 0.005); under a correct model about 0.4 would be."""
    idata, _ = misfit
    assert "log_likelihood_integrated" in idata.groups()
    pit = checks.randomized_pit(idata)
    flagged = pit.index[pit["p_item"] < 0.05]
    assert len(flagged) >= 3, pit[["p_uniform", "p_location", "p_dispersion", "p_item"]]
    assert {"a0", "a7"} <= set(flagged)  # the least and the most discriminating items
    # leave-one-respondent-out with the traits integrated out: importance sampling holds
    _, k_table = checks.loo_respondents(idata)
    assert k_table.loc["good (k <= 0.7)", "share"] >= 0.99, k_table


def test_item_fit_finds_the_discriminations_the_model_lacks(misfit):
    """Observed item-rest correlations above every replicate's for the most discriminating
    item, below for the least (PPP < 0.05 and > 0.95)."""
    idata, _ = misfit
    table = item_person_fit.item_fit(idata)
    assert table.loc["a7", "ppp_item_rest"] < 0.05 and table.loc["a0", "ppp_item_rest"] > 0.95, table
    assert table.loc["a7", "flagged"] and table.loc["a0", "flagged"]
    assert table["item_rest_observed"].between(-1, 1).all()


def test_person_fit_flags_random_answering(misfit):
    """Random answerers are less likely under the model than its replicates: most of them
    are flagged (measured 15 of 20), few of the others (at most 10%; PPP is conservative)."""
    idata, _ = misfit
    table = item_person_fit.person_fit(idata)
    random = table["flagged"].values[-N_RANDOM:]
    others = table["flagged"].values[:-N_RANDOM]
    assert random.mean() >= 0.5 and others.mean() <= 0.10, (random.mean(), others.mean())
    assert table.attrs["flagged_share"] == pytest.approx(table["flagged"].mean())


def test_scores_follow_the_true_traits_and_reliability_is_a_share(misfit):
    idata, theta = misfit
    sc = item_person_fit.scores(idata)
    est = sc["mean"].values[: len(theta), 0]
    # 8 items under a model with the discriminations wrong: measured 0.80; a score that
    # ignored the answers would correlate about 0
    assert np.corrcoef(est, theta)[0, 1] > 0.7
    (rel,) = sc["reliability"].values
    assert 0.6 < rel < 1.0
    assert (sc["sd"] > 0).all()


def test_information_of_a_binary_logit_item_is_the_known_curve():
    """One two-category item: I(theta) = lambda^2 p (1 - p), p = logistic(lambda theta - c)."""
    lam, cut = 1.7, 0.4
    idata = az.from_dict(
        posterior={"lambda": np.full((1, 3, 1), lam), "cuts": np.full((1, 3, 1, 1), cut)},
        coords={"item": ["q"], "threshold": ["t"], "battery": ["b"]},
        dims={"lambda": ["item"], "cuts": ["item", "threshold"]},
        constant_data={"battery_of_item": np.array(["b"])},
    )
    idata.posterior = idata.posterior.assign_coords(battery=["b"])
    info = item_person_fit.information(idata, grid=np.array([-1.0, 0.0, 2.0]))
    p = 1 / (1 + np.exp(-(lam * np.array([-1.0, 0.0, 2.0]) - cut)))
    np.testing.assert_allclose(info["item_information"].values[:, 0], lam**2 * p * (1 - p), rtol=1e-6)
    np.testing.assert_allclose(info["test_information"].values[:, 0], lam**2 * p * (1 - p), rtol=1e-6)


def test_integrated_loo_is_more_reliable_than_the_conditional(tiny_fit):
    _, idata, _ = tiny_fit
    _, integrated_k = checks.loo_respondents(idata)
    _, conditional_k = checks.loo_respondents(idata, "conditional")
    good = "good (k <= 0.7)"
    assert integrated_k.loc[good, "share"] > conditional_k.loc[good, "share"], (integrated_k, conditional_k)


def test_the_warm_up_compiles_the_kernels_a_fit_calls(tiny):
    """``compile_kernels`` runs beside sampling so that the kernels are compiled before the
    posterior arrives. Numba compiles one specialisation per argument types (dtype, rank,
    layout, read-only or not): the warm-up's must be those of a call on a real posterior, or
    the fit compiles again after sampling."""
    import numba

    def types(args):
        return [numba.typeof(a) for a in args]

    pop = integrated_likelihood.population(tiny)
    y = tiny.observed_data["y"].values
    centre, scale = integrated_likelihood.adaptive_grid(tiny)
    small, y1, centre1, scale1 = integrated_likelihood._one_answer()
    assert types(integrated_likelihood._integrate_args(small, y1, centre1, scale1)) == types(
        integrated_likelihood._integrate_args(pop, y, centre, scale)
    )
    theta = tiny.posterior_respondents["theta"].values.reshape(-1, *centre.shape)
    assert types(integrated_likelihood._conditional_args(small, small.mean, y1)) == types(
        integrated_likelihood._conditional_args(pop, theta, y)
    )
    integrated_likelihood.compile_kernels()
    assert integrated_likelihood._integrate.signatures and integrated_likelihood._conditional.signatures


def test_a_check_asked_of_a_posterior_without_its_group_names_it(tiny):
    bare = az.InferenceData(posterior=tiny.posterior, observed_data=tiny.observed_data)
    with pytest.raises(integrated_likelihood.MissingGroupError, match=r"\['constant_data'\].*make fit"):
        checks.randomized_pit(bare)
    with pytest.raises(integrated_likelihood.MissingGroupError, match=r"\['posterior_predictive'\]"):
        checks.randomized_pit(bare, "in_sample")
    with pytest.raises(integrated_likelihood.MissingGroupError, match=r"\['log_likelihood'\]"):
        checks.loo_respondents(bare, "conditional")


def test_fit_statistics_pair_each_replicate_with_the_draw_it_came_from(tiny):
    """Replicates stored for every third draw only: the statistics use those draws'
    parameters, not the first third of the posterior."""
    thinned = tiny.copy()
    thinned.posterior_predictive = tiny.posterior_predictive.isel(draw=slice(None, None, 3))
    n = thinned.posterior_predictive.sizes["chain"] * thinned.posterior_predictive.sizes["draw"]
    both = tiny.copy()
    both.posterior = tiny.posterior.isel(draw=slice(None, None, 3))
    both.posterior_predictive = thinned.posterior_predictive
    np.testing.assert_allclose(
        item_person_fit._cell_probs(thinned, np.arange(n)), item_person_fit._cell_probs(both, np.arange(n))
    )
    # pairing replicate k with posterior draw k instead would use other parameters
    assert not np.allclose(
        item_person_fit._cell_probs(both, np.arange(n))[1], item_person_fit._cell_probs(tiny, np.arange(n))[1]
    )
    assert item_person_fit.person_fit(thinned)["ppp"].between(0, 1).all()


@pytest.mark.parametrize("n_batteries", [1, 2, 3])
def test_the_pruned_grid_keeps_all_but_a_negligible_weight(n_batteries):
    """The default grids drop nodes together weighing under 1e-6 (2.4e-8 in two batteries,
    2.2e-7 in three),
    keep every node at or above the threshold, and refuse a threshold no node reaches."""
    n = integrated_likelihood.NODES_PER_DIM[n_batteries]
    g = integrated_likelihood.grid(n_batteries, n)
    _, w = hermegauss(n)
    w = w / w.sum()
    weight = np.prod(w[g.digits], axis=1)
    assert (weight >= integrated_likelihood.PRUNE).all()
    assert 1.0 - weight.sum() < 1e-6
    every = np.array(list(product(range(n), repeat=n_batteries)))
    heavy = np.prod(w[every], axis=1) >= integrated_likelihood.PRUNE
    assert heavy.sum() == len(g.digits) < len(every)
    with pytest.raises(ValueError, match="no node"):
        integrated_likelihood.grid(n_batteries, n, prune=1.0)


def test_item_rest_correlation_skips_what_has_no_rest_score_quietly():
    """A respondent who answered one item of a battery has no rest score: left out of that
    item's correlation, with no warning (a real battery, `anes_prochoice`, has such people);
    an item alone in its battery has none at all."""
    import warnings

    from scsurvey.posterior.item_person_fit import _item_rest_corr, _nanmean

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, size=(200, 3)).astype(float)
    y[:5, 1:] = np.nan  # five respondents answered only the first item
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _item_rest_corr(y, [0, 0, 0])
    expected = np.corrcoef(y[5:, 0], y[5:, 1:].mean(axis=1))[0, 1]
    assert abs(got[0] - expected) < 1e-12
    # an item alone in its battery (wvs_immig's one item): no rest score, NaN, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alone = _item_rest_corr(y[None], [0, 0, 1])  # a draw axis in front, as the replicates
        mean_over_draws = _nanmean(alone, axis=0)
    assert np.isnan(alone[0, 2]) and np.isnan(mean_over_draws[2]) and np.isfinite(mean_over_draws[:2]).all()
