"""Item fit, person fit and psychometric summaries, as users of mirt and brms expect them.

Item fit: per item, posterior predictive p-values (PPP) of two discrepancies, each computed
on the observed answers and on every replicated data set: the chi-square distance of the
category counts from their expectation under the draw, and the item-rest correlation (the
item against the mean of the respondent's other items in its battery, as ``mirt``'s and
classical test theory's item-total statistics). Person fit: per respondent, the PPP of
their answers' log-likelihood against replicated answers from the same draws (a Bayesian
``lz``). Posterior predictive p-values use the data twice and are conservative (they pile
up near 0.5 under the model), so a flag at PPP < 0.05 or > 0.95 is a strong signal, and
the absence of one is weak evidence.

Scores: each respondent's posterior mean and sd of the latent trait per battery.
Information: the graded-response item information ``I_j(theta) = sum_k p_k'(theta)^2 /
p_k(theta)`` at the posterior mean of the item parameters, summed per battery into the test
information. Marginal reliability: ``var(E[theta | y]) / (var(E[theta | y]) + E[var(theta | y)])``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from scsurvey.core import dims
from scsurvey.core.defaults import DRAWS
from scsurvey.model.likelihood import category_probs, link_cdf
from scsurvey.posterior.draws import (
    at_predictive_draws,
    observed_answers,
    posterior_draws,
    replicated_answers,
)
from scsurvey.posterior.integrated_likelihood import population, require

FLAG = 0.05  # two-sided PPP flag: below FLAG or above 1 - FLAG
SCORES = "scores"  # InferenceData group of person scores, written at fit time


def _thin(n: int, max_draws: int | None, seed: int = 0) -> np.ndarray:
    if max_draws is None or n <= max_draws:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_draws, replace=False))


def _cell_probs(idata, draws: np.ndarray) -> np.ndarray:
    """Category probabilities of every cell under each chosen draw, (sample, respondent, item, K),
    ``draws`` indexing the stacked posterior predictive."""
    idata = at_predictive_draws(idata)
    pop = population(idata)  # item parameters and item-specific covariate effects per draw
    theta = posterior_draws(idata, "theta").values[draws]  # (s, i, b)
    return category_probs(pop.eta(theta, draws), pop.answer_cuts(draws), pop.link)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean``, NaN without a warning where ``axis`` holds nothing (a respondent with no
    other answer in the battery, an item alone in its battery)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _item_rest_corr(y: np.ndarray, battery_of_item) -> np.ndarray:
    """Item-rest correlation per item; y (..., respondent, item) with NaN for missing."""
    out = np.full((*y.shape[:-2], y.shape[-1]), np.nan)
    battery_of_item = np.asarray(battery_of_item)
    for j in range(y.shape[-1]):
        others = np.flatnonzero((battery_of_item == battery_of_item[j]) & (np.arange(y.shape[-1]) != j))
        if not len(others):
            continue
        rest = _nanmean(y[..., others], axis=-1)
        a, b = y[..., j], rest
        ok = np.isfinite(a) & np.isfinite(b)
        a = np.where(ok, a, 0.0)
        b = np.where(ok, b, 0.0)
        n = ok.sum(-1)
        ma, mb = a.sum(-1) / n, b.sum(-1) / n
        cov = ((a - ma[..., None]) * (b - mb[..., None]) * ok).sum(-1)
        va = (((a - ma[..., None]) * ok) ** 2).sum(-1)
        vb = (((b - mb[..., None]) * ok) ** 2).sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[..., j] = cov / np.sqrt(va * vb)
    return out


def item_fit(idata, max_draws: int | None = DRAWS.fit_statistics, seed: int = 0) -> pd.DataFrame:
    """Posterior predictive p-values per item: category counts and item-rest correlation.

    Returns
    -------
    pandas.DataFrame
        One row per item: ``ppp_categories`` (observed chi-square distance of the counts
        from their expectation, against replicated), ``item_rest_observed``,
        ``item_rest_replicated`` (mean), ``ppp_item_rest`` (share of replicates with a
        larger correlation) and ``flagged`` (either PPP outside [0.05, 0.95]).

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> table = ss.fitstats.item_fit(idata)  # doctest: +SKIP
    >>> table[table["flagged"]]  # doctest: +SKIP
    """
    require(idata, "posterior", "posterior_predictive", "observed_data", "constant_data", what="item fit")
    obs = observed_answers(idata).values
    answered = obs >= 0
    rep_all = replicated_answers(idata)
    draws = _thin(rep_all.sizes[dims.STACKED], max_draws, seed)
    rep = rep_all.values[draws]  # (s, i, j)
    probs = _cell_probs(idata, draws)  # (s, i, j, k)
    k = probs.shape[-1]
    expected = (probs * answered[None, :, :, None]).sum(axis=1)  # (s, j, k)
    one_hot_obs = (obs[..., None] == np.arange(k)) & answered[..., None]
    counts_obs = one_hot_obs.sum(axis=0)  # (j, k)
    counts_rep = ((rep[..., None] == np.arange(k)) & answered[None, ..., None]).sum(axis=1)  # (s, j, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        chi_obs = np.nansum((counts_obs[None] - expected) ** 2 / expected, axis=-1)
        chi_rep = np.nansum((counts_rep - expected) ** 2 / expected, axis=-1)
    battery = idata.constant_data["battery_of_item"].values
    codes = idata.constant_data["category_code"].values
    y_obs = np.where(answered, codes[np.clip(obs, 0, None)], np.nan)
    y_rep = np.where(answered[None], codes[np.clip(rep, 0, None)], np.nan)
    r_obs = _item_rest_corr(y_obs, battery)
    r_rep = _item_rest_corr(y_rep, battery)
    table = pd.DataFrame(
        {
            "battery": battery,
            "ppp_categories": (chi_rep >= chi_obs).mean(axis=0),
            "item_rest_observed": r_obs,
            "item_rest_replicated": _nanmean(r_rep, axis=0),
            # an item alone in its battery has no rest score: no p-value, not a p-value of 0
            "ppp_item_rest": np.where(np.isfinite(r_obs), (r_rep >= r_obs[None]).mean(axis=0), np.nan),
        },
        index=pd.Index(idata.observed_data[dims.ITEM].values, name="item"),
    )
    outside = lambda p: (p < FLAG) | (p > 1 - FLAG)  # noqa: E731
    table["flagged"] = outside(table["ppp_categories"]) | (
        outside(table["ppp_item_rest"]) & np.isfinite(table["ppp_item_rest"])
    )
    return table


def person_fit(idata, max_draws: int | None = DRAWS.fit_statistics, seed: int = 0) -> pd.DataFrame:
    """Per respondent, the PPP of their answers' log-likelihood against replicated answers.

    A respondent whose answers are less likely under each draw than almost every replicate
    from it (PPP < 0.05) answers in a way the model does not expect (random answering,
    an answer style, a misread item).

    Returns
    -------
    pandas.DataFrame
        One row per respondent: ``loglik`` (posterior mean), ``ppp`` and ``flagged``;
        ``attrs['flagged_share']``.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> ss.fitstats.person_fit(idata).attrs["flagged_share"]  # doctest: +SKIP
    """
    require(idata, "posterior", "posterior_predictive", "observed_data", "constant_data", what="person fit")
    obs = observed_answers(idata).values
    answered = obs >= 0
    rep_all = replicated_answers(idata)
    draws = _thin(rep_all.sizes[dims.STACKED], max_draws, seed)
    rep = rep_all.values[draws]
    probs = _cell_probs(idata, draws)  # (s, i, j, k)
    log_p = np.log(np.clip(probs, 1e-300, None))

    def loglik(y):  # y (s, i, j) or (i, j)
        y = np.broadcast_to(y, log_p.shape[:-1])
        picked = np.take_along_axis(log_p, np.clip(y, 0, None)[..., None], axis=-1)[..., 0]
        return (picked * answered).sum(axis=-1)  # (s, i)

    l_obs, l_rep = loglik(obs), loglik(rep)
    ppp = (l_rep <= l_obs).mean(axis=0)
    table = pd.DataFrame(
        {"loglik": l_obs.mean(axis=0), "ppp": ppp, "flagged": ppp < FLAG},
        index=pd.Index(idata.observed_data[dims.RESPONDENT].values, name="respondent"),
    )
    table.attrs["flagged_share"] = float(table["flagged"].mean())
    return table


def scores(idata) -> xr.Dataset:
    """Each respondent's posterior mean and sd of the latent trait, per battery.

    Returns
    -------
    xarray.Dataset
        ``mean`` and ``sd``, dims (respondent, battery), and ``reliability`` (battery): the
        marginal reliability.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> ss.fitstats.scores(idata)["reliability"]  # doctest: +SKIP
    """
    require(idata, "posterior", what="person scores")
    theta = posterior_draws(idata, "theta")
    mean = theta.mean(dims.STACKED)
    sd = theta.std(dims.STACKED)
    between = mean.var(dims.RESPONDENT)
    within = (sd**2).mean(dims.RESPONDENT)
    reliability = between / (between + within)
    return xr.Dataset({"mean": mean, "sd": sd, "reliability": reliability})


def information(idata, grid: np.ndarray | None = None) -> xr.Dataset:
    """Item and test information curves per battery at the posterior mean item parameters.

    Parameters
    ----------
    grid : ndarray, optional
        Latent trait values (default -4 to 4 in 81 steps).

    Returns
    -------
    xarray.Dataset
        ``item_information`` (theta, item) and ``test_information`` (theta, battery).

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> ss.plots.information(ss.fitstats.information(idata))  # doctest: +SKIP
    """
    require(idata, "posterior", "constant_data", what="information curves")
    grid = np.linspace(-4, 4, 81) if grid is None else np.asarray(grid, float)
    post = idata.posterior
    link = post.attrs.get("link", "logit")
    lam = post["lambda"].mean(dims.SAMPLE).values  # (j,)
    cuts = post["cuts"].mean(dims.SAMPLE).values  # (j, k-1)
    x = cuts[None] - lam[None, :, None] * grid[:, None, None]  # (t, j, k-1)
    eps = 1e-5
    cdf = link_cdf(x, link)
    density = (link_cdf(x + eps, link) - link_cdf(x - eps, link)) / (2 * eps)
    pad0, pad1 = np.zeros_like(cdf[..., :1]), np.ones_like(cdf[..., :1])
    upper, lower = np.concatenate([cdf, pad1], -1), np.concatenate([pad0, cdf], -1)
    d_upper = np.concatenate([density, pad0], -1)
    d_lower = np.concatenate([pad0, density], -1)
    p = upper - lower
    dp = -lam[None, :, None] * (d_upper - d_lower)  # d p_k / d theta
    item_info = (dp**2 / np.clip(p, 1e-300, None)).sum(-1)  # (t, j)
    battery = idata.constant_data["battery_of_item"].values
    batteries = list(post[dims.BATTERY].values)
    test = np.stack([item_info[:, battery == b].sum(-1) for b in batteries], axis=-1)
    return xr.Dataset(
        {
            "item_information": (("theta", dims.ITEM), item_info),
            "test_information": (("theta", dims.BATTERY), test),
        },
        coords={"theta": grid, dims.ITEM: post[dims.ITEM].values, dims.BATTERY: batteries},
    )
