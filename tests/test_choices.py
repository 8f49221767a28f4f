"""Multiple-response questions (the reasons people give): the codebook and file checks, the
routing rule, the likelihood term, the twin, and a real fit that recovers planted shares and
says "contradicts" to an ordering the data reverse."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytensor
import pytest
from conftest import PLANTED_BACKEND, density_function, generic_codebook
from scipy.special import expit

import scsurvey as ss
from scsurvey.core import dims
from scsurvey.core.dims import CHOICE
from scsurvey.inputs.choices import CHOSEN, NO_ANSWER, NOT_ASKED, NOT_CHOSEN
from scsurvey.inputs.codebook import CodebookError, parse_codebook
from scsurvey.inputs.survey import DataError, prepare
from scsurvey.model.graph import build
from scsurvey.model.spec import SpecError, parse_spec, spec_from_configs
from scsurvey.posterior import choices


def _codebook_dict(asked_support="support", route="a"):
    """One battery of six five-point items and two routed questions: three reasons to those
    who support on the battery, two to those who oppose."""
    raw = generic_codebook(batteries=(("a", 6),), groups=False)
    raw["multiple_response"] = [
        {
            "id": "why_yes",
            "label": "Reasons for supporting",
            "battery": "a",
            "asked": asked_support,
            "route": route,
            "options": [
                {"id": "order", "column": "r_order", "label": "order"},
                {"id": "fair", "column": "r_fair", "label": "fairness"},
                {"id": "other", "column": "r_other", "label": "another reason"},
            ],
        },
        {
            "id": "why_no",
            "label": "Reasons for opposing",
            "battery": "a",
            "asked": "oppose",
            "route": "a",
            "options": [
                {"id": "privacy", "column": "r_privacy", "label": "privacy"},
                {"id": "abuse", "column": "r_abuse", "label": "abuse"},
            ],
        },
    ]
    raw["findings"] = [
        # the simulated survey reverses this one (fairness is chosen far more than order) ...
        {"question": "why_yes", "more": ["order"], "less": ["fair"], "text": "order before fairness"},
        # ... and bears this one out
        {"question": "why_no", "more": ["privacy"], "less": ["abuse"], "text": "privacy before abuse"},
    ]
    return raw


INTERCEPT = np.array([-1.4, 0.6, -0.6, 0.5, -1.2])  # order, fair, other | privacy, abuse
SLOPE = np.array([0.6, 0.3, 0.0, -0.5, -0.3])


def _survey(n=800, seed=11):
    """A survey simulated from the model: latent support, six items, routing on the battery
    and each option chosen with probability expit(intercept + slope * theta)."""
    rng = np.random.default_rng(seed)
    raw = _codebook_dict()
    theta = rng.normal(0.0, 1.3, n)
    cuts = np.array([-2.2, -0.9, 0.3, 1.6])
    frame = {"id": np.arange(1, n + 1), "x1": rng.normal(size=n), "sex": rng.integers(0, 2, n)}
    for j in range(6):
        offset = rng.normal(0, 0.3)
        frame[f"q_a{j}"] = 1 + ((theta + offset + rng.logistic(size=n))[:, None] > cuts).sum(axis=1)
    frame = pd.DataFrame(frame)
    index = frame[[f"q_a{j}" for j in range(6)]].mean(axis=1).to_numpy()
    asked = {"why_yes": index > 3, "why_no": index < 3}
    p = expit(INTERCEPT + SLOPE * theta[:, None])
    truth = np.empty(len(INTERCEPT))
    for k, (column, q) in enumerate(
        [
            ("r_order", "why_yes"),
            ("r_fair", "why_yes"),
            ("r_other", "why_yes"),
            ("r_privacy", "why_no"),
            ("r_abuse", "why_no"),
        ]
    ):
        drawn = (rng.random(n) < p[:, k]).astype(float)
        frame[column] = np.where(asked[q], drawn, np.nan)
        truth[k] = p[asked[q], k].mean()
    return raw, frame, truth


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["multiple_response"][0].update(battery="nope"), "unknown battery 'nope'"),
        (lambda r: r["multiple_response"][0].update(asked="some"), "asked = 'some' is not one of"),
        (lambda r: r["multiple_response"][0].pop("route"), "names the battery or column that routes it"),
        (lambda r: r["multiple_response"][1]["options"][0].update(id="order"), "duplicate ids \\['order'\\]"),
        (lambda r: r["multiple_response"][1]["options"][0].update(column="q_a0"), "also item columns"),
        (lambda r: r["findings"][0].update(more=["nope"]), "options \\['nope'\\] that why_yes does not have"),
        (lambda r: r["findings"][0].update(less=["order"]), "on both sides"),
        (lambda r: r["findings"][0].update(question="why"), "unknown multiple-response question"),
    ],
)
def test_a_malformed_question_is_refused_naming_the_entry(edit, message):
    raw = _codebook_dict()
    edit(raw)
    with pytest.raises(CodebookError, match=message):
        parse_codebook(raw, "cb.toml")


def test_the_routing_rule_decides_who_was_asked_and_nobody_else_counts():
    raw, frame, _ = _survey(n=300)
    data = prepare(frame, parse_codebook(raw), source="s.csv")
    index = frame[[f"q_a{j}" for j in range(6)]].mean(axis=1).to_numpy()
    yes, no = data.choices["why_yes"], data.choices["why_no"]
    assert ((yes[:, 0] != NOT_ASKED) == (index > 3)).all()
    assert ((no[:, 0] != NOT_ASKED) == (index < 3)).all()
    neither = index == 3
    assert neither.any() and (yes[neither] == NOT_ASKED).all() and (no[neither] == NOT_ASKED).all()
    answered = yes[index > 3]
    assert set(np.unique(answered)) == {CHOSEN, NOT_CHOSEN}
    # a blank of someone asked is no answer, not "not chosen"
    frame.loc[np.flatnonzero(index > 3)[0], "r_order"] = np.nan
    assert (
        prepare(frame, parse_codebook(raw)).choices["why_yes"][np.flatnonzero(index > 3)[0], 0] == NO_ANSWER
    )


def test_a_question_routed_on_a_column_reads_its_support_codes():
    raw, frame, _ = _survey(n=200)
    frame["overall"] = np.where(frame["q_a0"] >= 4, frame["q_a0"], 2)
    raw["multiple_response"][0]["route"] = "overall"
    asked = frame["overall"] >= 4
    for column in ("r_order", "r_fair", "r_other"):
        frame[column] = np.where(asked, 0, np.nan)
    data = prepare(frame, parse_codebook(raw))
    assert ((data.choices["why_yes"][:, 0] != NOT_ASKED) == asked.to_numpy()).all()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda f: f.update({"r_fair": f["r_fair"].fillna(0)}),
            r"s.csv: column 'r_fair' \(option fair of why_yes\): respondents \[.*\] answered it .* "
            r"asks only those who support on 'a'",
        ),
        (
            lambda f: f.loc.__setitem__((f["r_order"].notna().idxmax(), "r_order"), 7),
            r"s.csv: column 'r_order' \(option order of why_yes\): codes \[7\] are not chosen",
        ),
        (lambda f: f.__delitem__("r_abuse"), r"missing columns \['r_abuse'\]"),
    ],
)
def test_bad_multiple_response_columns_are_refused_naming_file_column_and_values(edit, message):
    raw, frame, _ = _survey(n=200)
    edit(frame)
    with pytest.raises(DataError, match=message):
        prepare(frame, parse_codebook(raw), source="s.csv")


def test_a_routing_column_that_does_not_exist_is_named():
    raw, frame, _ = _survey(n=100)
    raw["multiple_response"][0]["route"] = "overall_support"
    with pytest.raises(
        DataError, match="column 'overall_support', the route of multiple-response question 'why_yes'"
    ):
        prepare(frame, parse_codebook(raw, "cb.toml"), source="s.csv")


def test_the_spec_names_questions_the_codebook_has_and_needs_a_residual():
    raw, frame, _ = _survey(n=100)
    data = prepare(frame, parse_codebook(raw))
    with pytest.raises(SpecError, match=r"components.multiple_response: \['why'\] not in codebook"):
        build(spec_from_configs("m", {"multiple_response": ["why"]}), data)
    with pytest.raises(SpecError, match=r"needs components.residual = true"):
        parse_spec(
            {"components": {"multiple_response": True, "residual": False, "discrimination": False}}, "m"
        )


def test_an_unused_multiple_response_prior_leaves_the_spec_hash_alone():
    plain = parse_spec({}, "m")
    tuned = parse_spec({"priors": {"option_slope": {"sigma": 0.8}}}, "m")
    used = parse_spec({"components": {"multiple_response": True}}, "m")
    used_tuned = parse_spec({"components": {"multiple_response": True}, "priors": tuned.priors}, "m")
    assert plain.hash() == tuned.hash()
    assert used.hash() != plain.hash() and used_tuned.hash() != used.hash()


def test_the_likelihood_counts_only_answers_of_those_asked():
    """The choice term's log-density at a random point equals the Bernoulli log-likelihood
    summed over answered cells of respondents asked (to 1e-9)."""
    raw, frame, _ = _survey(n=150)
    data = prepare(frame, parse_codebook(raw))
    model = build(spec_from_configs("m", {"multiple_response": True}), data).model
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
    logp = model.compile_logp(vars=[model[CHOICE]])(point)
    outputs = model.replace_rvs_by_values([model["theta"], model["option_intercept"], model["option_slope"]])
    values = pytensor.function(model.value_vars, outputs, on_unused_input="ignore")(
        **{v.name: point[v.name] for v in model.value_vars}
    )
    theta, a, b = values
    codes = np.concatenate([data.choices["why_yes"], data.choices["why_no"]], axis=1)
    p = expit(a + b * theta[:, [0]])
    expected = np.where(codes == 1, np.log(p), np.where(codes == 0, np.log1p(-p), 0.0)).sum()
    np.testing.assert_allclose(logp, expected, rtol=1e-9)


def test_the_twin_asks_only_whom_its_codebook_routes_and_hits_its_assumed_shares(small_twin):
    twin, csv, _ = small_twin
    cb = ss.load_codebook("data/codebook/scs2020.toml")
    data = prepare(pd.read_csv(csv), cb)
    frame = pd.read_csv(csv)
    for q in cb.multiple_response:
        codes = data.choices[q.id]
        asked = codes[:, 0] != NOT_ASKED
        blank = frame[[o.column for o in q.options]].isna().all(axis=1).to_numpy()
        assert (blank == ~asked).all()
        assert 0 < asked.sum() < len(frame)
    # the intercepts were solved on the population: its shares are the assumed ones (to 1e-6)
    assert set(twin.truth) >= {"option_intercept", "option_slope", "option_share"}
    calib = twin.config["_calibration"]["multiple_response"]
    assert len(calib) == len(cb.option_ids)


@pytest.fixture(scope="module")
def planted_fit():
    """A real fit (the whole pipeline) of a survey whose supporters choose fairness far more
    often than order, against a codebook that publishes the reverse."""
    raw, frame, truth = _survey()
    raw["multiple_response"][0]["options"][1]["label"] = "<b>fair</b> & square"
    m = ss.SurveyModel(
        frame,
        parse_codebook(raw),
        model_config={"multiple_response": True},
        sampler_config={"draws": 400, "tune": 400, "chains": 2, "rounds": 2, **PLANTED_BACKEND},
    )
    m.fit(progress=False)
    return truth, m


def test_the_planted_shares_are_recovered(planted_fit):
    """Tolerance: each option's true share (the mean of its true probability over those
    asked) within 3.5 posterior sds of the posterior mean; a miss has probability about
    5e-4 per option under a calibrated posterior."""
    truth, m = planted_fit
    draws = choices.share_draws(m.idata)
    mean, sd = draws.mean(dims.STACKED).values, draws.std(dims.STACKED).values
    assert (np.abs(mean - truth) < 3.5 * sd).all(), (mean, sd, truth)
    shares = choices.option_shares(m.idata, m.data.codebook)
    assert (shares["lower"] < shares["model"]).all() and (shares["model"] < shares["upper"]).all()


def test_a_reversed_ordering_is_contradicted_and_a_true_one_agrees(planted_fit):
    _, m = planted_fit
    verdicts = choices.ordering_verdicts(m.idata, m.data.codebook).set_index("more")
    assert verdicts.loc["order", "verdict"] == "contradicts", verdicts
    assert verdicts.loc["privacy", "verdict"] == "agrees", verdicts


def test_replicated_choices_leave_those_not_asked_unasked(planted_fit):
    _, m = planted_fit
    rep = m.idata.posterior_predictive[CHOICE].values
    observed = m.idata.observed_data[CHOICE].values
    assert ((rep == NOT_ASKED) == (observed == NOT_ASKED)[None, None]).all()
    assert set(np.unique(rep[:, :, observed != NOT_ASKED])) == {0, 1}


def test_the_report_gives_shares_verdicts_and_the_figure(planted_fit, tmp_path):
    from scsurvey.report.html import render_report

    _, m = planted_fit
    spec = spec_from_configs("planted", m.model_config)
    page = render_report(m.idata, spec, m.data.codebook, {}, tmp_path).read_text()
    section = page.split('id="reasons"')[1].split("<h2")[0]
    assert "Why people support or oppose" in page
    assert section.count('class="contradicts"') == 1 and section.count('class="agrees"') == 1
    assert "<b>fair</b>" not in page and "&lt;b&gt;fair&lt;/b&gt; &amp; square" in section
    assert (tmp_path / "figures" / "reasons.png").stat().st_size > 0


def test_the_reasons_figure_draws_no_label_over_another(planted_fit):
    from scsurvey.report import plots

    _, m = planted_fit
    shares = choices.option_shares(m.idata, m.data.codebook)
    labels = {o.id: o.label * 3 for q in m.data.codebook.multiple_response for o in q.options}
    fig = plots.choice_curves(choices.choice_curves(m.idata), shares, labels)
    assert plots.overlapping_labels(fig) == []


def test_a_codebook_without_questions_keeps_its_hash():
    """The hash a stored posterior was checked against must not move for codebooks that do
    not use the new tables: parsing the same dict with an empty [[multiple_response]] list
    changes nothing."""
    from scsurvey.inputs.survey import codebook_hash

    raw = generic_codebook()
    with_empty = copy.deepcopy(raw)
    with_empty["multiple_response"] = []
    assert codebook_hash(parse_codebook(raw)) == codebook_hash(parse_codebook(with_empty))
    assert codebook_hash(parse_codebook(_codebook_dict())) != codebook_hash(
        parse_codebook(
            {k: v for k, v in _codebook_dict().items() if k not in ("multiple_response", "findings")}
        )
    )


def test_a_saved_reasons_fit_loads_with_its_questions(planted_fit, tmp_path):
    _, m = planted_fit
    m.save(tmp_path / "reasons.nc")
    again = ss.load(tmp_path / "reasons.nc")
    for q in ("why_yes", "why_no"):
        np.testing.assert_array_equal(again.data.choices[q], m.data.choices[q])
    again_shares = choices.option_shares(again.idata, again.data.codebook)
    pd.testing.assert_frame_equal(again_shares, choices.option_shares(m.idata, m.data.codebook), rtol=1e-5)


@pytest.mark.reasons_study
def test_the_reasons_study_meets_its_targets(root):
    """make reasons-study: 8 twins simulated afresh and fitted with full_reasons. Targets:
    at least 80% of the 72 option shares' 90% intervals cover the truth (about three
    binomial sds below 90%), and no published ordering, which every twin respects, is
    contradicted."""
    from scsurvey.workflows import reasons_study

    summary = reasons_study.summarize(reasons_study.run(root=root))
    assert all(summary["passes"].values()), reasons_study.format_summary(summary)


def test_sbc_of_a_reasons_spec_is_refused_naming_the_key(tmp_path):
    from conftest import make_project

    from scsurvey.workflows import sbc

    root = make_project(tmp_path, "unread.csv", spec="full_reasons")  # refused before any read
    with pytest.raises(SpecError, match=r"components.multiple_response: SBC of the reasons is not built"):
        sbc.run(sbc.Settings(model="full_reasons", n_sims=2), root=root)


def test_a_question_put_to_everyone_with_text_codes_is_read():
    raw, frame, _ = _survey(n=120)
    raw["multiple_response"][1].update(asked="everyone", chosen="yes", not_chosen="no")
    del raw["multiple_response"][1]["route"]
    for column in ("r_privacy", "r_abuse"):
        frame[column] = np.where(np.arange(120) % 3 == 0, "yes", "no")
    frame.loc[5, "r_abuse"] = np.nan
    codes = prepare(frame, parse_codebook(raw)).choices["why_no"]
    assert (codes != NOT_ASKED).all()
    assert (codes[::3, 0] == CHOSEN).all() and codes[5, 1] == NO_ANSWER
    assert ((codes == NOT_CHOSEN).sum(axis=0) == [80, 79]).all()


@pytest.mark.parametrize(("mode", "link"), [("NUMBA", "logit"), ("JAX", "probit")])
def test_every_backend_and_link_computes_the_same_density(mode, link):
    """nutpie's two backends compile the model with Numba or JAX: each must give the density
    and gradient of PyTensor's Python reference at a random point (1e-8 relative). The
    choices' part does not depend on the link: each link runs once."""
    from pymc.model.transform.optimization import freeze_dims_and_data

    from scsurvey.model import fused_likelihood

    fused_likelihood.register_jax()  # as the JAX paths do before compiling
    raw, frame, _ = _survey(n=120)
    data = prepare(frame, parse_codebook(raw))
    model = build(spec_from_configs("m", {"multiple_response": True, "link": link}), data).model
    rng = np.random.default_rng(1)
    point = {k: v + rng.normal(0, 0.2, np.shape(v)) for k, v in model.initial_point().items()}
    names = [rv.name for rv in model.free_RVs]
    reference = density_function(model, names, "FAST_COMPILE")(point)
    # the JAX path compiles with the data frozen, as nutpie's JAX backend does
    other = density_function(freeze_dims_and_data(model) if mode == "JAX" else model, names, mode)(point)
    np.testing.assert_allclose(other[0], reference[0], rtol=1e-8)
    np.testing.assert_allclose(other[1], reference[1], rtol=1e-8, atol=1e-10)


def test_a_stray_text_code_among_numeric_options_is_the_one_named():
    """A numeric option column with one text entry is compared as text: the error names the
    stray code alone, not the 1.0s and 0.0s beside it."""
    raw, frame, _ = _survey(n=120)
    asked = np.flatnonzero(frame["r_order"].notna())
    frame["r_order"] = frame["r_order"].astype(object)
    frame.loc[asked[0], "r_order"] = "x"
    with pytest.raises(
        DataError, match=r"column 'r_order' \(option order of why_yes\): codes \['x'\] are not"
    ):
        prepare(frame, parse_codebook(raw), source="s.csv")


def test_text_non_answer_codes_on_a_numeric_scale_are_refused():
    raw = _codebook_dict()
    raw["scale"]["missing"] = ["DK"]
    with pytest.raises(CodebookError, match=r"\[scale\].missing: codes \['DK'\] are text"):
        parse_codebook(raw, "cb.toml")
