"""The twin's multiple-response questions: each option chosen with a probability that moves
with the respondent's latent support, the intercepts solved so that the population shares
among those asked are the ones the twin file assumes.

The model is the one :mod:`scsurvey.model.choices` fits::

    logit P(i chooses option k) = option_intercept_k + option_slope_k * theta_{i, b(k)}

with ``b(k)`` the battery its question is modelled on and theta the latent support.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from scsurvey.inputs.choices import asked_mask
from scsurvey.inputs.codebook import Codebook


class TwinChoiceError(ValueError):
    """The twin file's multiple-response tables do not fit the codebook."""


def option_settings(codebook: Codebook, config: dict) -> dict[str, np.ndarray]:
    """Every option's assumed population share and slope, in the codebook's option order.

    Raises
    ------
    TwinChoiceError
        When a question of the codebook has no table, an option no share or slope, a
        share outside (0, 1), or the twin names what the codebook does not have.
    """
    src = config.get("_path", "<twin>")
    tables = config.get("multiple_response", {})
    unknown = sorted(set(tables) - {q.id for q in codebook.multiple_response})
    if unknown:
        raise TwinChoiceError(
            f"twin file {src}: [multiple_response.{unknown[0]}]: not a question of the codebook"
        )
    shares, slopes = [], []
    for q in codebook.multiple_response:
        where = f"twin file {src}: [multiple_response.{q.id}]"
        if q.id not in tables:
            raise TwinChoiceError(f"{where}: missing (the codebook has the question; give shares and slopes)")
        if q.route is not None and q.route not in codebook.battery_ids:
            raise TwinChoiceError(
                f"{where}: the question is routed on column {q.route!r}; the twin simulates "
                "routing on a battery only"
            )
        for key, out in (("shares", shares), ("slopes", slopes)):
            table = tables[q.id].get(key, {})
            if sorted(table) != sorted(q.option_ids):
                raise TwinChoiceError(
                    f"{where}.{key}: needs exactly the options {q.option_ids}, has {sorted(table)}"
                )
            out.extend(float(table[o]) for o in q.option_ids)
    shares, slopes = np.array(shares), np.array(slopes)
    if ((shares <= 0) | (shares >= 1)).any():
        raise TwinChoiceError(
            f"twin file {src}: [multiple_response] shares {shares.tolist()} must be in (0, 1)"
        )
    return {"share": shares, "slope": slopes}


def _question_slices(codebook: Codebook):
    start = 0
    for q in codebook.multiple_response:
        yield q, slice(start, start + len(q.options)), codebook.battery_ids.index(q.battery)
        start += len(q.options)


def solve_intercepts(codebook, settings, theta, responses, frame) -> np.ndarray:
    """Intercepts giving each option its share among those asked in a population.

    Parameters
    ----------
    codebook : Codebook
    settings : dict
        :func:`option_settings`.
    theta : ndarray, shape (respondent, battery)
        The population's latent support.
    responses : ndarray, shape (respondent, item)
        Its answers (0-based categories), which route the questions.
    frame : pandas.DataFrame
        Its table (for a question routed on a column).
    """
    out = np.empty(len(settings["share"]))
    for q, sl, b in _question_slices(codebook):
        t = theta[asked_mask(q, frame, codebook, responses, "twin population"), b]
        for k in range(sl.start, sl.stop):
            slope, share = settings["slope"][k], settings["share"][k]
            out[k] = brentq(lambda a, s=slope, p=share, t=t: expit(a + s * t).mean() - p, -20.0, 20.0)
    return out


def simulate_choices(codebook, intercept, slope, theta, responses, frame, rng):
    """Each question's option columns for a sample, with the true and observed share among
    those asked.

    Returns
    -------
    columns : dict
        Option column -> codes (``chosen``, ``not_chosen``; NaN where not asked).
    share, observed : ndarray, shape (option,)
        Mean over the sample's asked respondents of each option's true probability; the
        share of them choosing it.
    asked_n : ndarray of int, shape (option,)
        How many were asked each option's question.
    """
    columns, asked_n = {}, np.empty(len(intercept), dtype=int)
    share, observed = np.empty(len(intercept)), np.empty(len(intercept))
    for q, sl, b in _question_slices(codebook):
        asked = asked_mask(q, frame, codebook, responses, "twin sample")
        asked_n[sl] = asked.sum()
        p = expit(intercept[sl] + slope[sl] * theta[:, b : b + 1])  # (respondent, option)
        draw = rng.random(p.shape) < p
        share[sl], observed[sl] = p[asked].mean(axis=0), draw[asked].mean(axis=0)
        for k, option in enumerate(q.options):
            codes = np.where(draw[:, k], q.chosen, q.not_chosen).astype(object)
            codes[~asked] = np.nan
            columns[option.column] = pd.Series(codes).infer_objects()
    return columns, share, observed, asked_n
