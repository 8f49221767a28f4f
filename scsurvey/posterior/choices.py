"""The multiple-response questions read from a posterior (:mod:`scsurvey.model.choices`):
each option's share among those asked, the published orderings' verdicts, and how choosing
moves with latent support.

The share of an option is the mean, over the respondents who were asked, of their
probability of choosing it: the model's estimate of what those respondents tend to cite,
with the uncertainty of each respondent's latent support carried through (the posterior's
respondent-level draws).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

from scsurvey.core import dims
from scsurvey.core.dims import CHOICE
from scsurvey.inputs.choices import CHOSEN, NOT_ASKED
from scsurvey.inputs.codebook import Codebook
from scsurvey.posterior.draws import posterior_draws

INTERVAL = 0.90  # the intervals reported, as elsewhere in the report
# an ordering agrees when the posterior probability that it holds is at least this, and is
# contradicted when at most 1 - this: the same evidence as a 90% interval of the difference
# excluding zero on one side
AGREE = 0.95
ORDERING_COLUMNS = ["question", "finding", "more", "less", "difference", "p_holds", "verdict"]


def has_choices(idata) -> bool:
    """Whether ``idata`` is a fit with multiple-response questions."""
    return "option_intercept" in idata.posterior


def asked(idata) -> xr.DataArray:
    """Who was asked each option's question, dims (respondent, option)."""
    return idata.observed_data[CHOICE] != NOT_ASKED


def share_draws(idata) -> xr.DataArray:
    """Each option's share among those asked, dims (sample, option), at the draws the
    respondent-level traits are stored for (one option at a time: a survey's respondents x
    options x draws need not fit in memory)."""
    theta = posterior_draws(idata, "theta")  # (sample, respondent, battery)
    at = theta[dims.STACKED]
    intercept = posterior_draws(idata, "option_intercept").sel({dims.STACKED: at})
    slope = posterior_draws(idata, "option_slope").sel({dims.STACKED: at})
    battery = idata.constant_data["option_battery_index"].values
    mask = asked(idata).values
    shares = np.empty((len(at), len(battery)))
    for k, b in enumerate(battery):
        t = theta.values[:, mask[:, k], b]
        shares[:, k] = expit(intercept.values[:, k, None] + slope.values[:, k, None] * t).mean(axis=1)
    return xr.DataArray(
        shares,
        dims=(dims.STACKED, dims.OPTION),
        coords={dims.STACKED: at, dims.OPTION: intercept[dims.OPTION].values},
    )


def option_shares(idata, codebook: Codebook | None = None, draws: xr.DataArray | None = None) -> pd.DataFrame:
    """Per option: its question, how many were asked, the observed share choosing it among
    those who answered, and the model's share with its 90% interval (from ``draws``,
    :func:`share_draws`, when the caller has them)."""
    draws = share_draws(idata) if draws is None else draws
    codes = idata.observed_data[CHOICE].values
    answered = codes >= 0
    lo, hi = (1 - INTERVAL) / 2, (1 + INTERVAL) / 2
    labels = {o.id: o.label for q in codebook.multiple_response for o in q.options} if codebook else {}
    frame = pd.DataFrame(
        {
            "question": idata.constant_data["option_question"].values,
            "option": draws[dims.OPTION].values,
            "asked": (codes != NOT_ASKED).sum(axis=0),
            "observed": (codes == CHOSEN).sum(axis=0) / np.maximum(answered.sum(axis=0), 1),
            "model": draws.mean(dims.STACKED).values,
            "lower": draws.quantile(lo, dims.STACKED).values,
            "upper": draws.quantile(hi, dims.STACKED).values,
        }
    )
    if codebook:
        frame.insert(2, "label", [labels.get(o, "") for o in frame["option"]])
    return frame


def ordering_verdicts(idata, codebook: Codebook, draws: xr.DataArray | None = None) -> pd.DataFrame:
    """Each published ordering, pair by pair: the posterior probability that the first option
    is chosen more often than the second by those asked, and a verdict.

    Returns
    -------
    pandas.DataFrame
        Columns question, finding, more, less, difference (posterior mean of the share
        difference), p_holds and verdict ("agrees", "uncertain" or "contradicts"). ``draws``
        are :func:`share_draws` when the caller has them.
    """
    rows = []
    if not has_choices(idata):
        return pd.DataFrame(columns=ORDERING_COLUMNS)
    draws = share_draws(idata) if draws is None else draws
    fitted = set(draws[dims.OPTION].values)
    for ordering in codebook.orderings:
        for more, less in ordering.pairs:
            if more not in fitted or less not in fitted:
                continue
            diff = (draws.sel({dims.OPTION: more}) - draws.sel({dims.OPTION: less})).values
            p = float((diff > 0).mean())
            verdict = "agrees" if p >= AGREE else "contradicts" if p <= 1 - AGREE else "uncertain"
            rows.append((ordering.question, ordering.text, more, less, float(diff.mean()), p, verdict))
    return pd.DataFrame(rows, columns=ORDERING_COLUMNS)


def choice_curves(idata, n_grid: int = 41) -> xr.Dataset:
    """How the probability of choosing each option moves with latent support.

    The grid spans the 2.5th to 97.5th percentile of the posterior mean support of those
    asked the option's question, on the question's battery.

    Returns
    -------
    xarray.Dataset
        ``mean``, ``lower``, ``upper`` (option, grid point) and ``support`` (option, grid
        point), the latent support at each point.
    """
    intercept = posterior_draws(idata, "option_intercept")
    slope = posterior_draws(idata, "option_slope")
    theta_mean = posterior_draws(idata, "theta").mean(dims.STACKED).values  # (respondent, battery)
    battery = idata.constant_data["option_battery_index"].values
    mask = asked(idata).values
    grid = np.empty((len(battery), n_grid))
    for k, b in enumerate(battery):
        lo, hi = np.percentile(theta_mean[mask[:, k], b], [2.5, 97.5])
        grid[k] = np.linspace(lo, hi, n_grid)
    p = expit(intercept.values[:, :, None] + slope.values[:, :, None] * grid[None])  # (sample, option, grid)
    q = np.quantile(p, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    coords = {dims.OPTION: intercept[dims.OPTION].values}
    shape = (dims.OPTION, "grid")
    return xr.Dataset(
        {
            "mean": (shape, p.mean(axis=0)),
            "lower": (shape, q[0]),
            "upper": (shape, q[1]),
            "support": (shape, grid),
        },
        coords=coords,
    )


def replicate_choices(idata, theta: xr.DataArray, seed: int) -> xr.Dataset:
    """Posterior predictive choices at ``theta``'s draws (chain, draw, respondent, battery),
    for every cell; cells of respondents who were not asked are coded as not asked."""
    post = idata.posterior.sel(chain=theta["chain"], draw=theta["draw"])
    battery = idata.constant_data["option_battery_index"].values
    logit = (
        post["option_intercept"].values[:, :, None, :]
        + post["option_slope"].values[:, :, None, :] * theta.values[..., battery]
    )
    rng = np.random.default_rng(seed)
    rep = (rng.random(logit.shape) < expit(logit)).astype(np.int8)
    rep[..., ~asked(idata).values] = NOT_ASKED
    return xr.Dataset(
        {CHOICE: (("chain", "draw", dims.RESPONDENT, dims.OPTION), rep)},
        coords={
            "chain": theta["chain"].values,
            "draw": theta["draw"].values,
            dims.RESPONDENT: theta[dims.RESPONDENT].values,
            dims.OPTION: post[dims.OPTION].values,
        },
    )


def on_cells(answers: xr.DataArray, lay, respondents) -> xr.DataArray:
    """Draws of the model's answers (chain, draw, choice_answer) on the (respondent, option)
    cells, each unanswered cell keeping its code (not asked, no answer).

    Parameters
    ----------
    answers : xarray.DataArray
    lay : scsurvey.model.choices.ChoiceLayout
    respondents : array
        The respondent coordinate.
    """
    rows, options = lay.answered
    cells = np.broadcast_to(lay.codes, (*answers.shape[:2], *lay.codes.shape)).astype(np.int8)
    cells[:, :, rows, options] = answers.values
    return xr.DataArray(
        cells,
        dims=("chain", "draw", dims.RESPONDENT, dims.OPTION),
        coords={
            "chain": answers["chain"].values,
            "draw": answers["draw"].values,
            dims.RESPONDENT: respondents,
            dims.OPTION: lay.options,
        },
    )
