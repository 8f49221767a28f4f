"""The generated report: ``reports/<name>/index.html`` with its figures beside it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import arviz as az
import matplotlib
import numpy as np
import pandas as pd

from scsurvey.core import dims
from scsurvey.core.paths import model_paths
from scsurvey.inference.diagnostics import ESS_MIN, RHAT_MAX
from scsurvey.inputs.codebook import load_codebook
from scsurvey.model.spec import load_spec
from scsurvey.posterior import checks, choices, dif, draws, item_person_fit, styles, summaries
from scsurvey.report import plots
from scsurvey.report.rendering import environment, safe
from scsurvey.storage.reader import StalePosteriorError, load_posterior


def _html(frame: pd.DataFrame, digits: int = 3) -> str:
    """A table for people: the index as a named first column, words as headers, counts as
    integers, floats at ``digits`` decimals, empty cells for missing values."""
    if frame is None or frame.empty:
        return ""
    out = frame.copy()
    name = out.index.name or ("" if isinstance(out.index, pd.RangeIndex) else "name")
    if not isinstance(out.index, pd.RangeIndex) or out.index.name:
        out.insert(0, name, out.index)
    out = out.reset_index(drop=True)
    for col in out.columns:
        if pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].map({True: "yes", False: ""})
        elif col in INTEGER_COLUMNS and pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
    out.columns = [str(c).replace("_", " ") for c in out.columns]
    html = out.to_html(
        float_format=lambda v: f"{v:.{digits}f}", na_rep="", border=0, escape=True, index=False
    )
    for word in ("agrees", "contradicts", "uncertain", "misfit"):
        html = html.replace(f"<td>{word}</td>", f'<td class="{word}">{word}</td>')
    return safe(html)


INTEGER_COLUMNS = {"n", "answers", "respondents", "divergences", "rank"}


def _pct(v) -> str:
    return "" if pd.isna(v) else f"{100 * v:.1f}%"


def _intervals(low, high) -> list[str]:
    """``"41.2% to 47.9%"`` per pair of bounds."""
    return [f"{_pct(lo)} to {_pct(hi)}" for lo, hi in zip(low, high, strict=True)]


def support_for_people(support: pd.DataFrame, codebook) -> pd.DataFrame:
    """The support table with labels, percentages and the interval in one column."""
    labels, _, batteries = _labels(codebook)
    table = pd.DataFrame(
        {
            "item": [labels.get(i, i) for i in support.index],
            "battery": [batteries.get(b, b) for b in support["battery"]],
            "observed": support["observed"].map(_pct),
            "model": support["model"].map(_pct),
            f"model {int(100 * draws.INTERVAL)}% interval": _intervals(
                support["model_low"], support["model_high"]
            ),
            "published": support["published"].map(_pct),
            "model minus published (points)": (100 * support["model - published"]).map(
                lambda v: "" if pd.isna(v) else f"{v:+.1f}"
            ),
        }
    ).set_index("item")
    if support["published"].isna().all():  # a codebook without published shares
        table = table.drop(columns=["published", "model minus published (points)"])
    return table


def headline(
    support: pd.DataFrame,
    who: pd.DataFrame,
    codebook,
    diagnostics_ok: bool,
    pit,
    loo_reliable,
    approximate: str = "",
    orderings: pd.DataFrame | None = None,
    sensitivity: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    baseline: str = "",
) -> str:
    """Two to six sentences from the numbers: the range of support per battery, the
    published findings (and orderings of reasons) the model agrees with, is uncertain about
    or contradicts, how far the answers move from the ``baseline`` fit (``sensitivity``,
    :func:`scsurvey.posterior.styles.sensitivity`), and whether the diagnostics and checks
    passed. An approximate posterior is named first."""
    labels = _labels(codebook)[0]
    sentences = []
    if approximate:
        usable = "usable" if diagnostics_ok else "not usable"
        sentences.append(f"An approximate posterior ({approximate}), {usable} by its PSIS diagnostic.")
    for b in codebook.batteries:
        rows = support[support["battery"] == b.id]
        if rows.empty:
            continue
        lo, hi = rows["model"].idxmin(), rows["model"].idxmax()
        if lo == hi:
            sentences.append(
                f"{b.label or b.id}: {_pct(rows.loc[lo, 'model'])} support "
                f"({int(100 * draws.INTERVAL)}% interval {_pct(rows.loc[lo, 'model_low'])} to "
                f"{_pct(rows.loc[lo, 'model_high'])})."
            )
            continue
        sentences.append(
            f"{b.label or b.id}: support ranges from {_pct(rows.loc[lo, 'model'])} for "
            f"“{labels[lo]}” ({_pct(rows.loc[lo, 'model_low'])} to {_pct(rows.loc[lo, 'model_high'])}) "
            f"to {_pct(rows.loc[hi, 'model'])} for “{labels[hi]}” "
            f"({_pct(rows.loc[hi, 'model_low'])} to {_pct(rows.loc[hi, 'model_high'])})."
        )
    if who is not None and not who.empty and "verdict" in who:
        counts = who["verdict"].value_counts()
        sentences.append(
            f"Of {len(who)} published finding{'s' if len(who) != 1 else ''} the model agrees with "
            f"{counts.get('agrees', 0)}, "
            f"is uncertain about {counts.get('uncertain', 0)} and contradicts {counts.get('contradicts', 0)}."
        )
    if orderings is not None and not orderings.empty:
        counts = orderings["verdict"].value_counts()
        sentences.append(
            f"Of {len(orderings)} pairs in the published orderings of reasons it agrees with "
            f"{counts.get('agrees', 0)}, is uncertain about {counts.get('uncertain', 0)} and "
            f"contradicts {counts.get('contradicts', 0)}."
        )
    if sensitivity is not None:
        shares, verdicts = sensitivity
        sentences.append(
            f"Beside {baseline}, which reads every answer at face value, {int(verdicts['changed'].sum())} "
            f"of {len(verdicts)} verdicts change and no item's support share moves by more than "
            f"{100 * shares['rich - plain'].abs().max():.1f} points."
        )
    flagged = list(pit.index[pit["p_item"] < 0.05]) if "p_item" in pit else []
    state = "passed" if diagnostics_ok else "FAILED"
    if approximate:
        state = f"of the approximation {state}"
    checks_text = (
        "the calibrated predictive check flagged no item"
        if not flagged
        else f"the calibrated predictive check flagged {len(flagged)} of {len(pit)} items"
    )
    loo_text = (
        "leave-one-out is reliable" if loo_reliable else "leave-one-out is not reliable (Pareto k > 0.7)"
    )
    sentences.append(f"Convergence diagnostics {state}; {checks_text}; {loo_text}.")
    return " ".join(sentences)


def _save(fig, folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / name, dpi=90, bbox_inches="tight")
    return f"figures/{name}"


def _slowest(idata, n: int = 4) -> list[tuple[str, dict, float]]:
    """The ``n`` scalar elements with the lowest bulk ESS among the model's parameters
    (respondent-level traits and the sampler's raw copies left out): name, selection, ESS."""
    ess = az.ess(idata.posterior, method="bulk")
    found = []
    for name, da in ess.data_vars.items():
        if name.startswith(("z_", "theta")) or name.endswith(("__", "_raw")) or name == "corr_matrix":
            continue
        stacked = da.stack(element=da.dims) if da.dims else da.expand_dims("element")
        for k in range(stacked.sizes["element"]):
            value = float(stacked.values[k])
            if np.isfinite(value):
                sel = {d: np.asarray(stacked[d].values[k]).item() for d in da.dims} if da.dims else {}
                found.append((name, sel, value))
    return sorted(found, key=lambda t: t[2])[:n]


PARAMETER_LABELS = {
    "mu_alpha": "mean item location",
    "sigma_alpha": "spread of item locations",
    "alpha": "item location",
    "gbar": "mean log threshold gap",
    "sigma_g": "spread of threshold gaps across items",
    "g": "log threshold gap",
    "beta": "effect",
    "tau_item": "spread of item-specific effects",
    "delta": "item-specific effect",
    "partial_corr01": "correlation between batteries",
    "lambda": "log discrimination",
    "a": "discrimination",
    "dif": "DIF (item location)",
    "dif_tau": "DIF global scale",
    "dif_discrimination": "DIF (log discrimination ratio)",
    "dif_discrimination_tau": "DIF global scale (discrimination)",
}


def _parameter_label(codebook, name: str, sel: dict) -> str:
    """A parameter element in words: what it is, and its coordinates by their codebook labels."""
    items, covariates, batteries = _labels(codebook)
    words = PARAMETER_LABELS.get(name)
    if words is None and name.startswith(("sigma_", "u_")):
        gid = name.split("_", 1)[1]
        words = f"{'sd of' if name.startswith('sigma_') else 'effect of'} {_group_label(codebook, gid)}"
    words = words or name
    names = {**items, **covariates, **batteries}
    where = [
        str(names.get(v, v))
        for d, v in sel.items()
        if not d.endswith("_dim_0") and d not in ("gap", "threshold")
    ]
    where += [str(v) for d, v in sel.items() if d in ("gap", "threshold")]
    return words + (f": {', '.join(where)}" if where else "")


def current_posteriors(root: Path) -> dict[str, az.InferenceData]:
    """Every fitted model whose posterior still matches its spec and data."""
    out = {}
    for spec_path in sorted((root / "models").glob("*.toml")):
        try:
            out[spec_path.stem] = load_posterior(spec_path.stem, root)
        except (FileNotFoundError, StalePosteriorError):
            continue
    return out


def same_data(idata: az.InferenceData, others: dict[str, az.InferenceData]) -> dict[str, az.InferenceData]:
    """The posteriors among ``others`` fitted to the same data and codebook as ``idata``.

    LOO compares models of the same answers only; specs fitted to other surveys (the real
    examples beside the twin) are left out of the comparison.
    """
    key = idata.posterior.attrs.get("data_hash")
    return {name: o for name, o in others.items() if o.posterior.attrs.get("data_hash") == key}


def write_report(name: str, root: Path | str = ".", out_dir: Path | None = None) -> Path:
    """Render ``reports/<name>/index.html`` from the stored posterior.

    Parameters
    ----------
    name : str
        Model name; its posterior must be fitted and current.
    root : Path or str
        Project root.
    out_dir : Path, optional
        Where to write (default ``reports/<name>``).

    Returns
    -------
    Path
        The HTML file.
    """
    root = Path(root)
    idata = load_posterior(name, root)
    spec = load_spec(model_paths(name, root)["spec"])
    codebook = load_codebook(root / spec.codebook)
    run_path = model_paths(name, root)["run"]
    run = json.loads(run_path.read_text()) if run_path.exists() else {}
    others = same_data(idata, current_posteriors(root))
    out_dir = Path(out_dir) if out_dir else root / "reports" / name
    from scsurvey.posterior.population import load as load_mrp

    return render_report(idata, spec, codebook, run, out_dir, others, population=load_mrp(name, root))


def _labels(codebook) -> tuple[dict, dict, dict]:
    """Item, covariate and battery labels from the codebook (ids where none is given)."""
    return (
        {i.id: i.label or i.id for i in codebook.items},
        {c.id: c.label or c.id for c in codebook.covariates},
        {b.id: b.label or b.id for b in codebook.batteries},
    )


def _group_label(codebook, gid: str) -> str:
    try:
        return codebook.group(gid).label or gid
    except KeyError:
        return gid


def _header(idata, spec, codebook) -> dict:
    """Where the fit came from: spec, data, sampler, seed, overrides, the twin caveat."""
    attrs = idata.posterior.attrs
    obs = idata.observed_data[dims.OBSERVED].values
    return {
        "model": spec.name,
        "description": spec.description,
        "created_at": attrs.get("created_at"),
        "sampler": attrs.get("sampler"),
        "seed": attrs.get("seed"),
        "overrides": json.loads(attrs.get("sampler_overrides", "{}") or "{}"),
        "spec_hash": attrs.get("spec_hash", ""),
        "data_hash": attrs.get("data_hash", ""),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "synthetic": bool(spec.twin),
        "twin_file": spec.twin,
        "survey_title": codebook.title or codebook.name,
        "n_respondents": obs.shape[0],
        "n_items": obs.shape[1],
        "n_batteries": len(codebook.batteries),
        "missing_share": float((obs < 0).mean()),
        "data_file": spec.data,
        "codebook": spec.codebook,
        "interval": int(100 * draws.INTERVAL),
    }


def _diagnostics(idata, codebook, run: dict, fig_dir: Path) -> dict:
    """Convergence: the table of worst values, the rank plots of the slowest quantities."""
    attrs = idata.posterior.attrs
    diag = json.loads(attrs["diagnostics"])

    def fmt(v, spec):
        return "" if v is None or not np.isfinite(v) else format(v, spec)

    rows = {
        "max R-hat": (fmt(diag["max_rhat"], ".3f"), diag["max_rhat_var"]),
        "min bulk ESS": (fmt(diag["min_ess_bulk"], ",.0f"), diag["min_ess_bulk_var"]),
        "min tail ESS": (fmt(diag["min_ess_tail"], ",.0f"), diag["min_ess_tail_var"]),
        "divergences": (f"{int(diag['divergences']):,}", ""),
        "min BFMI": (fmt(diag["min_bfmi"], ".2f"), ""),
        "mean tree depth": (fmt(diag.get("mean_tree_depth"), ".1f"), ""),
        "mean step size": (fmt(diag.get("mean_step_size"), ".3f"), ""),
    }
    if diag.get("psis_khat") is not None:  # an approximate posterior: judged by PSIS alone
        rows = {"PSIS k-hat of the approximation": (fmt(diag["psis_khat"], ".2f"), "")}
    table = pd.DataFrame(
        rows.values(), index=pd.Index(list(rows), name="diagnostic"), columns=["value", "where"]
    )
    slowest = {
        f"{_parameter_label(codebook, name, sel)} (bulk ESS {ess:,.0f})": idata.posterior[name]
        .sel(sel)
        .transpose("chain", "draw")
        .values
        for name, sel, ess in _slowest(idata)
    }
    weights = run.get("centering", {})
    centering = "; ".join(
        f"{block}: "
        + ", ".join(f"{b} {w:.2f}" for b, w in zip(codebook.battery_ids, weights[block], strict=False))
        for block in ("locations", "gaps")
        if weights.get(block)
    )
    return {
        "approximate": str(attrs.get("inference", "")),
        "psis_khat": diag.get("psis_khat"),
        "diagnostics_ok": bool(attrs.get("diagnostics_ok")),
        "failures": diag["failures"],
        "rhat_max": RHAT_MAX,
        "ess_min": ESS_MIN,
        "diagnostics_table": _html(table, 3),
        "wall_time": run.get("wall_time_s", float("nan")),
        "rounds": len(run.get("rounds", [])) or 1,
        "chains": int(idata.posterior.sizes["chain"]),
        "centering": centering or "not recorded",
        "ess_per_second": run.get("ess_per_second", float("nan")),
        "figures": {"rank": _save(plots.chain_ranks(slowest), fig_dir, "rank.png")},
    }


def _support(idata, codebook, fig_dir: Path) -> dict:
    """Support per item: observed, model and published."""
    support = summaries.support_table(idata, codebook)
    labels = [lbl for lbl, s in zip(codebook.scale.labels, codebook.scale.support_mask, strict=False) if s]
    return {
        "_support": support,
        "has_published": bool(support["published"].notna().any()),
        "support_labels": ", ".join(labels),
        "support_table": _html(support_for_people(support, codebook)),
        "figures": {
            "support": _save(
                plots.support_per_item(support, _labels(codebook)[0], _labels(codebook)[2]),
                fig_dir,
                "support.png",
            )
        },
    }


def _effects(idata, codebook, fig_dir: Path) -> dict:
    """Who supports: covariate effects, published findings, profile contrasts."""
    if "beta" not in idata.posterior:
        return {"_who": pd.DataFrame(), "who_table": "", "contrast_table": "", "figures": {}}
    _, covariates, batteries_ = _labels(codebook)
    published = {
        (b, f.covariate): f.direction
        for f in codebook.findings
        for b in ([f.battery] if f.battery else codebook.battery_ids)
    }
    forest = plots.covariate_effects(summaries.covariate_effects(idata), covariates, batteries_, published)
    contrasts = summaries.profile_contrasts(idata, codebook)
    figures = {"forest": _save(forest, fig_dir, "forest_beta.png")}
    if not contrasts.empty:
        figures["contrasts"] = _save(
            plots.profile_contrasts(contrasts, _labels(codebook)[0]), fig_dir, "contrasts.png"
        )
    who = summaries.who_supports(idata, codebook)
    shown = who.assign(
        covariate=who["covariate"].map(lambda c: covariates.get(c, c)),
        battery=who["battery"].map(lambda b: batteries_.get(b, b)),
    )
    if "p_published_direction" in shown:
        shown = shown.rename(columns={"p_published_direction": "probability of the published direction"})
    return {
        "_who": who,
        "who_table": _html(shown, 2),
        "contrast_table": ""
        if contrasts.empty
        else _html(
            contrasts.assign(item=contrasts["item"].map(_labels(codebook)[0])).rename(
                columns={"p_positive": "probability a > b"}
            ),
            3,
        ),
        "figures": figures,
    }


def _groups(idata, codebook, fig_dir: Path) -> dict:
    """Partially pooled group effects beside raw deviations, and support by group."""
    groups = []
    for group, frame in summaries.group_shrinkage(idata).items():
        gs = checks.group_support(idata, group)
        groups.append(
            {
                "name": group,
                "figure": _save(
                    plots.group_shrinkage(frame, _group_label(codebook, group), _labels(codebook)[2]),
                    fig_dir,
                    f"shrinkage_{group}.png",
                ),
                "ppc_figure": _save(
                    plots.group_support(gs, group, _group_label(codebook, group)), fig_dir, f"ppc_{group}.png"
                ),
            }
        )
    return {"groups": groups}


def _dif_level_label(codebook, level: str) -> tuple[str, str]:
    """A contrast in a table's words and as a sentence's subject: ``"ccp_member"`` ->
    ("member of the Chinese Communist Party (1 vs 0)", "respondents with ccp_member = 1
    (against 0)"); ``"province[Tianjin]"`` -> ("province of residence: Tianjin (vs Beijing)",
    "respondents in Tianjin (against Beijing)")."""
    factor, lv = dif.factor_of(level)
    if lv is None:
        cov = codebook.covariate(factor)
        second, first = cov.levels[1], cov.levels[0]
        return (
            f"{cov.label or factor} ({second} vs {first})",
            f"respondents with {factor} = {second} (against {first})",
        )
    ref = codebook.group(factor).levels[0]
    return f"{_group_label(codebook, factor)}: {lv} (vs {ref})", f"respondents in {lv} (against {ref})"


def _dif_sentence(row, item_label: str, subject: str, rope: float) -> str:
    side = "higher" if row["mean"] > 0 else "lower"
    return (
        f"“{item_label}”: {subject} answer it {side} than their latent support "
        f"predicts, by {abs(row['mean']):.2f} logits ({INTERVAL_PCT}% interval {row['low']:.2f} to "
        f"{row['high']:.2f}); the probability that the difference exceeds {rope} logits is "
        f"{row['p_beyond']:.2f}."
    )


INTERVAL_PCT = round(100 * summaries.INTERVAL)


def _dif(idata, codebook, fig_dir: Path, others: dict) -> dict:
    """Do groups read the items alike? DIF per item and contrast, flagged items in words, the
    group differences with DIF beside those of the same model without it."""
    if not dif.has_dif(idata):
        return {"dif": None}
    items, _, batteries_ = _labels(codebook)
    table = dif.item_table(idata)
    named = {str(lv): _dif_level_label(codebook, str(lv)) for lv in idata.posterior[dims.DIF_LEVEL].values}
    levels = {lv: words for lv, (words, _) in named.items()}
    figure = _save(plots.dif_items(table, dif.ROPE, items, levels), fig_dir, "dif.png")
    flagged = table[table["flagged"]]
    sentences = [
        _dif_sentence(row, items.get(j, j), named[lv][1], dif.ROPE) for (lv, j), row in flagged.iterrows()
    ]
    baseline_name, baseline = dif.baseline_of(idata, others)
    diffs = dif.group_differences(idata, baseline).reset_index()
    diffs[dims.DIF_LEVEL] = diffs[dims.DIF_LEVEL].map(levels)
    diffs[dims.BATTERY] = diffs[dims.BATTERY].map(lambda b: batteries_.get(b, b))
    shown = table.reset_index()
    shown[dims.DIF_LEVEL] = shown[dims.DIF_LEVEL].map(levels)
    shown[dims.ITEM] = shown[dims.ITEM].map(lambda j: items.get(j, j))
    discrimination = ""
    if dif.DISCRIMINATION in idata.posterior:
        disc = dif.item_table(idata, var=dif.DISCRIMINATION).reset_index()
        disc[dims.DIF_LEVEL] = disc[dims.DIF_LEVEL].map(levels)
        disc[dims.ITEM] = disc[dims.ITEM].map(lambda j: items.get(j, j))
        discrimination = _html(disc.rename(columns={"p_beyond": "P(|log ratio| > ROPE)"}), 3)
    return {
        "dif": {
            "rope": dif.ROPE,
            "flag_probability": dif.FLAG_PROBABILITY,
            "sentences": sentences,
            "n_items": len(items),
            "kind": "non-uniform" if discrimination else "uniform",
            "table": _html(shown.rename(columns={"p_beyond": "P(|DIF| > ROPE)"}), 3),
            "differences": _html(diffs, 3),
            "baseline": baseline_name,
            "discrimination_table": discrimination,
        },
        "figures": {"dif": figure},
    }


def _pit_table(pit: pd.DataFrame, codebook) -> pd.DataFrame:
    """The calibrated check per item in words: labels, the three p-values and a verdict."""
    items, _, batteries = _labels(codebook)
    battery_of = {i.id: batteries.get(i.battery, i.battery) for i in codebook.items}
    table = pd.DataFrame(
        {
            "battery": [battery_of.get(i, "") for i in pit.index],
            "answers": pit["n"].to_numpy(),
            "PIT uniform (p)": pit["p_uniform"].to_numpy(),
            "trend with rest score (p)": pit["p_location"].to_numpy(),
            "spread with rest extremity (p)": pit["p_dispersion"].to_numpy(),
            "item (p, three tests)": pit["p_item"].to_numpy(),
            "verdict": np.where(pit["p_item"] < 0.05, "misfit", "fits"),
        },
        index=pd.Index([items.get(i, i) for i in pit.index], name="item"),
    )
    return table


def _item_fit_table(fit: pd.DataFrame, codebook) -> pd.DataFrame:
    """Item fit in words: labels, the two posterior predictive p-values and a verdict."""
    items, _, batteries = _labels(codebook)
    return pd.DataFrame(
        {
            "battery": [batteries.get(b, b) for b in fit["battery"]],
            "category counts (PPP)": fit["ppp_categories"].to_numpy(),
            "item-rest correlation": fit["item_rest_observed"].to_numpy(),
            "in replicates": fit["item_rest_replicated"].to_numpy(),
            "item-rest (PPP)": fit["ppp_item_rest"].to_numpy(),
            "verdict": np.where(fit["flagged"], "misfit", "fits"),
        },
        index=pd.Index([items.get(i, i) for i in fit.index], name="item"),
    )


def _checks(idata, codebook, fig_dir: Path) -> dict:
    """Posterior-predictive checks and PSIS-LOO."""
    freq = checks.category_frequencies(idata)
    index = checks.battery_index(idata)
    pit = checks.randomized_pit(idata)
    loo, pareto = checks.loo_respondents(idata)
    items = item_person_fit.item_fit(idata)
    persons = item_person_fit.person_fit(idata)
    # stored at fit time; computed for a posterior written before the group existed
    scores = (
        idata[item_person_fit.SCORES]
        if item_person_fit.SCORES in idata.groups()
        else item_person_fit.scores(idata)
    )
    labels, _, battery_labels = _labels(codebook)
    return {
        "_pit": pit,
        "pit_table": _html(_pit_table(pit, codebook)),
        "pit_flagged": [labels.get(i, i) for i in pit.index[pit["p_item"] < 0.05]],
        "item_fit_table": _html(_item_fit_table(items, codebook), 2),
        "items_flagged": [labels.get(i, i) for i in items.index[items["flagged"]]],
        "persons_flagged": persons.attrs["flagged_share"],
        "reliability": ", ".join(
            f"{battery_labels.get(b, b)} {float(r):.2f}"
            for b, r in zip(scores[dims.BATTERY].values, scores["reliability"].values, strict=True)
        ),
        "loo_elpd": loo.elpd_loo,
        "loo_se": loo.se,
        "loo_p": loo.p_loo,
        "loo_kind": pareto.attrs["kind"],
        "loo_reliable": pareto.attrs["reliable"],
        "pareto_table": _html(pareto),
        "figures": {
            "information": _save(
                plots.information(item_person_fit.information(idata), battery_labels),
                fig_dir,
                "information.png",
            ),
            "categories": _save(plots.category_frequencies(freq, labels), fig_dir, "categories.png"),
            "index": _save(plots.battery_index(index, battery_labels), fig_dir, "index.png"),
            "pit": _save(plots.pit(pit), fig_dir, "pit.png"),
            "pareto": _save(plots.pareto_k(loo), fig_dir, "pareto_k.png"),
        },
    }


def _population(estimates, idata, codebook, fig_dir: Path) -> dict:
    """MRP: population support per item beside the sample share and the published share."""
    from scsurvey.posterior.population import summary_table

    if estimates is None:
        return {"mrp": None}
    if estimates.attrs.get("posterior_created_at") != str(idata.posterior.attrs.get("created_at", "")):
        return {"mrp": {"stale": True}}
    table = summary_table(estimates, idata, codebook, draws.LOW, draws.HIGH)
    items, _, batteries = _labels(codebook)
    battery_of = {i.id: i.battery for i in codebook.items}
    shown = pd.DataFrame(
        {
            "item": [items.get(i, i) for i in table.index],
            "battery": [batteries.get(battery_of[i], battery_of[i]) for i in table.index],
            "sample": table["sample"].map(_pct),
            "population (MRP)": table["mrp"].map(_pct),
            f"MRP {int(100 * draws.INTERVAL)}% interval": _intervals(table["mrp_low"], table["mrp_high"]),
            "published": table["published"].map(_pct),
        }
    ).set_index("item")
    if "weighted" in table:  # the design-weighted comparison, labelled as such
        bounds = _intervals(table["weighted_low"], table["weighted_high"])
        shown.insert(
            4,
            "weighted sample (survey weights, 90%)",
            [f"{_pct(p)} ({b})" for p, b in zip(table["weighted"], bounds, strict=True)],
        )
    if table["published"].isna().all():
        shown = shown.drop(columns=["published"])
    figure_table = pd.DataFrame(
        {
            "battery": [battery_of[i] for i in table.index],
            "observed": table["sample"],
            "model": table["mrp"],
            "model_low": table["mrp_low"],
            "model_high": table["mrp_high"],
            "published": table["published"],
        },
        index=table.index,
    )
    fig = plots.support_per_item(
        figure_table, items, batteries, model_label="population (MRP)", observed_label="sample"
    )
    regions = [v for v in estimates.data_vars if v.startswith("support_by_")]
    by = []
    for name in regions:
        var = name.removeprefix("support_by_")
        mean = estimates[name].mean(dims.STACKED).mean(dims.ITEM)
        for level in mean[var].values:
            by.append(
                {
                    "variable": var,
                    "category": str(level),
                    "mean support over items": _pct(float(mean.sel({var: level}))),
                }
            )
    return {
        "mrp": {
            "stale": False,
            "census": estimates.attrs.get("census", ""),
            "source": estimates.attrs.get("census_source", ""),
            "caveat": estimates.attrs.get("caveat", ""),
            "table_method": estimates.attrs.get("table", ""),
            "weight_column": estimates.attrs.get("weight_column", ""),
            "n_cells": int(estimates.sizes["cell"]),
            "table": _html(shown),
            "by_table": _html(pd.DataFrame(by)),
        },
        "figures": {"mrp": _save(fig, fig_dir, "mrp.png")},
    }


def render_report(
    idata, spec, codebook, run: dict, out_dir: Path, others: dict | None = None, population=None
) -> Path:
    """Render the report of one posterior into ``out_dir`` (index.html and figures/).

    Parameters
    ----------
    idata : arviz.InferenceData
        A stored fit (every group of the InferenceData contract).
    spec : ModelSpec
    codebook : Codebook
    run : dict
        The fit's run.json (wall time, ESS per second); may be empty.
    out_dir : Path
    others : dict, optional
        Current posteriors of other specs, for the LOO comparison.
    population : xarray.Dataset, optional
        MRP estimates of this fit (:func:`scsurvey.workflows.mrp.run`), shown in their own section.

    Returns
    -------
    Path
        The HTML file.
    """
    out_dir = Path(out_dir)
    labels = [codebook.title, *(i.label for i in codebook.items), *(b.label for b in codebook.batteries)]
    plots.warn_if_glyphs_missing([*labels, *(c.label for c in codebook.covariates)])
    with matplotlib.rc_context(plots.font_settings()):  # codebook labels in any script
        return _render(idata, spec, codebook, run, out_dir, others, population)


def _render(idata, spec, codebook, run, out_dir: Path, others, population) -> Path:
    fig_dir = out_dir / "figures"
    sections = [
        _header(idata, spec, codebook),
        _diagnostics(idata, codebook, run, fig_dir),
        _support(idata, codebook, fig_dir),
        _effects(idata, codebook, fig_dir),
        _groups(idata, codebook, fig_dir),
        _dif(idata, codebook, fig_dir, others or {}),
        _choices(idata, codebook, fig_dir),
        _styles(idata, spec, codebook, fig_dir, others or {}),
        _checks(idata, codebook, fig_dir),
        _population(population, idata, codebook, fig_dir),
    ]
    others = others or {}
    comparison = summaries.compare_models(others) if len(others) > 1 else pd.DataFrame()
    context = {"comparison_table": _html(comparison.drop(columns=["loo_i"], errors="ignore")), "figures": {}}
    for section in sections:
        context["figures"].update(section.pop("figures", {}))
        context.update(section)
    context["headline"] = headline(
        context["_support"],
        context["_who"],
        codebook,
        context["diagnostics_ok"],
        context["_pit"],
        context["loo_reliable"],
        context["approximate"],
        context.get("_orderings"),
        context.get("_sensitivity"),
        spec.baseline,
    )
    context["title"] = codebook.title or codebook.name
    context["residual"] = draws.has_residual(idata)
    html = environment().get_template("report.html.j2").render(**context)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "index.html"
    tmp = target.with_name(".index.html.tmp")
    tmp.write_text(html)
    tmp.replace(target)
    summary = {
        "model": spec.name,
        "title": context["title"],
        "description": spec.description,
        "headline": context["headline"],
        "diagnostics_ok": context["diagnostics_ok"],
        "approximate": context["approximate"],
        "loo_reliable": context["loo_reliable"],
        "data_hash": idata.posterior.attrs.get("data_hash", ""),
        "elpd_loo": float(context["loo_elpd"]),
        "elpd_se": float(context["loo_se"]),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return target


def write_index(root: Path | str = ".") -> Path:
    """``reports/index.html``: every reported model with its status, headline and link, and
    the models fitted to the same data side by side by integrated LOO."""
    root = Path(root)
    summaries_ = [json.loads(p.read_text()) for p in sorted((root / "reports").glob("*/summary.json"))]
    by_data: dict[str, list] = {}
    for s in summaries_:
        by_data.setdefault(s["data_hash"], []).append(s)
    html = (
        environment()
        .get_template("index.html.j2")
        .render(
            models=summaries_,
            comparisons=[
                sorted(group, key=lambda s: -s["elpd_loo"]) for group in by_data.values() if len(group) > 1
            ],
            generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    )
    target = root / "reports" / "index.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html)
    return target


__all__ = ["current_posteriors", "render_report", "write_index", "write_report"]


def _choices(idata, codebook, fig_dir: Path) -> dict:
    """Why people support or oppose: each option's share among those asked, the published
    orderings' verdicts, and how choosing moves with latent support."""
    if not choices.has_choices(idata):
        return {"reasons": None, "_orderings": None}
    draws = choices.share_draws(idata)
    shares = choices.option_shares(idata, codebook, draws)
    questions = {q.id: q for q in codebook.multiple_response}
    _, _, batteries_ = _labels(codebook)

    def who(qid: str) -> str:
        q = questions[qid]
        if q.asked == "everyone":
            return "everyone"
        people = "supporters" if q.asked == "support" else "opponents"
        if q.route in batteries_:
            return f"{people} on the {q.route} battery"
        return f"{people} by column {q.route}"

    table = (
        shares.rename(columns={"label": "reason"})
        .assign(
            question=[questions[q].label or q for q in shares["question"]],
            model_interval=_intervals(shares["lower"], shares["upper"]),
            observed=shares["observed"].map(_pct),
            model=shares["model"].map(_pct),
        )
        .drop(columns=["lower", "upper", "option"])
    )
    labels = {o.id: o.label or o.id for q in codebook.multiple_response for o in q.options}
    verdicts = choices.ordering_verdicts(idata, codebook, draws)
    shown = (
        verdicts.assign(more=verdicts["more"].map(labels), less=verdicts["less"].map(labels))
        .drop(columns=["question"])
        .rename(columns={"p_holds": "P(holds)", "difference": "difference in share"})
    )
    fig = plots.choice_curves(
        choices.choice_curves(idata),
        shares,
        labels,
        titles={q: f"{questions[q].label or q} (asked: {who(q)})" for q in questions},
        axis_labels={q: f"latent support on {questions[q].battery}" for q in questions},
    )
    return {
        "reasons": {
            "questions": [
                {"label": questions[q].label or q, "asked": who(q)} for q in pd.unique(shares["question"])
            ],
            "table": _html(table.rename(columns={"model_interval": f"model {INTERVAL_PCT}% interval"}), 3),
            "verdicts": _html(shown, 3),
            "agree": choices.AGREE,
        },
        "_orderings": verdicts,
        "figures": {"reasons": _save(fig, fig_dir, "reasons.png")},
    }


def _styles(idata, spec, codebook, fig_dir: Path, others: dict) -> dict:
    """Answers not taken at face value: the response styles' spread, how non-response moves
    with support per battery, and the plain model's answers beside this one's."""
    if not styles.has_styles(idata):
        return {"styles": None, "_sensitivity": None}
    _, _, batteries_ = _labels(codebook)
    style = styles.style_estimates(idata)
    style_table = None
    if not style.empty:
        style_table = pd.DataFrame(
            {
                "style": style["style"],
                "sd across respondents": style["sd_mean"],
                f"{INTERVAL_PCT}% interval": _intervals_plain(style["sd_low"], style["sd_high"]),
            }
        )
    nonresp = styles.nonresponse_estimates(idata)
    nonresp_table, figures = None, {}
    if not nonresp.empty:
        nonresp_table = pd.DataFrame(
            {
                "observed rate": nonresp["observed_rate"].map(_pct).to_numpy(),
                "slope": nonresp["slope_mean"].to_numpy(),
                f"slope {INTERVAL_PCT}% interval": _intervals_plain(
                    nonresp["slope_low"], nonresp["slope_high"]
                ),
                "P(opponents answer less)": nonresp["p_negative"].to_numpy(),
                "correlation of propensity and support": nonresp["corr_mean"].to_numpy(),
            },
            index=pd.Index([batteries_.get(b, b) for b in nonresp.index], name="battery"),
        )
        fig = plots.nonresponse_by_trait(styles.nonresponse_by_trait(idata), batteries_)
        figures["nonresponse"] = _save(fig, fig_dir, "nonresponse.png")
    baseline = others.get(spec.baseline) if spec.baseline else None
    shares_html = verdicts_html = ""
    sensitivity = None
    if baseline is not None:
        shares, verdicts = styles.sensitivity(baseline, idata, codebook)
        sensitivity = (shares, verdicts)
        shown = pd.DataFrame(
            {
                "battery": [batteries_.get(b, b) for b in shares["battery"]],
                "label": shares["label"],
                "observed": shares["observed"].map(_pct),
                f"{spec.baseline}": shares["plain"].map(_pct),
                f"{spec.baseline} {INTERVAL_PCT}% interval": _intervals(
                    shares["plain_low"], shares["plain_high"]
                ),
                f"{spec.name}": shares["rich"].map(_pct),
                f"{spec.name} {INTERVAL_PCT}% interval": _intervals(shares["rich_low"], shares["rich_high"]),
                "change (points)": (100 * shares["rich - plain"]).round(1),
            }
        )
        shares_html = _html(shown, 1)
        verdicts_html = _html(
            verdicts.rename(columns={"plain": f"{spec.baseline}", "rich": f"{spec.name}"}).drop(
                columns=["plain_mean", "rich_mean"]
            ),
            3,
        )
    return {
        "styles": {
            "components": [STYLE_WORDS[s] for s in spec.components.response_style]
            + (["informative non-response"] if spec.components.nonresponse == "informative" else []),
            "style_table": _html(style_table, 3) if style_table is not None else "",
            "nonresponse_table": _html(nonresp_table, 3) if nonresp_table is not None else "",
            "baseline": spec.baseline,
            "baseline_found": baseline is not None,
            "shares": shares_html,
            "verdicts": verdicts_html,
            "changed": int(sensitivity[1]["changed"].sum()) if sensitivity else None,
            "findings": len(sensitivity[1]) if sensitivity else None,
            "largest_move": float(sensitivity[0]["rich - plain"].abs().max()) if sensitivity else None,
        },
        "_sensitivity": sensitivity,
        "figures": figures,
    }


STYLE_WORDS = {"extreme": "an extreme response style", "acquiescence": "acquiescence"}


def _intervals_plain(low, high) -> list[str]:
    """``"-0.41 to -0.12"`` per pair of bounds, on the scale of the numbers."""
    return [f"{lo:.2f} to {hi:.2f}" for lo, hi in zip(low, high, strict=True)]
