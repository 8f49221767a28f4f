"""Posterior-predictive checks, computed from a stored InferenceData alone.

Each check returns numbers (xarray or pandas);
:mod:`scsurvey.report.plots` draws them. Missing answers (-1 in ``observed_data``) are left out of every
observed statistic, and the replicated answers of the same cells are left out with them.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from scsurvey.core import dims
from scsurvey.core.defaults import DRAWS
from scsurvey.core.dims import OBSERVED
from scsurvey.posterior.draws import (
    HIGH,
    LOW,
    battery_scores,
    categories,
    interval_summary,
    observed_answers,
    replicated_answers,
    support_indicator,
)
from scsurvey.posterior.integrated_likelihood import integrated, require


def category_frequencies(idata, max_draws: int | None = DRAWS.checks) -> xr.Dataset:
    """Share of each category per item: observed, and replicated with a 90% interval.

    Returns
    -------
    xarray.Dataset
        Variables ``observed``, ``mean``, ``low``, ``high``, dims (item, category).

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> freq = ss.checks.category_frequencies(idata)  # doctest: +SKIP
    >>> ss.plots.category_frequencies(freq)  # doctest: +SKIP
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


def group_support(idata, group: str, max_draws: int | None = DRAWS.checks) -> xr.Dataset:
    """Support share per item and level of a grouping factor, observed and replicated.

    Returns
    -------
    xarray.Dataset
        ``observed``, ``mean``, ``low``, ``high`` and ``n`` (answers), dims (group, item).

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> ss.checks.group_support(idata, "province")  # doctest: +SKIP
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
    with warnings.catch_warnings():  # a level without answers has no share: NaN, shown empty
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        out = interval_summary(replicated)
    out["observed"] = observed
    out["n"] = n
    return out.transpose(group, dims.ITEM)


def battery_index(idata, max_draws: int | None = DRAWS.battery_index) -> dict[str, pd.DataFrame]:
    """Distribution of each battery's index (respondent mean of its items).

    Returns
    -------
    dict
        Battery -> DataFrame with one row per index value bin (edges at the scale's
        half-steps): observed count and replicated mean, 5% and 95% counts; the frame's
        ``attrs`` hold the observed mean and the replicated mean with its interval.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> ss.plots.battery_index(ss.checks.battery_index(idata))  # doctest: +SKIP
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


def rest_scores(obs: np.ndarray, battery_of_item) -> tuple[np.ndarray, np.ndarray]:
    """Per answer, the mean and the mean absolute value of the respondent's *other* answers
    in the same battery, each item standardised first (NaN with no other answer)."""
    y = np.where(obs >= 0, obs, np.nan).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (y - np.nanmean(y, axis=0)) / np.nanstd(y, axis=0)
    battery_of_item = np.asarray(battery_of_item)
    mean = np.full(y.shape, np.nan)
    extremity = np.full(y.shape, np.nan)
    for b in pd.unique(battery_of_item):
        cols = np.flatnonzero(battery_of_item == b)
        zb = z[:, cols]
        seen = np.isfinite(zb)
        total, count = np.nansum(zb, axis=1), seen.sum(axis=1)
        total_abs = np.nansum(np.abs(zb), axis=1)
        for k, j in enumerate(cols):
            others = count - seen[:, k]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean[:, j] = (total - np.where(seen[:, k], zb[:, k], 0.0)) / others
                extremity[:, j] = (total_abs - np.where(seen[:, k], np.abs(zb[:, k]), 0.0)) / others
    return mean, extremity


PIT_TESTS = ("p_uniform", "p_location", "p_dispersion")


def _pit_table(u, obs, items, bins, rest=None) -> pd.DataFrame:
    from scipy import stats

    rows, values = [], {}
    for j, item in enumerate(items):
        answered = obs[:, j] >= 0
        uj = u[answered, j]
        counts = np.histogram(uj, np.linspace(0, 1, bins + 1))[0]
        row = {"item": item, "n": len(uj), "p_uniform": stats.kstest(uj, "uniform").pvalue}
        if rest is not None:
            mean, extremity = rest[0][answered, j], rest[1][answered, j]
            ok = np.isfinite(mean)
            enough = ok.sum() > 10 and np.ptp(mean[ok]) > 0
            row["p_location"] = stats.spearmanr(uj[ok], mean[ok]).pvalue if enough else np.nan
            row["p_dispersion"] = (
                stats.spearmanr(np.abs(uj[ok] - 0.5), extremity[ok]).pvalue if enough else np.nan
            )
            tests = [row[t] for t in PIT_TESTS if np.isfinite(row[t])]
            row["p_item"] = min(1.0, len(tests) * min(tests))  # Bonferroni over the item's tests
        rows.append({**row, **{f"bin_{b}": c for b, c in enumerate(counts)}})
        values[item] = uj
    frame = pd.DataFrame(rows).set_index("item")
    frame.attrs["u"] = values
    return frame


PIT_KINDS = ("rest", "in_sample")


def randomized_pit(
    idata, kind: str = "rest", bins: int = 20, seed: int = 0, max_draws: int | None = DRAWS.checks
) -> pd.DataFrame:
    """Randomised probability integral transform of observed answers, per item.

    For a discrete answer y with predictive CDF F, ``u = F(y - 1) + V (F(y) - F(y - 1))``,
    V ~ Uniform(0, 1), is uniform when the predictive is calibrated (Smith 1985; Czado,
    Gneiting and Held 2009).

    Parameters
    ----------
    idata : arviz.InferenceData
    kind : {"rest", "in_sample"}
        ``"rest"`` (default): F is each answer's predictive given the respondent's *other* answers,
        their latent traits integrated out (:mod:`scsurvey.posterior.integrated_likelihood`). Under
        the model u is uniform *and independent of those other answers*, so besides uniformity (KS,
        ``p_uniform``) each item is tested for a rank correlation of u with the mean of the
        respondent's other answers in the battery (``p_location``: misfitting discriminations) and
        of ``|u - 1/2|`` with their extremity (``p_dispersion``: answer styles, heavier tails);
        ``p_item`` is the smallest, Bonferroni-adjusted. Calibration is measured on fits of
        simulated surveys (the SBC study records it).
        ``"in_sample"``: F is the posterior predictive
        of the same cell, whose latent trait was fitted to that very answer; it uses each
        answer twice and rejects even the true model (kept for comparison only).
    bins : int
        Histogram bins kept per item.

    Returns
    -------
    pandas.DataFrame
        One row per item: PIT counts per bin (``bin_0``...), ``n``, the p-values above and
        ``p_item`` (kind "rest"); ``attrs['u']`` keeps every PIT value per item.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> pit = ss.checks.randomized_pit(idata)  # doctest: +SKIP
    >>> pit.index[pit["p_item"] < 0.05]  # items the calibrated check flags  # doctest: +SKIP
    """
    if kind not in PIT_KINDS:
        raise ValueError(f"kind = {kind!r}: expected one of {PIT_KINDS}")
    obs = observed_answers(idata).values
    if kind == "rest":
        ds = integrated(idata)
        below, at_or_below = ds["cdf_lo"].values, ds["cdf_hi"].values
    else:
        require(idata, "posterior_predictive", what="the in-sample PIT")
        rep = replicated_answers(idata, max_draws).values  # (sample, respondent, item)
        below = (rep < obs[None]).mean(0)
        at_or_below = (rep <= obs[None]).mean(0)
    v = np.random.default_rng(seed).random(obs.shape)
    u = below + v * (at_or_below - below)
    rest = rest_scores(obs, idata.constant_data["battery_of_item"].values) if kind == "rest" else None
    frame = _pit_table(u, obs, list(idata.observed_data[dims.ITEM].values), bins, rest)
    frame.attrs["kind"] = kind
    return frame


LOO_KINDS = ("integrated", "conditional")


def loo_respondents(idata, kind: str = "integrated") -> tuple[az.ELPDData, pd.DataFrame]:
    """Leave-one-respondent-out PSIS-LOO with Pareto-k diagnostics.

    Parameters
    ----------
    idata : arviz.InferenceData
    kind : {"integrated", "conditional"}
        ``"integrated"`` (default): each respondent's latent traits integrated out given
        the population-level draws (:mod:`scsurvey.posterior.integrated_likelihood`), as leaving a respondent
        out asks. ``"conditional"``: given their own fitted traits, whose posterior moves
        too much without them for importance sampling (most Pareto k above 0.7).

    Returns
    -------
    loo : arviz.ELPDData
    k_table : pandas.DataFrame
        Count and share of respondents per Pareto-k range; ``attrs['reliable']`` is True
        when no respondent has k above 0.7.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> loo, k_table = ss.checks.loo_respondents(idata)  # doctest: +SKIP
    >>> k_table.attrs["reliable"]  # doctest: +SKIP
    """
    if kind not in LOO_KINDS:
        raise ValueError(f"kind = {kind!r}: expected one of {LOO_KINDS}")
    if kind == "integrated":
        ll = integrated(idata)[OBSERVED]
    else:
        require(idata, "log_likelihood", what="the conditional LOO")
        ll = idata.log_likelihood[OBSERVED]
    # both are stored on thinned draws: the relative efficiency comes from the likelihood
    # draws themselves (as the loo package computes it), not from the full posterior
    small = az.InferenceData(log_likelihood=xr.Dataset({OBSERVED: ll}))
    n = ll.sizes["chain"] * ll.sizes["draw"]
    lik = np.exp(ll - ll.max(("chain", "draw")))
    reff = float(np.nanmean(az.ess(xr.Dataset({"l": lik}), method="mean")["l"].values)) / n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reported in the k table instead
        loo = az.loo(small, pointwise=True, reff=reff)
    loo.attrs["kind"] = kind
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
    table.attrs["reliable"] = bool((k <= 0.7).all())
    table.attrs["kind"] = kind
    return loo, table


# ---------------------------------------------------------------------------------------
# Figures, each drawn from a check's returned numbers.
