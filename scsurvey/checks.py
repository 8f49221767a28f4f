"""Posterior-predictive checks, computed from a stored InferenceData alone.

Each check returns numbers (xarray or pandas);
:mod:`scsurvey.plots` draws them. Missing answers (-1 in ``observed_data``) are left out of every
observed statistic, and the replicated answers of the same cells are left out with them.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from . import dims
from .draws import (
    HIGH,
    LOW,
    battery_scores,
    categories,
    interval_summary,
    observed_answers,
    replicated_answers,
    support_indicator,
)


def category_frequencies(idata, max_draws: int | None = 1000) -> xr.Dataset:
    """Share of each category per item: observed, and replicated with a 90% interval.

    Returns
    -------
    xarray.Dataset
        Variables ``observed``, ``mean``, ``low``, ``high``, dims (item, category).
    """
    obs = observed_answers(idata)
    mask = obs >= 0
    rep = replicated_answers(idata, max_draws)
    k = len(categories(idata))
    obs_share = xr.concat([((obs == c) & mask).sum(dims.RESPONDENT) for c in range(k)], dims.CATEGORY)
    obs_share = obs_share / mask.sum(dims.RESPONDENT)
    rep_share = xr.concat([((rep == c) & mask).sum(dims.RESPONDENT) for c in range(k)], dims.CATEGORY)
    rep_share = rep_share / mask.sum(dims.RESPONDENT)
    out = interval_summary(rep_share)
    out["observed"] = obs_share
    out = out.assign_coords({dims.CATEGORY: categories(idata)})
    return out.transpose(dims.ITEM, dims.CATEGORY)


def group_support(idata, group: str, max_draws: int | None = 1000) -> xr.Dataset:
    """Support share per item and level of a grouping factor, observed and replicated.

    Returns
    -------
    xarray.Dataset
        ``observed``, ``mean``, ``low``, ``high`` and ``n`` (answers), dims (group, item).
    """
    levels = list(idata.constant_data[group].values)
    index = idata.constant_data[f"index_{group}"].values
    obs = observed_answers(idata)
    mask = obs >= 0
    obs_sup = support_indicator(idata, obs) & mask
    rep_sup = support_indicator(idata, replicated_answers(idata, max_draws)) & mask
    member = xr.DataArray(
        np.equal.outer(np.arange(len(levels)), index),
        dims=(group, dims.RESPONDENT),
        coords={group: levels},
    )
    n = (member & mask).sum(dims.RESPONDENT)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = (member & obs_sup).sum(dims.RESPONDENT) / n
        replicated = xr.dot(member.astype(float), rep_sup.astype(float), dim=dims.RESPONDENT) / n
    out = interval_summary(replicated)
    out["observed"] = observed
    out["n"] = n
    return out.transpose(group, dims.ITEM)


def battery_index(idata, max_draws: int | None = 500) -> dict[str, pd.DataFrame]:
    """Distribution of each battery's index (respondent mean of its items).

    Returns
    -------
    dict
        Battery -> DataFrame with one row per index value bin (edges at the scale's
        half-steps): observed count and replicated mean, 5% and 95% counts; the frame's
        ``attrs`` hold the observed mean and the replicated mean with its interval.
    """
    obs = observed_answers(idata)
    mask = obs >= 0
    observed = battery_scores(idata, obs, mask)
    replicated = battery_scores(idata, replicated_answers(idata, max_draws), mask)
    codes = idata.constant_data["category_code"].values
    edges = np.linspace(codes.min() - 0.125, codes.max() + 0.125, 4 * (len(codes) - 1) + 2)
    out = {}
    for b in observed.data_vars:
        o = observed[b].values
        r = replicated[b].transpose(dims.STACKED, dims.RESPONDENT).values
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

    obs = observed_answers(idata).values
    rep = replicated_answers(idata, max_draws).values  # (sample, respondent, item)
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
