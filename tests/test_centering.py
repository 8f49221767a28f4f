"""Partial centring of the pooled item blocks: the data-driven choice, and that it leaves the
model unchanged."""

import numpy as np
import pymc as pm
import pytest
from conftest import generic_codebook, generic_frame
from scipy import stats

from scsurvey.inputs.codebook import parse_codebook
from scsurvey.inputs.survey import prepare
from scsurvey.model.graph import build
from scsurvey.model.likelihood import ordinal_random
from scsurvey.model.parameterisation import gap_pilot, group_pilot, resolve
from scsurvey.model.priors import DEFAULT_PRIORS
from scsurvey.model.spec import SpecError, parse_spec

K = 6


def simulated_answers(n, n_items, gap_sd, seed):
    """Answers of a one-battery graded-response survey whose log gaps vary by ``gap_sd``."""
    rng = np.random.default_rng(seed)
    g = np.log(0.9) + rng.normal(0, gap_sd, (n_items, K - 2))
    alpha = rng.normal(-2.0, 0.4, n_items)
    cuts = np.concatenate([alpha[:, None], alpha[:, None] + np.cumsum(np.exp(g), axis=1)], axis=1)
    eta = rng.standard_normal((n, 1)) * np.exp(rng.normal(0, 0.3, n_items))
    return ordinal_random(eta, np.broadcast_to(cuts, (n, n_items, K - 1)), rng=rng)


def test_few_answers_per_item_choose_the_non_centred_form():
    # 80 answers per item, item gaps nearly alike: pooling does the work, w near 0
    y = simulated_answers(80, 6, gap_sd=0.05, seed=1)
    (pilot,) = gap_pilot(y, np.zeros(6, int), K, prior_rms=0.5)
    assert pilot["w"] < 0.3, pilot


def test_thousands_of_answers_per_item_choose_the_centred_form():
    # 3,000 answers per item, item gaps that differ: each item pins its own gaps, w near 1
    y = simulated_answers(3000, 6, gap_sd=0.4, seed=2)
    (pilot,) = gap_pilot(y, np.zeros(6, int), K, prior_rms=0.5)
    assert pilot["w"] > 0.8, pilot


def test_one_rare_category_does_not_send_a_well_answered_battery_non_centred():
    # as in the thousands case, but one item's second category has 5 answers: its gap is
    # left out of the pilot, the others still choose the centred form
    y = simulated_answers(3000, 6, gap_sd=0.4, seed=2)
    answered = np.flatnonzero(y[:, 0] == 1)
    y[answered[5:], 0] = 2
    (pilot,) = gap_pilot(y, np.zeros(6, int), K, prior_rms=0.5)
    assert pilot["min_count"] == 5 and pilot["w"] > 0.8, pilot
    # when most elements rest on fewer than 20 answers, the pilot says nothing: w = 0
    few = simulated_answers(30, 6, gap_sd=0.4, seed=2)
    (pilot,) = gap_pilot(few, np.zeros(6, int), K, prior_rms=0.5)
    assert pilot["w"] == 0.0, pilot


def test_pilot_sampling_variance_matches_monte_carlo():
    """The delta-method variance of an empirical log gap against its spread over 400 surveys.

    Tolerance 25%: the Monte Carlo sd of a variance from 400 replicates is about 7%, and the
    delta method is first order."""
    rng = np.random.default_rng(3)
    probs = np.array([0.1, 0.15, 0.2, 0.25, 0.2, 0.1])
    reps, n = 400, 500
    log_gaps, s2 = [], []
    for _ in range(reps):
        y = rng.choice(K, size=(n, 1), p=probs)
        counts = np.bincount(y[:, 0], minlength=K) + 0.5
        cum = np.cumsum(counts)[:-1] / counts.sum()
        log_gaps.append(np.log(np.diff(np.log(cum / (1 - cum)))))
        s2.append(gap_pilot(y, np.zeros(1, int), K, prior_rms=0.5)[0]["s2"])
    mc = np.var(np.array(log_gaps), axis=0, ddof=1).mean()
    assert abs(np.mean(s2) / mc - 1) < 0.25, (np.mean(s2), mc)


def test_one_item_battery_borrows_the_prior_scale():
    y = simulated_answers(2000, 1, gap_sd=0.0, seed=4)
    (pilot,) = gap_pilot(y, np.zeros(1, int), K, prior_rms=0.5)
    assert pilot["tau2"] == pytest.approx(0.25) and pilot["w"] > 0.9


@pytest.mark.parametrize("w", [0.0, 0.5, 1.0])
def test_partial_centring_leaves_the_prior_of_the_gaps_unchanged(w):
    """Prior draws of g under weight w against the non-centred form's: two-sample KS per
    element, p > 0.001 (2,000 draws each; a false alarm over the 4 x 3 tests is < 2%)."""
    raw = generic_codebook(n_categories=5, batteries=(("a", 4),), groups=False)
    data = prepare(generic_frame(raw, n=40), parse_codebook(raw), "generic")
    spec = parse_spec({"centering": {"gaps": w}}, "t")
    base = parse_spec({"centering": {"gaps": False}}, "t")
    draws = [
        pm.draw(build(s, data).model["g"], draws=2000, random_seed=seed).reshape(2000, -1)
        for s, seed in ((spec, 1), (base, 2))
    ]
    for col in range(4):
        assert stats.ks_2samp(draws[0][:, col], draws[1][:, col]).pvalue > 0.001


def test_auto_resolves_per_battery_and_explicit_values_win():
    y = np.concatenate(
        [simulated_answers(3000, 4, 0.4, seed=5), simulated_answers(3000, 4, 0.02, seed=6)], axis=1
    )
    batteries = np.repeat([0, 1], 4)
    auto = resolve({"gaps": "auto"}, y, batteries, K, DEFAULT_PRIORS)
    assert auto.gaps[0] > 0.8 and auto.gaps[1] < auto.gaps[0], auto
    assert len(auto.evidence["gaps"]) == 2
    fixed = resolve({"gaps": 0.0, "item_deviations": 1.0}, y, batteries, K, DEFAULT_PRIORS)
    assert fixed.gaps == (0.0, 0.0) and fixed.item_deviations == (1.0, 1.0)
    # nothing answered yet (the twin simulator): auto is the non-centred form
    assert resolve({}, None, batteries, K, DEFAULT_PRIORS).gaps == (0.0, 0.0)


@pytest.mark.parametrize("value", ["centred", 1.5, -0.1, [1]])
def test_a_bad_centring_value_names_the_key(value):
    with pytest.raises(SpecError, match=r"centering\.gaps"):
        parse_spec({"centering": {"gaps": value}}, "t")
    with pytest.raises(SpecError, match=r"centering\.thresholds"):
        parse_spec({"centering": {"thresholds": True}}, "t")


def test_item_deviations_in_a_one_item_battery_are_refused_before_compiling():
    raw = generic_codebook(batteries=(("a", 3), ("b", 1)), groups=False)
    data = prepare(generic_frame(raw, n=40), parse_codebook(raw), "generic")
    spec = parse_spec(
        {"components": {"covariates": True, "item_covariates": ["x1"]}},
        "t",
        "spec.toml",
    )
    with pytest.raises(SpecError, match=r"spec\.toml: components\.item_covariates.*\['b'\] have one item"):
        build(spec, data)


def test_a_group_with_one_level_in_the_data_is_refused_by_name():
    raw = generic_codebook()
    frame = generic_frame(raw, n=40)
    frame["site"] = "s2"
    data = prepare(frame, parse_codebook(raw), "generic")
    spec = parse_spec({"components": {"groups": ["site"]}}, "t", "spec.toml")
    with pytest.raises(
        SpecError, match=r"components\.groups: 'site' has respondents in one level only \('s2'\)"
    ):
        build(spec, data)


def grouped_answers(n, n_levels, group_sd, seed):
    """One battery of 5 five-point items; respondents in groups whose effects vary by group_sd."""
    rng = np.random.default_rng(seed)
    level = rng.integers(0, n_levels, n)
    theta = rng.normal(0, group_sd, n_levels)[level] + rng.standard_normal(n)
    cuts = np.broadcast_to(np.array([-1.5, -0.5, 0.5, 1.5]), (n, 5, 4))
    return ordinal_random(np.repeat(theta[:, None], 5, axis=1), cuts, rng=rng), level


def test_groups_of_hundreds_with_real_differences_choose_the_centred_form():
    y, level = grouped_answers(3000, 6, group_sd=0.5, seed=7)
    (pilot,) = group_pilot(y, np.zeros(5, int), {"site": level})["site"]
    assert pilot["w"] > 0.8, pilot


def test_many_small_groups_with_small_differences_choose_the_non_centred_form():
    """60 levels of about 10: the pilot's between-level variance is noisy, so judge it over
    8 surveys: median weight below 0.2 and none above 0.5 (measured: 0 to 0.33)."""
    weights = []
    for seed in range(8, 16):
        y, level = grouped_answers(600, 60, group_sd=0.05, seed=seed)
        weights.append(group_pilot(y, np.zeros(5, int), {"site": level})["site"][0]["w"])
    assert np.median(weights) < 0.2 and max(weights) < 0.5, weights


def test_an_unbalanced_factor_is_judged_by_the_sampling_variance_of_its_levels():
    """Levels of 1,150 and 16 respondents (as `mrp`'s age bands): the pilot's ``s2`` is the
    sampling variance of a level's mean score averaged over levels, which 300 simulated
    surveys without group differences measure. Tolerance 20% (the Monte Carlo variance of
    300 draws has a relative sd of about 8%). A level of mean size would put it 18 times
    lower and call the factor well informed."""
    rng = np.random.default_rng(3)
    level = np.repeat([0, 1], [1150, 16])
    means, s2 = [], []
    cuts = np.broadcast_to(np.array([-1.5, -0.5, 0.5, 1.5]), (len(level), 5, 4))
    for _ in range(300):
        theta = np.repeat(rng.standard_normal(len(level))[:, None], 5, axis=1)
        y = ordinal_random(theta, cuts, rng=rng)
        z = (y - y.mean(axis=0)) / y.std(axis=0)
        score = z.mean(axis=1) - z.mean()
        means.append([score[level == k].mean() for k in (0, 1)])
        s2.append(group_pilot(y, np.zeros(5, int), {"age": level})["age"][0]["s2"])
    monte_carlo = np.var(np.array(means), axis=0, ddof=1).mean()
    assert abs(np.mean(s2) / monte_carlo - 1) < 0.2, (np.mean(s2), monte_carlo)


@pytest.mark.parametrize("w", [0.0, 0.6, 1.0])
def test_partial_centring_leaves_the_prior_of_group_effects_unchanged(w):
    """u under weight w against the non-centred form: KS per element, p > 0.001."""
    raw = generic_codebook(n_categories=5, batteries=(("a", 4),))
    data = prepare(generic_frame(raw, n=40), parse_codebook(raw), "generic")
    comp = {"groups": ["site"]}
    spec = parse_spec({"components": comp, "centering": {"groups": w}}, "t")
    base = parse_spec({"components": comp, "centering": {"groups": 0}}, "t")
    draws = [
        pm.draw(build(s, data).model["u_site"], draws=2000, random_seed=seed).reshape(2000, -1)
        for s, seed in ((spec, 3), (base, 4))
    ]
    for col in range(3):
        assert stats.ks_2samp(draws[0][:, col], draws[1][:, col]).pvalue > 0.001
    np.testing.assert_allclose(draws[0].sum(axis=1), 0, atol=1e-9)  # still zero-sum
