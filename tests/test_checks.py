"""Checks and summaries on hand-built InferenceData (known answers) and a tiny stored fit."""

from pathlib import Path

import arviz as az
import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from scsurvey.core import dims
from scsurvey.core.dims import RESPONDENT_DRAWS
from scsurvey.inputs.codebook import load_codebook
from scsurvey.posterior import checks, item_person_fit, summaries
from scsurvey.report import plots

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_full.nc"
CATS = ["no", "maybe", "yes"]


def hand_built(observed, replicated, groups=None):
    """InferenceData with given observed answers (r x i) and replicated ones (c x d x r x i)."""
    observed = np.asarray(observed)
    replicated = np.asarray(replicated)
    n_r, n_i = observed.shape
    coords = {
        dims.RESPONDENT: [f"r{k}" for k in range(n_r)],
        dims.ITEM: [f"i{k}" for k in range(n_i)],
    }
    constant = {
        "battery_of_item": ((dims.ITEM,), np.array(["b"] * n_i)),
        "support": ((dims.CATEGORY,), np.array([False, False, True])),
        "category_code": ((dims.CATEGORY,), np.array([1.0, 2.0, 3.0])),
    }
    c_coords = {**coords, dims.CATEGORY: CATS}
    for name, (index, levels) in (groups or {}).items():
        constant[f"index_{name}"] = ((dims.RESPONDENT,), np.asarray(index))
        c_coords[name] = levels
    return az.InferenceData(
        posterior_predictive=xr.Dataset(
            {"y": (("chain", "draw", dims.RESPONDENT, dims.ITEM), replicated)}, coords=coords
        ),
        observed_data=xr.Dataset({"y": ((dims.RESPONDENT, dims.ITEM), observed)}, coords=coords),
        constant_data=xr.Dataset(constant, coords=c_coords),
    )


OBS = [[0, 2], [2, -1], [2, 1], [1, 2]]
# two draws: the first reproduces the data; the second answers 0 everywhere
REP = np.array([[[[0, 2], [2, 0], [2, 1], [1, 2]], [[0, 0], [0, 0], [0, 0], [0, 0]]]])


def test_category_frequencies_known_answer():
    f = checks.category_frequencies(hand_built(OBS, REP), max_draws=None)
    # item i0: answers 0, 2, 2, 1 -> shares 1/4, 1/4, 2/4; item i1 (one missing): 2, 1, 2
    np.testing.assert_allclose(f["observed"].sel(item="i0"), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(f["observed"].sel(item="i1"), [0, 1 / 3, 2 / 3])
    # replicated mean over the two draws; the missing cell of i1 is left out of both
    np.testing.assert_allclose(f["mean"].sel(item="i0"), [(0.25 + 1) / 2, 0.25 / 2, 0.5 / 2])
    np.testing.assert_allclose(f["mean"].sel(item="i1"), [(0 + 1) / 2, (1 / 3) / 2, (2 / 3) / 2])
    assert list(f[dims.CATEGORY].values) == CATS


def test_group_support_known_answer():
    idata = hand_built(OBS, REP, groups={"site": ([0, 0, 1, 1], ["a", "b"])})
    g = checks.group_support(idata, "site", max_draws=None)
    # site a: respondents r0, r1 -> item i0 answers 0, 2 -> support 1/2; i1 answers 2, missing -> 1
    assert g["observed"].sel(site="a", item="i0") == 0.5
    assert g["observed"].sel(site="a", item="i1") == 1.0
    assert g["n"].sel(site="a", item="i1") == 1
    np.testing.assert_allclose(g["mean"].sel(site="b", item="i1"), (1 / 2 + 0) / 2)


def test_support_table_known_answer(codebook):
    table = summaries.support_table(hand_built(OBS, REP), max_draws=None)
    assert table.loc["i0", "observed"] == 0.5
    assert table.loc["i1", "observed"] == pytest.approx(2 / 3)
    assert table.loc["i0", "model"] == pytest.approx(0.25)
    assert np.isnan(table.loc["i0", "published"])


def test_battery_index_known_answer():
    out = checks.battery_index(hand_built(OBS, REP), max_draws=None)["b"]
    # respondent means (codes 1..3): r0 (1+3)/2 = 2, r1 3 (one answer), r2 2.5, r3 2.5
    assert out.attrs["observed_mean"] == pytest.approx((2 + 3 + 2.5 + 2.5) / 4)
    assert out["observed"].sum() == 4
    assert out.attrs["replicated_mean"] == pytest.approx(((2 + 3 + 2.5 + 2.5) / 4 + 1) / 2)


def test_pit_is_uniform_when_data_come_from_the_predictive():
    """The randomised PIT against a predictive given as draws (the in-sample kind's code)."""
    rng = np.random.default_rng(0)
    probs = np.array([0.2, 0.5, 0.3])
    rep = rng.choice(3, size=(1, 400, 300, 2), p=probs)
    obs = rng.choice(3, size=(300, 2), p=probs)
    pit = checks.randomized_pit(hand_built(obs, rep), "in_sample", max_draws=None, bins=10)
    # calibrated by construction: KS p-values should not be tiny (alpha 0.001)
    assert (pit["p_uniform"] > 0.001).all(), pit["p_uniform"]
    # a miscalibrated predictive (shifted toward "no") is caught
    bad = rng.choice(3, size=(1, 400, 300, 2), p=[0.6, 0.3, 0.1])
    shifted = checks.randomized_pit(hand_built(obs, bad), "in_sample", max_draws=None, bins=10)
    assert (shifted["p_uniform"] < 1e-6).all()


@pytest.fixture(scope="module")
def tiny():
    return az.from_netcdf(FIXTURE)


def test_fixture_has_every_group(tiny):
    assert {
        "posterior",
        "posterior_predictive",
        "log_likelihood",
        "observed_data",
        "constant_data",
        "sample_stats",
        "prior",
        "prior_predictive",
    } <= set(tiny.groups())


def test_who_supports_verdicts_follow_the_intervals(tiny, codebook):
    who = summaries.who_supports(tiny, codebook)
    assert set(who["verdict"]) <= {"agrees", "contradicts", "uncertain"}
    for _, row in who.iterrows():
        sign = 1 if row["published"] == "+" else -1
        if row["verdict"] == "agrees":  # the interval lies wholly on the published side
            assert row["low"] > 0 if sign > 0 else row["high"] < 0
        if row["verdict"] == "contradicts":
            assert row["high"] < 0 if sign > 0 else row["low"] > 0
        if row["verdict"] == "uncertain":
            assert row["low"] <= 0 <= row["high"]
    # media_foreign is published for surveillance only
    assert (who[who["covariate"] == "media_foreign"]["battery"] == "surveillance").all()
    assert len(who) == 2 * (len(codebook.findings) - 1) + 1


def test_covariate_effects_probability_of_direction(tiny):
    eff = summaries.covariate_effects(tiny)
    beta = tiny.posterior["beta"].sel(battery="surveillance", covariate="trust_central").values.ravel()
    row = eff[(eff["battery"] == "surveillance") & (eff["covariate"] == "trust_central")].iloc[0]
    assert row["p_positive"] == pytest.approx((beta > 0).mean())
    assert row["p_direction"] == pytest.approx(max((beta > 0).mean(), (beta < 0).mean()))
    assert row["low"] <= row["mean"] <= row["high"]


def test_the_numpy_predictor_of_the_population_matches_the_model_graph(tiny, codebook, root):
    """The one NumPy evaluator (covariates, group intercepts, item deviations and
    discriminations, as the integrated likelihood and MRP read them) equals the PyMC graph's
    eta at a stored draw with every respondent's residual at zero."""
    from scsurvey.inputs.survey import prepare
    from scsurvey.model import predictor
    from scsurvey.model.graph import build
    from scsurvey.model.predictor import evaluate_graph
    from scsurvey.model.spec import load_spec
    from scsurvey.posterior.integrated_likelihood import population

    spec = load_spec(root / "models" / "full.toml")
    draw = 11  # chain 0
    post = tiny.posterior.isel(chain=0, draw=draw)
    data = prepare(_raw_frame(tiny, codebook), codebook, "fixture", require_answers=False)
    built = build(spec, data)
    values = {rv.name: post[rv.name].values for rv in built.model.free_RVs if rv.name in post}
    values["z_respondent"] = np.zeros((data.n_respondents, len(codebook.batteries)))
    for name in ("u_province", "u_occupation"):  # the stored intercepts, not their raw z
        values[name] = post[name].values
    eta_graph, _ = evaluate_graph(built, values)
    pop = population(tiny)
    eta_np = predictor.eta(pop.lam[[draw]], pop.mean[[draw]], pop.col, pop.offset[[draw]])[0]
    assert np.abs(eta_graph).max() > 0.1  # a graph at zero would prove nothing
    # float32 draws in the fixture (1e-7 relative); a wrong term is off by ~0.1
    np.testing.assert_allclose(eta_np, eta_graph, rtol=1e-5, atol=1e-5)


def test_linear_predictor_matches_the_model_graph(tiny, codebook, root):
    """The report's numpy eta must equal the PyMC model's eta for the same draw."""
    from scsurvey.inputs.survey import prepare
    from scsurvey.model.graph import build
    from scsurvey.model.predictor import evaluate_graph
    from scsurvey.model.spec import load_spec

    spec = load_spec(root / "models" / "full.toml")
    post = tiny.posterior.isel(chain=0, draw=7)
    cd = tiny.constant_data
    frame = pd.DataFrame(cd["X"].values, columns=cd["covariate_all"].values)
    data = prepare(_raw_frame(tiny, codebook), codebook, "fixture", require_answers=False)
    np.testing.assert_allclose(data.X, frame.to_numpy(), atol=1e-9)
    built = build(spec, data)
    # the traits are stored apart (their residuals not at all): fix theta itself in the graph
    theta = tiny[RESPONDENT_DRAWS]["theta"].sel(chain=post["chain"].item(), draw=post["draw"].item()).values
    values = {rv.name: post[rv.name].values for rv in built.model.free_RVs if rv.name in post}
    eta_model, _ = evaluate_graph(built, {**values, "theta": theta})
    theta = theta[None]  # (1, respondent, battery)
    x = dict.fromkeys(data.covariate_names, 0.0)
    draw = 7  # chain 0
    eta_np = summaries.linear_predictor(tiny, x, theta, np.array([draw]))[0]
    deviations = data.X[:, [data.covariate_names.index(c) for c in ("media_foreign", "credit_commercial")]]
    delta = post["delta"].values  # (item_covariate, item)
    # the fixture stores float32 draws (1e-7 relative); a wrong formula is off by ~0.1
    np.testing.assert_allclose(eta_np + deviations @ delta, eta_model, rtol=1e-5, atol=1e-5)


def _raw_frame(idata, codebook):
    """Rebuild a raw covariate table from the stored standardised one (for the model)."""
    cd = idata.constant_data
    X = cd["X"].values * cd["covariate_scale"].values + cd["covariate_center"].values
    frame = pd.DataFrame(X, columns=cd["covariate_all"].values)
    for cov in codebook.covariates:
        if cov.transform == "log":
            frame[cov.column] = np.exp(frame[cov.id])
    frame["resp_id"] = cd[dims.RESPONDENT].values
    for g in codebook.groups:
        levels = list(cd[g.id].values)
        idx = cd[f"index_{g.id}"].values
        if g.breaks is None:
            frame[g.column] = [levels[i] for i in idx]
    for column in [i.column for i in codebook.items] + [
        o.column for q in codebook.multiple_response for o in q.options
    ]:
        frame[column] = np.nan
    return frame


def test_profile_contrasts_have_the_effect_sign(tiny, codebook):
    table = summaries.profile_contrasts(tiny, codebook, max_draws=100)
    assert set(table["contrast"]) == {c.label for c in codebook.contrasts}
    trust = table[table["contrast"].str.startswith("High vs low trust")]
    # trust effects are positive in the twin; predicted support must rise with trust
    assert (trust["difference"] > 0).mean() > 0.8
    assert ((trust["low"] <= trust["difference"]) & (trust["difference"] <= trust["high"])).all()


def test_support_probability_is_a_probability(tiny):
    p = summaries.support_probability(tiny, {}, max_draws=50)
    assert p.dims == ("sample", dims.ITEM) and ((p > 0) & (p < 1)).all()


def test_group_shrinkage_and_loo(tiny):
    shrink = summaries.group_shrinkage(tiny)
    assert set(shrink) == {"province", "occupation"}  # the groups of `full` (models/full.toml)
    prov = shrink["province"]
    assert len(prov) == 2 * 31 and prov["n"].sum() == 2 * 80
    loo, k_table = checks.loo_respondents(tiny)
    assert k_table["respondents"].sum() == 80
    assert np.isfinite(loo.elpd_loo)


def test_every_check_draws_a_figure_without_touching_pyplot(tiny):
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    figs = [
        plots.category_frequencies(checks.category_frequencies(tiny)),
        plots.group_support(checks.group_support(tiny, "region"), "region"),
        plots.battery_index(checks.battery_index(tiny)),
        plots.pit(checks.randomized_pit(tiny)),
        plots.pareto_k(checks.loo_respondents(tiny)[0]),
    ]
    for fig in figs:
        assert isinstance(fig, matplotlib.figure.Figure) and fig.axes
    # pyplot's figure manager never saw them: nothing to close, no backend chosen for the user
    assert plt.get_fignums() == open_before


@pytest.mark.parametrize("kind", ["integrated", "conditional"])
def test_compare_models_ranks_by_elpd(tiny, kind):
    group = "log_likelihood_integrated" if kind == "integrated" else "log_likelihood"
    worse = tiny.copy()
    worse[group]["y"] = worse[group]["y"] - 1.0  # 1 nat worse per respondent
    table = summaries.compare_models({"good": tiny, "worse": worse}, kind)
    assert list(table.index) == ["good", "worse"]
    assert table.loc["worse", "elpd_diff"] == pytest.approx(80, rel=0.05)
    assert "reliable" in table.columns


def test_codebook_fixture_matches(codebook):
    assert load_codebook(codebook.path).findings == codebook.findings


def test_support_probability_adds_up_over_any_split_of_the_levels(tiny):
    """Shares of single levels sum to one, and a non-contiguous set is the sum of its parts:
    a share that assumed support at the top of the scale would break both."""

    def share(levels):
        idata = tiny.copy()
        mask = np.zeros(idata.constant_data.sizes[dims.CATEGORY], bool)
        mask[list(levels)] = True
        idata.constant_data = idata.constant_data.assign(support=(dims.CATEGORY, mask))
        return summaries.support_probability(idata, {}, max_draws=30).values

    singles = [share([k]) for k in range(5)]
    np.testing.assert_allclose(np.sum(singles, axis=0), 1.0, atol=1e-9)
    np.testing.assert_allclose(share([0, 4]), singles[0] + singles[4], atol=1e-9)
    np.testing.assert_allclose(share([1]), singles[1])
    assert (singles[0] > 0).all() and (singles[2] > 0).all()


def _text_boxes(fig):
    """Window extents of every visible, non-empty text of a drawn figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        texts += list(ax.texts)  # annotations (the published direction, ...)
        for axis, ticks in ((ax.xaxis, ax.get_xticks()), (ax.yaxis, ax.get_yticks())):
            if not axis.get_visible() or not ax.axison:  # a twin axes hides the axis it shares
                continue
            lo, hi = sorted(axis.get_view_interval())
            labels = axis.get_majorticklabels()
            # only the ticks drawn: matplotlib keeps label objects for ticks outside the view
            texts += [lab for loc, lab in zip(ticks, labels, strict=False) if lo - 1e-9 <= loc <= hi + 1e-9]
        legend = ax.get_legend()
        texts += list(legend.get_texts()) if legend else []
    for legend in fig.legends:
        texts += list(legend.get_texts())
    # twin axes share an axis and its labels: each text once
    texts = list({id(t): t for t in texts if t.get_visible() and t.get_text().strip()}.values())
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts], fig.bbox


def test_report_figures_keep_their_labels_inside_and_apart(tiny, codebook):
    """Every text label of every report figure lies inside the figure, and no two
    overlap (drawn at the report's size, with the codebook's long labels)."""
    items = {i.id: i.label for i in codebook.items}
    covs = {c.id: c.label for c in codebook.covariates}
    batteries = {b.id: b.label for b in codebook.batteries}
    published = {(b.id, f.covariate): f.direction for f in codebook.findings for b in codebook.batteries}
    longest = max(batteries.values(), key=len)
    chains = tiny.posterior["mu_alpha"].isel(battery=0).values
    figures = {
        "support": plots.support_per_item(summaries.support_table(tiny, codebook), items, batteries),
        "effects": plots.covariate_effects(summaries.covariate_effects(tiny), covs, batteries, published),
        "groups": plots.group_shrinkage(summaries.group_shrinkage(tiny)["province"], "province", batteries),
        # the report's rank plots: four panels titled with the longest battery label
        "ranks": plots.chain_ranks({f"{k}: spread of threshold gaps: {longest}": chains for k in range(4)}),
        "categories": plots.category_frequencies(checks.category_frequencies(tiny), items),
        "index": plots.battery_index(checks.battery_index(tiny), batteries),
        "pit": plots.pit(checks.randomized_pit(tiny)),
        "pareto": plots.pareto_k(checks.loo_respondents(tiny)[0]),
        "information": plots.information(item_person_fit.information(tiny), batteries),
        "contrasts": plots.profile_contrasts(summaries.profile_contrasts(tiny, codebook), items),
        "group support": plots.group_support(
            checks.group_support(tiny, "province"), "province", "province of residence"
        ),
    }
    for name, fig in figures.items():
        boxes, frame = _text_boxes(fig)
        assert len(boxes) > 5, name
        for text, box in boxes:
            assert box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1, (name, text)
            assert box.y0 >= frame.y0 - 1 and box.y1 <= frame.y1 + 1, (name, text)
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                (ta, ba), (tb, bb) = boxes[a], boxes[b]
                assert not ba.overlaps(bb), (name, ta, tb)
    # labels come from the codebook, not variable names
    support_texts = [t for t, _ in _text_boxes(figures["support"])[0]]
    assert any("domestic violence" in t for t in support_texts)
    assert not any(t.startswith("surv_") for t in support_texts)


def test_the_label_check_sees_overlaps_and_labels_outside():
    """The helper above must be able to fail: crowded tick labels overlap, a long title
    runs past the figure's edge."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    ax = fig.subplots()
    ax.set_xticks(range(10), [f"label number {k}" for k in range(10)])
    ax.set_title("a title far too long for a figure two inches wide, running off its edge")
    boxes, frame = _text_boxes(fig)
    outside = [t for t, b in boxes if b.x0 < frame.x0 - 1 or b.x1 > frame.x1 + 1]
    overlapping = [
        (ta, tb) for k, (ta, ba) in enumerate(boxes) for tb, bb in boxes[k + 1 :] if ba.overlaps(bb)
    ]
    assert outside and overlapping
