"""Every figure of the project, built as a :class:`matplotlib.figure.Figure` without pyplot.

The functions take the numbers that :mod:`scsurvey.posterior.checks`,
:mod:`scsurvey.posterior.summaries` and :mod:`scsurvey.workflows.sbc` return, never
InferenceData, and do not touch the backend: a notebook shows the returned Figure inline, a
report saves it with ``fig.savefig``. :func:`overlapping_labels` tells whether a figure's
text collides.
"""

from __future__ import annotations

import re
import textwrap
import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from scsurvey.core import dims


def _figure(nrows: int = 1, ncols: int = 1, figsize=(6, 4), layout=None, **subplot_kw):
    """A Figure and its axes, as ``plt.subplots`` gives them, without pyplot's figure manager."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **subplot_kw)


# fonts with Chinese, Japanese and Korean glyphs, by preference (Debian: fonts-noto-cjk)
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
)
CJK_TEXT = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def font_settings() -> dict:
    """matplotlib settings under which labels in any script draw: DejaVu Sans first, then the
    installed CJK fonts, glyph by glyph (use with ``matplotlib.rc_context``).

    Without a CJK font, Chinese, Japanese or Korean labels draw as empty boxes; the report
    and the notebook then say so once. On Debian: ``apt-get install fonts-noto-cjk``.
    """
    from matplotlib import font_manager, rcParams

    installed = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [name for name in CJK_FONTS if name in installed]
    rest = [name for name in rcParams["font.sans-serif"] if name not in cjk]
    return {"font.family": ["DejaVu Sans", *cjk], "font.sans-serif": ["DejaVu Sans", *cjk, *rest]}


def warn_if_glyphs_missing(labels) -> bool:
    """Warn (once per call) when labels hold Chinese, Japanese or Korean text and no CJK font
    is installed, so they would draw as empty boxes. Returns whether it warned."""
    from matplotlib import font_manager

    if not any(CJK_TEXT.search(str(label)) for label in labels):
        return False
    if {f.name for f in font_manager.fontManager.ttflist} & set(CJK_FONTS):
        return False
    warnings.warn(
        "labels in Chinese, Japanese or Korean will draw as empty boxes in the figures: no CJK "
        f"font is installed (one of {', '.join(CJK_FONTS)}; on Debian: apt-get install fonts-noto-cjk)",
        stacklevel=2,
    )
    return True


def overlapping_labels(fig) -> list[tuple[str, str]]:
    """Pairs of text that overlap between different axes of a drawn figure: the titles, axis
    labels and tick labels of one panel over those of another.

    Parameters
    ----------
    fig : matplotlib.figure.Figure

    Returns
    -------
    list of (str, str)
        The overlapping texts (empty when the layout is clean).
    """
    if not hasattr(fig.canvas, "get_renderer"):  # the project's own Figures have no canvas yet
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        # titles set with loc="left" or "right" live apart from ax.title
        titles = [ax.title, *(getattr(ax, f"_{side}_title", None) for side in ("left", "right"))]
        texts = [
            *(t for t in titles if t is not None),
            ax.xaxis.label,
            ax.yaxis.label,
            *_drawn_ticklabels(ax),
        ]
        for text in texts:
            if text.get_visible() and text.get_text().strip():
                boxes.append((k, text.get_text(), text.get_window_extent(renderer)))
    return [
        (ta, tb)
        for i, (ka, ta, ba) in enumerate(boxes)
        for kb, tb, bb in boxes[i + 1 :]
        if ka != kb and ba.overlaps(bb)
    ]


def _drawn_ticklabels(ax) -> list:
    """Tick labels inside the axes' view (matplotlib keeps labels of ticks beyond it, undrawn)."""
    out = []
    for labels, (lo, hi), at in (
        (ax.get_xticklabels(), ax.get_xlim(), 0),
        (ax.get_yticklabels(), ax.get_ylim(), 1),
    ):
        lo, hi = min(lo, hi), max(lo, hi)
        out += [lab for lab in labels if lo <= lab.get_position()[at] <= hi]
    return out


def category_frequencies(freq: xr.Dataset, labels: dict | None = None, ncols: int = 4):
    """Observed category shares per item beside their posterior predictive intervals.

    Parameters
    ----------
    freq : xarray.Dataset
        :func:`scsurvey.posterior.checks.category_frequencies`.
    labels : dict, optional
        Item labels (the codebook's); panels are titled with them.
    """
    labels = labels or {}
    items = list(freq[dims.ITEM].values)
    cats = list(freq[dims.CATEGORY].values)
    nrows = int(np.ceil(len(items) / ncols))
    fig, axes = _figure(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), sharey=True, squeeze=False)
    x = np.arange(len(cats))
    for ax, item in zip(axes.flat, items, strict=False):
        f = freq.sel({dims.ITEM: item})
        ax.bar(x, f["observed"].values, color="#c9d6e8", label="observed")
        ax.errorbar(
            x,
            f["mean"].values,
            yerr=[f["mean"] - f["low"], f["high"] - f["mean"]],
            fmt="o",
            color="#b2182b",
            ms=3,
            label="replicated (90%)",
        )
        ax.set_title(_wrap(str(labels.get(item, item)), 40), fontsize=8)
        ax.set_xticks(x, [str(i + 1) for i in x])
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Category shares per item: observed and posterior predictive")
    fig.tight_layout()
    return fig


def group_support(support: xr.Dataset, group: str, label: str | None = None):
    """Mean support share per level of a grouping factor, observed and replicated."""
    items = list(support[dims.ITEM].values)
    levels = list(support[group].values)
    fig, ax = _figure(figsize=(max(6, 0.5 * len(levels) * 1.2), 4))
    avg = support.mean(dims.ITEM)
    x = np.arange(len(levels))
    ax.errorbar(
        x,
        avg["mean"],
        yerr=[avg["mean"] - avg["low"], avg["high"] - avg["mean"]],
        fmt="o",
        color="#b2182b",
        label="replicated (90%)",
    )
    ax.scatter(x, avg["observed"], marker="x", color="black", zorder=3, label="observed")
    ax.set_xticks(x, levels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"mean support share over {len(items)} items")
    ax.set_title(f"Support by {label or group}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def battery_index(index: dict[str, pd.DataFrame], battery_labels: dict | None = None):
    """Distribution of each battery's index (respondent mean), observed and replicated."""
    battery_labels = battery_labels or {}
    fig, axes = _figure(1, len(index), figsize=(5.5 * len(index), 3.6), squeeze=False)
    for ax, (battery, f) in zip(axes.flat, index.items(), strict=False):
        mid = (f["low_edge"] + f["high_edge"]) / 2
        width = f["high_edge"] - f["low_edge"]
        ax.bar(mid, f["observed"], width=width, color="#c9d6e8", label="observed")
        ax.fill_between(
            mid,
            f["low"],
            f["high"],
            step="mid",
            alpha=0.4,
            color="#b2182b",
            label="replicated (90%)",
        )
        ax.set_title(
            _wrap(
                f"{battery_labels.get(battery, battery)}: observed mean {f.attrs['observed_mean']:.2f}, "
                f"replicated {f.attrs['replicated_mean']:.2f}",
                60,
            ),
            fontsize=9,
        )
        ax.set_xlabel("respondent mean of answered items")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def pit(pit: pd.DataFrame):
    fig, ax = _figure(figsize=(6, 3.6))
    u = np.concatenate(list(pit.attrs["u"].values()))
    bins = sum(c.startswith("bin_") for c in pit.columns)
    ax.hist(u, bins=bins, range=(0, 1), color="#c9d6e8", edgecolor="white")
    expected = len(u) / bins
    sd = np.sqrt(expected * (1 - 1 / bins))
    ax.axhspan(expected - 2 * sd, expected + 2 * sd, color="#b2182b", alpha=0.15, label="uniform +/- 2 sd")
    ax.axhline(expected, color="#b2182b")
    ax.set_title("Randomised PIT of observed answers (all items)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pareto_k(loo: az.ELPDData):
    fig, ax = _figure(figsize=(6, 3.4))
    k = np.asarray(loo.pareto_k)
    ax.scatter(np.arange(len(k)), k, s=4, color=np.where(k > 0.7, "#b2182b", "#4575b4"))
    ax.axhline(0.7, color="#b2182b", ls="--", lw=1)
    ax.set_xlabel("respondent")
    ax.set_ylabel("Pareto k")
    ax.set_title("PSIS-LOO Pareto k per respondent")
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 38) -> str:
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def support_per_item(
    table: pd.DataFrame,
    labels: dict | None = None,
    battery_labels: dict | None = None,
    model_label: str = "model",
    observed_label: str = "observed",
):
    """Support per item in the style of a published chart: items sorted by the model's share
    within each battery, its interval, the observed share and the published one.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`scsurvey.posterior.summaries.support_table`.
    labels, battery_labels : dict, optional
        Item id -> label and battery id -> label (the codebook's).
    """
    labels, battery_labels = labels or {}, battery_labels or {}
    batteries = list(pd.unique(table["battery"]))
    sizes = [int((table["battery"] == b).sum()) for b in batteries]
    fig, axes = _figure(
        len(batteries),
        1,
        figsize=(8.5, 0.42 * sum(sizes) + 1.1 * len(batteries) + 0.6),
        layout="constrained",
        squeeze=False,
        sharex=True,
        gridspec_kw={"height_ratios": sizes},
    )
    for ax, b in zip(axes[:, 0], batteries, strict=True):
        sub = table[table["battery"] == b].sort_values("model")
        y = np.arange(len(sub))
        ax.errorbar(
            sub["model"],
            y,
            xerr=[sub["model"] - sub["model_low"], sub["model_high"] - sub["model"]],
            fmt="o",
            color="#b2182b",
            label=f"{model_label} (90% interval)",
        )
        ax.scatter(sub["observed"], y, marker="x", color="black", label=observed_label, zorder=3)
        if sub["published"].notna().any():
            ax.scatter(
                sub["published"],
                y,
                marker="s",
                facecolor="none",
                edgecolor="#1f78b4",
                label="published",
                zorder=3,
            )
        ax.set_yticks(y, [_wrap(labels.get(i, i)) for i in sub.index], fontsize=8)
        ax.set_title(str(battery_labels.get(b, b)), fontsize=10, loc="left")
        ax.set_xlim(0, 1)
        ax.grid(axis="x", color="#eee")
    axes[-1, 0].xaxis.set_major_formatter(PercentFormatter(1.0))
    axes[-1, 0].set_xlabel("share answering in support")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize=8, frameon=False)
    return fig


def covariate_effects(
    effects: pd.DataFrame,
    labels: dict | None = None,
    battery_labels: dict | None = None,
    published: dict | None = None,
):
    """Covariate effects per battery as dots and 90% intervals, the published direction marked.

    Parameters
    ----------
    effects : pandas.DataFrame
        :func:`scsurvey.posterior.summaries.covariate_effects`.
    labels, battery_labels : dict, optional
        Covariate and battery labels.
    published : dict, optional
        ``(battery, covariate) -> "+" or "-"``: the published direction.
    """
    labels, battery_labels, published = labels or {}, battery_labels or {}, published or {}
    batteries = list(pd.unique(effects["battery"]))
    n = effects["covariate"].nunique()
    fig, axes = _figure(
        1,
        len(batteries),
        figsize=(4.2 * len(batteries) + 2.5, 0.34 * n + 1.4),
        layout="constrained",
        squeeze=False,
        sharey=True,
    )
    order = list(pd.unique(effects["covariate"]))
    y = np.arange(len(order))[::-1]
    for ax, b in zip(axes[0], batteries, strict=True):
        sub = effects[effects["battery"] == b].set_index("covariate").loc[order]
        ax.axvline(0, color="#999", lw=0.8)
        ax.hlines(y, sub["low"], sub["high"], color="#4575b4")
        ax.plot(sub["mean"], y, "o", color="#4575b4", ms=4)
        lo, hi = min(sub["low"].min(), 0.0), max(sub["high"].max(), 0.0)
        for k, c in enumerate(order):
            sign = published.get((b, c))
            if sign:
                # inside its own panel, on the side away from the estimate
                right = sub.loc[c, "mean"] < (lo + hi) / 2
                ax.annotate(
                    "published +" if sign == "+" else "published \u2212",
                    (1.0 if right else 0.0, y[k]),
                    xycoords=("axes fraction", "data"),
                    xytext=(-4 if right else 4, 0),
                    textcoords="offset points",
                    ha="right" if right else "left",
                    va="center",
                    fontsize=7,
                    color="#1a7f37",
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
                )
        ax.set_title(str(battery_labels.get(b, b)), fontsize=10, loc="left")
        ax.set_xlabel("effect on the latent support scale")

    def label(c):  # a categorical covariate's dummy "education[college]": its label and level
        base, _, level = c.partition("[")
        return labels.get(c) or (f"{labels.get(base, base)}: {level.rstrip(']')}" if level else c)

    axes[0, 0].set_yticks(y, [_wrap(label(c), 34) for c in order], fontsize=8)
    return fig


def group_shrinkage(frame: pd.DataFrame, group: str, battery_labels: dict | None = None):
    """Partially pooled effects of a grouping factor's levels, sorted, beside the raw means.

    Parameters
    ----------
    frame : pandas.DataFrame
        One grouping factor's rows of :func:`scsurvey.posterior.summaries.group_shrinkage`.
    group : str
        Its name (or label).
    battery_labels : dict, optional
        Battery id -> label.
    """
    battery_labels = battery_labels or {}
    batteries = list(pd.unique(frame["battery"]))
    n_levels = frame["level"].nunique()
    fig, axes = _figure(
        1,
        len(batteries),
        figsize=(4.6 * len(batteries) + 1.6, 0.26 * n_levels + 2.0),
        squeeze=False,
    )
    for ax, b in zip(axes[0], batteries, strict=True):
        f = frame[frame["battery"] == b].sort_values("pooled")
        y = np.arange(len(f))
        ax.axvline(0, color="#999", lw=0.8)
        ax.hlines(y, f["low"], f["high"], color="#4575b4")
        ax.plot(f["pooled"], y, "o", color="#4575b4", ms=4, label="pooled effect (90%)")
        ax.set_yticks(y, [f"{lvl} (n={n})" for lvl, n in zip(f["level"], f["n"], strict=True)], fontsize=7)
        ax.set_xlabel("pooled effect (latent scale)", color="#4575b4")
        raw = ax.twiny()
        raw.plot(f["raw"], y, "x", color="black", ms=4, label="raw mean deviation")
        raw.set_xlabel("raw index deviation (answer scale)", fontsize=8)
        raw.tick_params(labelsize=7)
        ax.set_title(f"{group}: {battery_labels.get(b, b)}", fontsize=9, loc="left")
    handles = [*axes[0, 0].get_legend_handles_labels()[0], *raw.get_legend_handles_labels()[0]]
    # constrained layout does not see twin axes' tick labels: tight_layout, the legend below
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(
        handles, [h.get_label() for h in handles], loc="lower center", ncols=2, fontsize=8, frameon=False
    )
    return fig


def chain_ranks(draws_by_label: dict[str, np.ndarray], ncols: int = 2):
    """Rank plots of a few quantities: per chain, the histogram of its draws' ranks among all
    chains' draws (Vehtari et al. 2021). Chains that mix well give flat, overlapping bars.

    Parameters
    ----------
    draws_by_label : dict
        Panel title -> array of shape (chain, draw).
    ncols : int

    Returns
    -------
    Figure
    """
    from scipy.stats import rankdata

    labels = list(draws_by_label)
    nrows = int(np.ceil(len(labels) / ncols))
    fig, axes = _figure(nrows, ncols, figsize=(4.6 * ncols, 2.3 * nrows), squeeze=False)
    for label, ax in zip(labels, axes.flat, strict=False):
        values = np.asarray(draws_by_label[label], dtype=float)
        n_chains, n_draws = values.shape
        ranks = rankdata(values.ravel()).reshape(values.shape) / values.size
        bins = 20
        expected = n_draws / bins
        edges = np.linspace(0, 1, bins + 1)
        for c in range(n_chains):
            counts, _ = np.histogram(ranks[c], bins=edges)
            ax.stairs(counts / expected, edges, lw=1.0, baseline=None)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_title(_wrap(label, 48), fontsize=8)
        ax.set_xlabel("rank among all draws (fraction)", fontsize=7)
        ax.set_ylabel("draws / expected", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def sbc_ranks(u: pd.DataFrame, band: tuple, failed=(), ncols: int = 6):
    """SBC rank histograms and ECDF differences with a simultaneous band, per quantity.

    Parameters
    ----------
    u : pandas.DataFrame
        One column per quantity: the ranks as uniform values on (0, 1)
        (:func:`scsurvey.workflows.sbc.pit_values`).
    band : (x, lower, upper)
        The simultaneous ECDF band (:func:`scsurvey.workflows.sbc.ecdf_band`).
    failed : collection of str
        Quantities drawn in red.

    Returns
    -------
    (Figure, Figure)
        The histograms and the ECDF differences.
    """
    qs = list(u.columns)
    nrows = int(np.ceil(len(qs) / ncols))
    hist, axes_h = _figure(nrows, ncols, figsize=(2.6 * ncols, 1.9 * nrows), squeeze=False)
    ecdf, axes_e = _figure(nrows, ncols, figsize=(2.6 * ncols, 1.9 * nrows), squeeze=False)
    x, lo, hi = band
    bins = max(2, min(20, len(u) // 5))
    expected = len(u) / bins
    for q, ah, ae in zip(qs, axes_h.flat, axes_e.flat, strict=False):
        values = u[q].to_numpy()
        color = "#b2182b" if q in failed else "#4575b4"
        ah.hist(values, bins=bins, range=(0, 1), color=color)
        ah.axhline(expected, color="black", lw=0.8)
        ae.fill_between(x, lo - x, hi - x, color="#ddd")
        ae.plot(x, (values[None, :] <= x[:, None]).mean(axis=1) - x, color=color)
        for ax in (ah, ae):
            ax.set_title(q, fontsize=7)
            ax.tick_params(labelsize=6)
    for ax in [*list(axes_h.flat)[len(qs) :], *list(axes_e.flat)[len(qs) :]]:
        ax.axis("off")
    hist.tight_layout()
    ecdf.tight_layout()
    return hist, ecdf


def information(info: xr.Dataset, battery_labels: dict | None = None):
    """Test information per battery (from :func:`scsurvey.posterior.item_person_fit.information`)."""
    battery_labels = battery_labels or {}
    fig, ax = _figure(figsize=(6, 3.6))
    for battery in info[dims.BATTERY].values:
        label = _wrap(str(battery_labels.get(battery, battery)), 40)
        ax.plot(info["theta"], info["test_information"].sel({dims.BATTERY: battery}), label=label)
    ax.set_xlabel("latent trait")
    ax.set_ylabel("test information")
    ax.set_title("Test information per battery")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def profile_contrasts(contrasts: pd.DataFrame, labels: dict | None = None):
    """Difference in predicted support (profile a minus b) per item, one panel per contrast.

    Parameters
    ----------
    contrasts : pandas.DataFrame
        :func:`scsurvey.posterior.summaries.profile_contrasts`.
    labels : dict, optional
        Item id -> label.
    """
    labels = labels or {}
    names = list(pd.unique(contrasts["contrast"]))
    items = list(pd.unique(contrasts["item"]))
    ncols = min(2, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = _figure(
        nrows,
        ncols,
        figsize=(5.2 * ncols + 2.4, 0.3 * len(items) * nrows + 1.2 * nrows),
        layout="constrained",
        squeeze=False,
        sharey=True,
        sharex=True,
    )
    y = np.arange(len(items))[::-1]
    for ax, name in zip(axes.flat, names, strict=False):
        sub = contrasts[contrasts["contrast"] == name].set_index("item").loc[items]
        ax.axvline(0, color="#999", lw=0.8)
        ax.hlines(y, sub["low"], sub["high"], color="#4575b4")
        ax.plot(sub["difference"], y, "o", color="#4575b4", ms=4)
        ax.set_title(_wrap(name, 48), fontsize=9, loc="left")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_yticks(y, [_wrap(labels.get(i, i), 34) for i in items], fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("difference in support (points)")
    return fig


def dif_items(
    table: pd.DataFrame,
    rope: float,
    item_labels: dict | None = None,
    level_labels: dict | None = None,
):
    """DIF per item (rows) and contrast (panels): posterior means, 90% intervals, the ROPE
    shaded and flagged items in red.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`scsurvey.posterior.dif.item_table`, indexed by (dif_level, item).
    rope : float
        The practical size in logits, drawn as a band around zero.
    item_labels, level_labels : dict, optional
    """
    item_labels, level_labels = item_labels or {}, level_labels or {}
    levels = list(pd.unique(table.index.get_level_values(dims.DIF_LEVEL)))
    items = list(pd.unique(table.index.get_level_values(dims.ITEM)))
    ncols = min(len(levels), 3)
    nrows = -(-len(levels) // ncols)
    fig, axes = _figure(
        nrows,
        ncols,
        figsize=(3.6 * ncols + 2.6, (0.3 * len(items) + 1.2) * nrows),
        layout="constrained",
        squeeze=False,
        sharey=True,
    )
    y = np.arange(len(items))[::-1]
    for k, ax in enumerate(axes.ravel()):
        if k >= len(levels):
            ax.set_visible(False)
            continue
        sub = table.xs(levels[k], level=dims.DIF_LEVEL).loc[items]
        ax.axvspan(-rope, rope, color="#eeeeee", zorder=0)
        ax.axvline(0, color="#999", lw=0.8)
        colour = np.where(sub["flagged"], "#d73027", "#4575b4")
        ax.hlines(y, sub["low"], sub["high"], color=colour)
        ax.scatter(sub["mean"], y, c=colour, s=14, zorder=3)
        ax.set_title(_wrap(str(level_labels.get(levels[k], levels[k])), 40), fontsize=9, loc="left")
        ax.set_xlabel("DIF (logits)")
        # the band's edges stay in view when every interval sits inside it
        ax.set_xlim(min(sub["low"].min(), -1.5 * rope) - 0.02, max(sub["high"].max(), 1.5 * rope) + 0.02)
    for row in axes:
        row[0].set_yticks(y, [_wrap(str(item_labels.get(i, i)), 34) for i in items], fontsize=8)
    return fig


def choice_curves(
    curves: xr.Dataset,
    shares: pd.DataFrame,
    option_labels: dict | None = None,
    titles: dict | None = None,
    axis_labels: dict | None = None,
):
    """How the probability of choosing each option moves with latent support: one panel per
    question, a line per option (posterior mean) with its 90% band.

    Parameters
    ----------
    curves : xarray.Dataset
        :func:`scsurvey.posterior.choices.choice_curves`.
    shares : pandas.DataFrame
        :func:`scsurvey.posterior.choices.option_shares` (the question of each option).
    option_labels, titles, axis_labels : dict, optional
        Option id -> label; question id -> panel title; question id -> x-axis label.
    """
    option_labels, titles, axis_labels = option_labels or {}, titles or {}, axis_labels or {}
    questions = list(pd.unique(shares["question"]))
    fig, axes = _figure(
        1, len(questions), figsize=(5.2 * len(questions), 4.2), layout="constrained", squeeze=False
    )
    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    for ax, q in zip(axes[0], questions, strict=True):
        options = shares.loc[shares["question"] == q, "option"].tolist()
        for k, option in enumerate(options):
            c = curves.sel({dims.OPTION: option})
            colour = colours[k % len(colours)]
            ax.fill_between(c["support"], c["lower"], c["upper"], color=colour, alpha=0.18, lw=0)
            ax.plot(
                c["support"], c["mean"], color=colour, label=_wrap(str(option_labels.get(option, option)), 36)
            )
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(_wrap(str(titles.get(q, q)), 50), fontsize=9, loc="left")
        ax.set_xlabel(axis_labels.get(q, "latent support"))
        ax.set_ylabel("probability of choosing")
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    return fig


def nonresponse_by_trait(frame: pd.DataFrame, battery_labels: dict | None = None):
    """Non-answer rate against latent support, per battery: observed in tenths of the
    respondents' estimated support, beside the rate the model fits at the same tenths.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`scsurvey.posterior.styles.nonresponse_by_trait`.
    battery_labels : dict, optional
        Battery id -> label.
    """
    battery_labels = battery_labels or {}
    batteries = list(pd.unique(frame["battery"]))
    fig, axes = _figure(
        1, len(batteries), figsize=(4.6 * len(batteries), 3.6), layout="constrained", squeeze=False
    )
    for ax, b in zip(axes[0], batteries, strict=True):
        f = frame[frame["battery"] == b]
        ax.fill_between(f["support"], f["model_low"], f["model_high"], color="#7570b3", alpha=0.2, lw=0)
        ax.plot(f["support"], f["model"], color="#7570b3", label="model")
        ax.plot(f["support"], f["observed"], "o", color="#333333", ms=4, label="observed")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(bottom=0)
        ax.set_title(_wrap(str(battery_labels.get(b, b)), 50), fontsize=9, loc="left")
        ax.set_xlabel("latent support (posterior mean), tenths of respondents")
        ax.set_ylabel("items left unanswered")
        ax.legend(fontsize=7, frameon=False)
    return fig
