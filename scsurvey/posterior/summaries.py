"""Estimands from a stored posterior: support per item, who supports, groups, profiles, LOO.

Everything reads InferenceData (and, for published figures, findings and contrasts, the
codebook); nothing refits.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from scsurvey.core import dims
from scsurvey.core.defaults import DRAWS
from scsurvey.inputs.codebook import Codebook
from scsurvey.model import predictor
from scsurvey.model.likelihood import support_share
from scsurvey.posterior import choices, dif
from scsurvey.posterior.checks import loo_respondents
from scsurvey.posterior.draws import (
    HIGH,
    INTERVAL,
    LOW,
    battery_scores,
    observed_answers,
    observed_support,
    posterior_draws,
    replicated_answers,
    residual_quadrature,
    support_indicator,
)

QUADRATURE_NODES = 40  # Gauss-Hermite nodes integrating the unit-normal residual


def support_table(
    idata, codebook: Codebook | None = None, max_draws: int | None = DRAWS.checks
) -> pd.DataFrame:
    """Support share per item: observed, posterior predictive (90% interval), published.

    Returns
    -------
    pandas.DataFrame
        Indexed by item: ``observed``, ``model``, ``model_low``, ``model_high``,
        ``published``, ``model - observed``, ``model - published``, ``observed - published``.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> ss.summaries.support_table(idata, m.codebook)[["observed", "model", "published"]]  # doctest: +SKIP
    """
    obs = observed_answers(idata)
    mask = obs >= 0
    n = mask.sum(dims.RESPONDENT)
    observed = observed_support(idata)
    rep = (support_indicator(idata, replicated_answers(idata, max_draws)) & mask).sum(dims.RESPONDENT) / n
    items = list(obs[dims.ITEM].values)
    frame = pd.DataFrame(
        {
            "battery": idata.constant_data["battery_of_item"].values,
            "observed": observed.values,
            "model": rep.mean(dims.STACKED).values,
            "model_low": rep.quantile(LOW, dims.STACKED).values,
            "model_high": rep.quantile(HIGH, dims.STACKED).values,
        },
        index=pd.Index(items, name="item"),
    )
    published = {i.id: i.published_support for i in codebook.items} if codebook else {}
    frame["published"] = [published.get(i, np.nan) for i in items]
    frame["model - observed"] = frame["model"] - frame["observed"]
    frame["model - published"] = frame["model"] - frame["published"]
    frame["observed - published"] = frame["observed"] - frame["published"]
    if codebook:
        frame.insert(1, "label", [i.label for i in codebook.items])
    return frame


def covariate_effects(idata) -> pd.DataFrame:
    """Covariate effects per battery: mean, 90% interval, P(> 0), probability of direction.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> ss.summaries.covariate_effects(m.idata).query("p_direction > 0.95")  # doctest: +SKIP
    """
    if "beta" not in idata.posterior:
        return pd.DataFrame()
    beta = posterior_draws(idata, "beta")
    rows = []
    for b in beta[dims.BATTERY].values:
        for c in beta[dims.COVARIATE].values:
            x = beta.sel({dims.BATTERY: b, dims.COVARIATE: c}).values
            p_pos = float((x > 0).mean())
            rows.append(
                {
                    "battery": b,
                    "covariate": c,
                    "mean": x.mean(),
                    "low": np.quantile(x, LOW),
                    "high": np.quantile(x, HIGH),
                    "p_positive": p_pos,
                    "p_direction": max(p_pos, 1 - p_pos),
                }
            )
    return pd.DataFrame(rows)


def who_supports(idata, codebook: Codebook) -> pd.DataFrame:
    """Each published finding beside the model's estimate: agrees, contradicts or uncertain.

    A finding agrees when the 90% interval of the effect excludes zero on the published side,
    contradicts when it excludes zero on the other side, and is uncertain otherwise.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> ss.summaries.who_supports(idata, m.codebook)[["finding", "verdict"]]  # doctest: +SKIP
    """
    effects = covariate_effects(idata)
    rows = []
    for f in codebook.findings:
        batteries = [f.battery] if f.battery else list(idata.posterior[dims.BATTERY].values)
        for b in batteries:
            hit = effects[(effects["battery"] == b) & (effects["covariate"] == f.covariate)]
            if hit.empty:
                rows.append(
                    {
                        "finding": f.text,
                        "covariate": f.covariate,
                        "battery": b,
                        "published": f.direction,
                        "verdict": "not in model",
                    }
                )
                continue
            e = hit.iloc[0]
            sign = 1 if f.direction == "+" else -1
            found = 1 if e["low"] > 0 else -1 if e["high"] < 0 else 0
            verdict = "uncertain" if found == 0 else "agrees" if found == sign else "contradicts"
            rows.append(
                {
                    "finding": f.text,
                    "covariate": f.covariate,
                    "battery": b,
                    "published": f.direction,
                    "mean": e["mean"],
                    "low": e["low"],
                    "high": e["high"],
                    "p_published_direction": e["p_positive"] if sign > 0 else 1 - e["p_positive"],
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows, columns=WHO_COLUMNS)


# a codebook without findings still gets the table's columns (an empty table, not a KeyError)
WHO_COLUMNS = ["finding", "covariate", "battery", "published", "mean", "low", "high"]
WHO_COLUMNS += ["p_published_direction", "verdict"]


def group_shrinkage(idata) -> dict[str, pd.DataFrame]:
    """Per grouping factor: raw index deviation per level beside the pooled effect.

    ``raw`` is the level's observed battery-index mean minus the overall mean (no pooling,
    on the answer scale); ``pooled`` is the posterior of the zero-sum group effect u (latent
    scale), with its 90% interval. Small levels are pulled toward zero.
    """
    obs = observed_answers(idata)
    index_obs = battery_scores(idata, obs, obs >= 0)
    out = {}
    for var in idata.posterior.data_vars:
        if not var.startswith("u_"):
            continue
        group = var[2:]
        levels = list(idata.constant_data[group].values)
        member = idata.constant_data[f"index_{group}"].values
        u = posterior_draws(idata, var)
        rows = []
        for b in u[dims.BATTERY].values:
            values = index_obs[str(b)].values
            overall = np.nanmean(values)
            for k, level in enumerate(levels):
                sel = member == k
                draws = u.sel({dims.BATTERY: b, group: level}).values
                rows.append(
                    {
                        "battery": b,
                        "level": level,
                        "n": int(sel.sum()),
                        "raw": np.nanmean(values[sel]) - overall if sel.any() else np.nan,
                        "pooled": draws.mean(),
                        "low": np.quantile(draws, LOW),
                        "high": np.quantile(draws, HIGH),
                    }
                )
        out[group] = pd.DataFrame(rows)
    return out


def _standardised(codebook: Codebook, idata, profile: dict) -> dict[str, float]:
    """Raw covariate codes of a profile on the model's standardised scale."""
    center = idata.constant_data["covariate_center"].to_series()
    scale = idata.constant_data["covariate_scale"].to_series()
    out = {}
    for cid, value in profile.items():
        cov = codebook.covariate(cid)
        v = np.log(value) if cov.transform == "log" else float(value)
        out[cid] = (v - center[cid]) / scale[cid]
    return out


def linear_predictor(idata, x: dict[str, float], latent: np.ndarray, draws: slice | np.ndarray = slice(None)):
    """The model's eta for covariate values ``x`` (standardised) and latent traits.

    Parameters
    ----------
    idata : arviz.InferenceData
    x : dict
        Standardised covariate values; covariates not named are at their mean (0).
    latent : ndarray, shape (sample, node, battery)
        Latent support theta for each posterior sample.
    draws : slice or index array
        Which stacked posterior samples.

    Returns
    -------
    ndarray, shape (sample, node, item)
    """
    post = idata.posterior
    b_of_item = idata.constant_data["battery_of_item"].values
    batteries = list(post[dims.BATTERY].values)
    col = np.array([batteries.index(b) for b in b_of_item])
    lam = posterior_draws(idata, "lambda").values[draws]  # (s, item)
    offset = None
    if "delta" in post:
        delta = posterior_draws(idata, "delta")  # (s, item_covariate, item)
        xd = np.array([[x.get(n, 0.0) for n in delta[dims.ITEM_COVARIATE].values]])
        offset = predictor.item_offset(delta.values[draws], xd, 1, len(col))
    if dif.has_dif(idata):
        d = dif.profile_contrasts(idata, x)[None]
        shift = predictor.item_offset(posterior_draws(idata, dif.LOCATION).values[draws], d, 1, len(col))
        offset = shift if offset is None else offset + shift
        if dif.DISCRIMINATION in post:
            ratio = posterior_draws(idata, dif.DISCRIMINATION).values[draws]  # (s, dif_level, item)
            lam = lam * np.exp(np.einsum("l,slj->sj", d[0], ratio))
    return predictor.eta(lam, latent, col, offset)


def support_probability(
    idata, x: dict[str, float], max_draws: int = DRAWS.checks, seed: int = 0
) -> xr.DataArray:
    """Predicted support per item for a profile, residual integrated out.

    Other covariates sit at their sample mean, group effects at their average (zero), and
    the unit-normal residual of the latent trait is integrated by Gauss-Hermite quadrature.

    Returns
    -------
    xarray.DataArray, dims (sample, item)

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> ss.summaries.support_probability(idata, {"age": 1.0}).mean("sample")  # doctest: +SKIP
    """
    post = idata.posterior
    n = post.sizes["chain"] * post.sizes["draw"]
    draws = np.sort(np.random.default_rng(seed).choice(n, min(n, max_draws), replace=False))
    nodes, weights = residual_quadrature(idata, QUADRATURE_NODES)
    n_b = post.sizes[dims.BATTERY]
    mean = np.zeros((len(draws), n_b))
    if "beta" in post:
        beta = posterior_draws(idata, "beta")
        xv = np.array([x.get(c, 0.0) for c in beta[dims.COVARIATE].values])
        mean = np.einsum("sbp,p->sb", beta.values[draws], xv)
    latent = mean[:, None, :] + nodes[None, :, None]
    eta = linear_predictor(idata, x, latent, draws)  # (s, node, item)
    cuts = posterior_draws(idata, "cuts").values[draws]  # (s, item, threshold)
    support = idata.constant_data["support"].values.astype(bool)
    p = support_share(eta, cuts[:, None], support, post.attrs.get("link", "logit"))  # (s, node, item)
    prob = np.einsum("snj,n->sj", p, weights)
    return xr.DataArray(prob, dims=(dims.STACKED, dims.ITEM), coords={dims.ITEM: post[dims.ITEM].values})


def profile_contrasts(idata, codebook: Codebook, max_draws: int = DRAWS.checks) -> pd.DataFrame:
    """Differences in predicted support (profile a minus b) per item, with 90% intervals.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> ss.summaries.profile_contrasts(m.idata, m.codebook)  # doctest: +SKIP
    """
    rows = []
    covariates = set(idata.posterior["beta"][dims.COVARIATE].values) if "beta" in idata.posterior else set()
    for c in codebook.contrasts:
        a, b = dict(c.a), dict(c.b)
        if not set(a) | set(b) <= covariates:
            continue
        diff = support_probability(idata, _standardised(codebook, idata, a), max_draws) - support_probability(
            idata, _standardised(codebook, idata, b), max_draws
        )
        for item in diff[dims.ITEM].values:
            d = diff.sel({dims.ITEM: item}).values
            rows.append(
                {
                    "contrast": c.label,
                    "item": item,
                    "difference": d.mean(),
                    "low": np.quantile(d, LOW),
                    "high": np.quantile(d, HIGH),
                    "p_positive": float((d > 0).mean()),
                }
            )
    return pd.DataFrame(rows)


def compare_models(posteriors: dict[str, az.InferenceData], kind: str = "integrated") -> pd.DataFrame:
    """LOO comparison (leave one respondent out) of specs fitted to the same data, best first.

    Parameters
    ----------
    posteriors : dict
        Model name -> InferenceData.
    kind : {"integrated", "conditional"}
        Which log-likelihood (:func:`scsurvey.posterior.checks.loo_respondents`).

    Returns
    -------
    pandas.DataFrame
        ArviZ's comparison table, with ``reliable`` (no respondent with Pareto k > 0.7).

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/full/posterior.nc")  # doctest: +SKIP
    >>> idata = m.idata  # doctest: +SKIP
    >>> ss.summaries.compare_models({"baseline": a, "full": b})  # doctest: +SKIP
    """
    if len(posteriors) < 2:
        return pd.DataFrame()
    loos, reliable = {}, {}
    for name, idata in posteriors.items():
        loos[name], table = loo_respondents(idata, kind)
        reliable[name] = table.attrs["reliable"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = az.compare(loos, ic="loo")
    out["reliable"] = [reliable[name] for name in out.index]
    return out


dif_items = dif.item_table
dif_group_differences = dif.group_differences
reason_shares = choices.option_shares
reason_orderings = choices.ordering_verdicts
reason_curves = choices.choice_curves

__all__ = [
    "INTERVAL",
    "compare_models",
    "covariate_effects",
    "dif_group_differences",
    "dif_items",
    "group_shrinkage",
    "linear_predictor",
    "profile_contrasts",
    "reason_curves",
    "reason_orderings",
    "reason_shares",
    "support_probability",
    "support_table",
    "who_supports",
]
