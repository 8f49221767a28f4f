"""What a fit with response styles or informative non-response says, and how far it moves
the plain model's answers.

The support share compared across models is each item's share of support among *all*
respondents, answered or not, read at each respondent's traits with the styles set aside
(thresholds at the item's own, no acquiescent shift): what people think, had everyone
answered in the scale's own terms. A plain model estimates the same quantity, so the two
stand side by side (:func:`sensitivity`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scsurvey.core import dims
from scsurvey.model.likelihood import support_share
from scsurvey.model.styles import ACQUIESCENCE, KAPPA, NONRESPONSE_SLOPE, PROPENSITY, STYLE
from scsurvey.posterior.draws import (
    HIGH,
    LOW,
    at_predictive_draws,
    has_draws,
    observed_answers,
    posterior_draws,
    support_mask,
    thin,
)
from scsurvey.posterior.integrated_likelihood import population

STYLE_SDS = {"extreme": "style_sd", "acquiescence": "acquiescence_sd"}
MAX_DRAWS = 400  # draws of the share estimand: its Monte Carlo error is far below its sd


def has_styles(idata) -> bool:
    """Whether ``idata`` is a fit with a response style or informative non-response."""
    return any(v in idata.posterior for v in (*STYLE_SDS.values(), KAPPA))


def support_draws(idata, max_draws: int = MAX_DRAWS) -> np.ndarray:
    """Each item's style-free support share over all respondents, per draw: (sample, item).

    Reads the traits at the draws the respondent-level group holds (the posterior predictive
    ones); a fit without a residual reads the population part.
    """
    small = thin(at_predictive_draws(idata), max_draws)
    pop = population(small, styles=False)
    theta = posterior_draws(small, "theta").values if has_draws(small, "theta") else pop.mean
    out = np.empty((theta.shape[0], pop.cuts.shape[1]))
    mask = support_mask(idata)
    for s in range(theta.shape[0]):
        one = slice(s, s + 1)
        out[s] = support_share(pop.eta(theta[one], one)[0], pop.cuts[s], mask, pop.link).mean(axis=0)
    return out


def support_shares(idata, max_draws: int = MAX_DRAWS) -> pd.DataFrame:
    """:func:`support_draws` summarised per item: mean and 90% interval, beside the share
    observed among those who answered.

    Returns
    -------
    pandas.DataFrame
        Indexed by item: ``battery``, ``observed``, ``answered`` (share of respondents who
        answered), ``mean``, ``low``, ``high``.
    """
    draws = support_draws(idata, max_draws)
    obs = observed_answers(idata).values
    answered = obs >= 0
    mask = np.asarray(support_mask(idata), dtype=bool)
    observed = (mask[np.maximum(obs, 0)] & answered).sum(0) / np.maximum(answered.sum(0), 1)
    return pd.DataFrame(
        {
            "battery": idata.constant_data["battery_of_item"].values,
            "observed": observed,
            "answered": answered.mean(0),
            "mean": draws.mean(0),
            "low": np.quantile(draws, LOW, axis=0),
            "high": np.quantile(draws, HIGH, axis=0),
        },
        index=pd.Index(idata.observed_data[dims.ITEM].values, name="item"),
    )


def _interval(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(x.mean()), "low": float(np.quantile(x, LOW)), "high": float(np.quantile(x, HIGH))}


def style_estimates(idata) -> pd.DataFrame:
    """The response styles' spreads across respondents, and what they mean on the scale.

    Returns
    -------
    pandas.DataFrame
        One row per style in the fit: ``sd`` (mean and 90% interval of its sd across
        respondents) and, for the extreme style, the factor a respondent one sd towards
        extreme responding draws the thresholds in by (``exp(-sd)``).
    """
    rows = []
    for style, var in STYLE_SDS.items():
        if var not in idata.posterior:
            continue
        sd = posterior_draws(idata, var).values
        row = {"style": style, **{f"sd_{k}": v for k, v in _interval(sd).items()}}
        if style == "extreme":
            row.update({f"factor_{k}": v for k, v in _interval(np.exp(-sd)).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def nonresponse_estimates(idata) -> pd.DataFrame:
    """Per battery, how non-response moves with the trait: the slope ``gamma`` (log-odds of
    no answer per unit of latent support), the correlation of the propensity with the trait
    across respondents, and the non-answer rate observed among the battery's answers.

    Returns
    -------
    pandas.DataFrame
        Indexed by battery: ``slope_mean``, ``slope_low``, ``slope_high``,
        ``p_negative`` (posterior probability that those who support less answer less),
        ``corr_mean``, ``corr_low``, ``corr_high``, ``observed_rate``.
    """
    if NONRESPONSE_SLOPE not in idata.posterior:
        return pd.DataFrame()
    gamma = posterior_draws(idata, NONRESPONSE_SLOPE)  # (sample, battery)
    theta = posterior_draws(idata, "theta").values  # (s, i, b), the respondent draws
    propensity = posterior_draws(idata, PROPENSITY).values  # (s, i)
    obs = observed_answers(idata).values
    battery_of_item = idata.constant_data["battery_of_item"].values
    rows = []
    for b, battery in enumerate(gamma[dims.BATTERY].values):
        g = gamma.values[:, b]
        corr = np.array([np.corrcoef(theta[s, :, b], propensity[s])[0, 1] for s in range(len(theta))])
        cols = battery_of_item == battery
        rows.append(
            {
                "battery": battery,
                **{f"slope_{k}": v for k, v in _interval(g).items()},
                "p_negative": float((g < 0).mean()),
                **{f"corr_{k}": v for k, v in _interval(corr).items()},
                "observed_rate": float((obs[:, cols] < 0).mean()),
            }
        )
    return pd.DataFrame(rows).set_index("battery")


def respondent_styles(idata) -> pd.DataFrame:
    """Each respondent's posterior mean style (the columns the fit has: ``extreme``, the log
    threshold spread, negative towards the ends; ``acquiescence``, the shift towards agreeing)."""
    out = {}
    for name, var in (("extreme", STYLE), ("acquiescence", ACQUIESCENCE)):
        if has_draws(idata, var):
            out[name] = posterior_draws(idata, var).values.mean(0)
    return pd.DataFrame(out, index=pd.Index(idata.observed_data[dims.RESPONDENT].values, name="respondent"))


def sensitivity(plain, rich, codebook) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each item's support share and each published finding's verdict under the plain
    model and under the richer one, side by side.

    Parameters
    ----------
    plain, rich : arviz.InferenceData
        Fits of the same survey without and with the styles or informative non-response.
    codebook : Codebook

    Returns
    -------
    shares : pandas.DataFrame
        Indexed by item: ``label``, ``observed``, then ``plain``/``rich`` means with their
        90% intervals and ``rich - plain``.
    verdicts : pandas.DataFrame
        One row per finding and battery: the effect's mean and verdict under each, and
        ``changed``.
    """
    from scsurvey.posterior.summaries import who_supports

    a, b = support_shares(plain), support_shares(rich)
    shares = pd.DataFrame(
        {
            "label": [i.label for i in codebook.items],
            "battery": a["battery"],
            "observed": a["observed"],
            "plain": a["mean"],
            "plain_low": a["low"],
            "plain_high": a["high"],
            "rich": b["mean"],
            "rich_low": b["low"],
            "rich_high": b["high"],
        },
        index=a.index,
    )
    shares["rich - plain"] = shares["rich"] - shares["plain"]
    wa, wb = who_supports(plain, codebook), who_supports(rich, codebook)
    verdicts = wa[["finding", "covariate", "battery", "published"]].copy()
    verdicts["plain_mean"], verdicts["plain"] = wa["mean"], wa["verdict"]
    verdicts["rich_mean"], verdicts["rich"] = wb["mean"].values, wb["verdict"].values
    verdicts["changed"] = verdicts["plain"] != verdicts["rich"]
    return shares, verdicts


def nonresponse_by_trait(idata, bins: int = 10) -> pd.DataFrame:
    """Per battery and tenth of the respondents' estimated support: the share of the
    battery's items left unanswered, observed and fitted (mean and 90% interval over draws).

    Returns
    -------
    pandas.DataFrame
        ``battery``, ``support`` (the tenth's mean estimated trait), ``observed``, ``model``,
        ``model_low``, ``model_high``; empty for a fit without informative non-response.
    """
    if KAPPA not in idata.posterior:
        return pd.DataFrame()
    theta = posterior_draws(idata, "theta")
    propensity = posterior_draws(idata, PROPENSITY)
    at = {"chain": np.unique(propensity["chain"].values), "draw": np.unique(propensity["draw"].values)}
    kappa = (
        idata.posterior[KAPPA].sel(at).stack({dims.STACKED: dims.SAMPLE}).transpose(dims.STACKED, ...).values
    )
    rate = 1.0 / (1.0 + np.exp(-(kappa[:, None, :] + propensity.values[:, :, None])))  # (s, i, j)
    missing = observed_answers(idata).values < 0
    battery_of_item = idata.constant_data["battery_of_item"].values
    rows = []
    for b, battery in enumerate(theta[dims.BATTERY].values):
        score = theta.values[:, :, b].mean(0)
        tenth = np.minimum((pd.Series(score).rank(pct=True).values * bins).astype(int), bins - 1)
        cols = battery_of_item == battery
        for t in range(bins):
            who = tenth == t
            fitted = rate[:, who][:, :, cols].mean(axis=(1, 2))
            rows.append(
                {
                    "battery": battery,
                    "support": float(score[who].mean()),
                    "observed": float(missing[who][:, cols].mean()),
                    "model": float(fitted.mean()),
                    "model_low": float(np.quantile(fitted, LOW)),
                    "model_high": float(np.quantile(fitted, HIGH)),
                }
            )
    return pd.DataFrame(rows)
