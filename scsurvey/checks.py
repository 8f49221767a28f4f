"""Posterior-predictive checks, computed from a stored InferenceData alone.

Each check returns its numbers (xarray or pandas) and ``plot_*`` draws a matplotlib figure
from those same numbers. Missing answers (-1 in ``observed_data``) are left out of every
observed statistic, and the replicated answers of the same cells are left out with them.
"""

from __future__ import annotations

import warnings

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from . import dims
from .model import OBSERVED

INTERVAL = 0.90  # credible intervals in checks and summaries
LOW, HIGH = (1 - INTERVAL) / 2, 1 - (1 - INTERVAL) / 2


def _observed(idata) -> xr.DataArray:
    return idata.observed_data[OBSERVED]


def _replicated(idata, max_draws: int | None = None, seed: int = 0) -> xr.DataArray:
    """Posterior predictive answers stacked to a ``sample`` dim, optionally thinned."""
    rep = idata.posterior_predictive[OBSERVED].stack(sample=dims.SAMPLE)
    if max_draws is not None and rep.sizes["sample"] > max_draws:
        keep = np.sort(np.random.default_rng(seed).choice(rep.sizes["sample"], max_draws, replace=False))
        rep = rep.isel(sample=keep)
    return rep.transpose("sample", dims.RESPONDENT, dims.ITEM)


def _categories(idata) -> list[str]:
    return list(idata.constant_data[dims.CATEGORY].values)


def _support(idata) -> np.ndarray:
    return idata.constant_data["support"].values.astype(bool)


def _summary(draws: xr.DataArray, dim="sample") -> xr.Dataset:
    return xr.Dataset(
        {
            "mean": draws.mean(dim),
            "low": draws.quantile(LOW, dim).drop_vars("quantile"),
            "high": draws.quantile(HIGH, dim).drop_vars("quantile"),
        }
    )


def category_frequencies(idata, max_draws: int | None = 1000) -> xr.Dataset:
    """Share of each category per item: observed, and replicated with a 90% interval.

    Returns
    -------
    xarray.Dataset
        Variables ``observed``, ``mean``, ``low``, ``high``, dims (item, category).
    """
    obs = _observed(idata)
    mask = obs >= 0
    rep = _replicated(idata, max_draws)
    k = len(_categories(idata))
    obs_share = xr.concat([((obs == c) & mask).sum(dims.RESPONDENT) for c in range(k)], dims.CATEGORY)
    obs_share = obs_share / mask.sum(dims.RESPONDENT)
    rep_share = xr.concat([((rep == c) & mask).sum(dims.RESPONDENT) for c in range(k)], dims.CATEGORY)
    rep_share = rep_share / mask.sum(dims.RESPONDENT)
    out = _summary(rep_share)
    out["observed"] = obs_share
    out = out.assign_coords({dims.CATEGORY: _categories(idata)})
    return out.transpose(dims.ITEM, dims.CATEGORY)


def _support_indicator(idata, answers: xr.DataArray) -> xr.DataArray:
    support = _support(idata)
    return xr.apply_ufunc(lambda a: support[np.clip(a, 0, None)], answers)


def group_support(idata, group: str, max_draws: int | None = 1000) -> xr.Dataset:
    """Support share per item and level of a grouping factor, observed and replicated.

    Returns
    -------
    xarray.Dataset
        ``observed``, ``mean``, ``low``, ``high`` and ``n`` (answers), dims (group, item).
    """
    levels = list(idata.constant_data[group].values)
    index = idata.constant_data[f"index_{group}"].values
    obs = _observed(idata)
    mask = obs >= 0
    obs_sup = _support_indicator(idata, obs) & mask
    rep_sup = _support_indicator(idata, _replicated(idata, max_draws)) & mask
    member = xr.DataArray(
        np.equal.outer(np.arange(len(levels)), index),
        dims=(group, dims.RESPONDENT),
        coords={group: levels},
    )
    n = (member & mask).sum(dims.RESPONDENT)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = (member & obs_sup).sum(dims.RESPONDENT) / n
        replicated = xr.dot(member.astype(float), rep_sup.astype(float), dim=dims.RESPONDENT) / n
    out = _summary(replicated)
    out["observed"] = observed
    out["n"] = n
    return out.transpose(group, dims.ITEM)


def _battery_index(idata, answers: xr.DataArray, mask: xr.DataArray) -> xr.Dataset:
    """Respondent mean of answered items per battery, on the scale's codes."""
    codes = idata.constant_data["category_code"].values
    values = xr.apply_ufunc(lambda a: codes[np.clip(a, 0, None)], answers).where(mask)
    battery = idata.constant_data["battery_of_item"]
    out = {}
    for b in pd.unique(battery.values):
        cols = battery.values == b
        out[str(b)] = values.isel({dims.ITEM: cols}).mean(dims.ITEM, skipna=True)
    return xr.Dataset(out)


def battery_index(idata, max_draws: int | None = 500) -> dict[str, pd.DataFrame]:
    """Distribution of each battery's index (respondent mean of its items).

    Returns
    -------
    dict
        Battery -> DataFrame with one row per index value bin (edges at the scale's
        half-steps): observed count and replicated mean, 5% and 95% counts; the frame's
        ``attrs`` hold the observed mean and the replicated mean with its interval.
    """
    obs = _observed(idata)
    mask = obs >= 0
    observed = _battery_index(idata, obs, mask)
    replicated = _battery_index(idata, _replicated(idata, max_draws), mask)
    codes = idata.constant_data["category_code"].values
    edges = np.linspace(codes.min() - 0.125, codes.max() + 0.125, 4 * (len(codes) - 1) + 2)
    out = {}
    for b in observed.data_vars:
        o = observed[b].values
        r = replicated[b].transpose("sample", dims.RESPONDENT).values
        r_counts = np.stack([np.histogram(row[np.isfinite(row)], edges)[0] for row in r])
        frame = pd.DataFrame(
            {
                "low_edge": edges[:-1],
                "high_edge": edges[1:],
                "observed": np.histogram(o[np.isfinite(o)], edges)[0],
                "mean": r_counts.mean(0),
                "low": np.quantile(r_counts, LOW, axis=0),
                "high": np.quantile(r_counts, HIGH, axis=0),
            }
        )
        means = np.nanmean(r, axis=1)
        frame.attrs = {
            "observed_mean": float(np.nanmean(o)),
            "replicated_mean": float(means.mean()),
            "replicated_low": float(np.quantile(means, LOW)),
            "replicated_high": float(np.quantile(means, HIGH)),
        }
        out[b] = frame
    return out


def randomized_pit(idata, max_draws: int | None = 1000, bins: int = 20, seed: int = 0) -> pd.DataFrame:
    """Randomised probability integral transform of observed answers, per item.

    For a discrete answer y with predictive CDF F, ``u = F(y - 1) + V (F(y) - F(y - 1))``,
    V ~ Uniform(0, 1), is uniform when the model is calibrated (Smith 1985; Czado, Gneiting
    and Held 2009). F is the posterior predictive ECDF of the same cell.

    Returns
    -------
    pandas.DataFrame
        One row per item: PIT counts per bin (``bin_0``...), ``n`` and the p-value of a
        chi-square test of uniformity; ``attrs['u']`` keeps every PIT value per item.
    """
    from scipy import stats

    obs = _observed(idata).values
    rep = _replicated(idata, max_draws).values  # (sample, respondent, item)
    below = (rep < obs[None]).mean(0)
    at_or_below = (rep <= obs[None]).mean(0)
    v = np.random.default_rng(seed).random(obs.shape)
    u = below + v * (at_or_below - below)
    items = list(idata.observed_data[dims.ITEM].values)
    rows, values = [], {}
    for j, item in enumerate(items):
        uj = u[obs[:, j] >= 0, j]
        counts = np.histogram(uj, np.linspace(0, 1, bins + 1))[0]
        rows.append(
            {
                "item": item,
                "n": len(uj),
                "p_uniform": stats.chisquare(counts).pvalue,
                **{f"bin_{b}": c for b, c in enumerate(counts)},
            }
        )
        values[item] = uj
    frame = pd.DataFrame(rows).set_index("item")
    frame.attrs["u"] = values
    return frame


def loo_respondents(idata) -> tuple[az.ELPDData, pd.DataFrame]:
    """Leave-one-respondent-out PSIS-LOO with Pareto-k diagnostics.

    Returns
    -------
    loo : arviz.ELPDData
    k_table : pandas.DataFrame
        Count and share of respondents per Pareto-k range.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reported in the k table instead
        loo = az.loo(idata, pointwise=True)
    k = np.asarray(loo.pareto_k)
    bands = [
        ("good (k <= 0.7)", k <= 0.7),
        ("bad (0.7 < k <= 1)", (k > 0.7) & (k <= 1)),
        ("very bad (k > 1)", k > 1),
    ]
    table = pd.DataFrame(
        {
            "respondents": [int(m.sum()) for _, m in bands],
            "share": [float(m.mean()) for _, m in bands],
        },
        index=[b for b, _ in bands],
    )
    return loo, table


# ---------------------------------------------------------------------------------------
# Figures, each drawn from a check's returned numbers.


def plot_category_frequencies(freq: xr.Dataset, ncols: int = 4):
    items = list(freq[dims.ITEM].values)
    cats = list(freq[dims.CATEGORY].values)
    nrows = int(np.ceil(len(items) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), sharey=True, squeeze=False)
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
        ax.set_title(item, fontsize=9)
        ax.set_xticks(x, [str(i + 1) for i in x])
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Category shares per item: observed and posterior predictive")
    fig.tight_layout()
    return fig


def plot_group_support(support: xr.Dataset, group: str):
    items = list(support[dims.ITEM].values)
    levels = list(support[group].values)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(levels) * 1.2), 4))
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
    ax.set_title(f"Support by {group}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_battery_index(index: dict[str, pd.DataFrame]):
    fig, axes = plt.subplots(1, len(index), figsize=(5.5 * len(index), 3.6), squeeze=False)
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
            f"{battery} index: observed mean {f.attrs['observed_mean']:.2f}, "
            f"replicated {f.attrs['replicated_mean']:.2f}",
            fontsize=9,
        )
        ax.set_xlabel("respondent mean of answered items")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pit(pit: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6, 3.6))
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


def plot_pareto_k(loo: az.ELPDData):
    fig, ax = plt.subplots(figsize=(6, 3.4))
    k = np.asarray(loo.pareto_k)
    ax.scatter(np.arange(len(k)), k, s=4, color=np.where(k > 0.7, "#b2182b", "#4575b4"))
    ax.axhline(0.7, color="#b2182b", ls="--", lw=1)
    ax.set_xlabel("respondent")
    ax.set_ylabel("Pareto k")
    ax.set_title("PSIS-LOO Pareto k per respondent")
    fig.tight_layout()
    return fig
