"""Answers not taken at face value: response styles and informative non-response.

Response styles (``[components] response_style``), per respondent ``i``:

- ``"extreme"``: the thresholds spread around each item's centre ``m_j`` (the mean of its
  thresholds) by a factor of the respondent's own, ``c_ijk = m_j + exp(s_i) (c_jk - m_j)``
  with ``s_i ~ Normal(0, style_sd)``. ``s_i < 0`` draws the thresholds in and pushes answers
  to the ends of the scale (extreme responding), ``s_i > 0`` to its middle.
- ``"acquiescence"``: a shift ``a_i ~ Normal(0, acquiescence_sd)`` towards agreeing with
  whatever is asked, ``eta_ij + key_j a_i`` with ``key_j = -1`` for a reverse-keyed item
  (whose answers are flipped before they reach the model). Only a battery keyed both ways
  tells it from the trait.

Informative non-response (``[components] nonresponse = "informative"``), a selection model
in the style of Holman and Glas (2005)::

    logit P(no answer_ij) = kappa_j + sum_b gamma_b theta_ib + nu_i,   nu_i ~ Normal(0, propensity_sd)

so that who declines to answer informs the traits. Every missing answer of a battery item
counts as a non-answer (a battery is put to everyone).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from scsurvey.core import dims
from scsurvey.inputs.survey import MISSING

STYLE = "style"  # respondent-level log threshold spread
ACQUIESCENCE = "acquiescence"  # respondent-level shift towards agreeing
PROPENSITY = "propensity"  # respondent-level non-response propensity (its trait part included)
KAPPA = "kappa"  # per item: log-odds of no answer at zero propensity
NONRESPONSE_SLOPE = "nonresponse_slope"  # per battery: gamma
NONRESPONSE = "nonresponse"  # the observed non-answer indicator (respondent, item)
NONRESPONSE_DATA = "nonresponse_data"
ITEM_KEY = "item_key"  # +1, or -1 for a reverse-keyed item


def item_key(codebook) -> np.ndarray:
    """+1 per item, -1 where the item is reverse-keyed."""
    return np.array([-1.0 if i.reverse else 1.0 for i in codebook.items])


def threshold_centre(cuts):
    """Each item's centre, the mean of its thresholds: NumPy arrays or PyTensor tensors,
    thresholds on the last axis."""
    return cuts.mean(axis=-1, keepdims=True)


def spread_thresholds(cuts, style):
    """Respondent-level thresholds ``m + exp(s) (c - m)``.

    Parameters
    ----------
    cuts : array or tensor, shape (..., item, K - 1)
    style : array or tensor, shape (..., respondent)
        Log spread per respondent.

    Returns
    -------
    array or tensor, shape (..., respondent, item, K - 1)
    """
    centre = threshold_centre(cuts)
    exp = pt.exp if isinstance(style, pt.Variable) else np.exp
    factor = exp(style)[..., :, None, None]
    return centre[..., None, :, :] + factor * (cuts - centre)[..., None, :, :]


def style_terms(model, spec, data, eta, data_fn):
    """The styles a spec asks for: the linear predictor with acquiescence, and each
    respondent's log threshold spread (None without the extreme style)."""
    styles, priors = spec.components.response_style, spec.priors
    if "acquiescence" in styles:
        sd = pm.Gamma(
            "acquiescence_sd", priors["acquiescence_sd"]["shape"], priors["acquiescence_sd"]["rate"]
        )
        z = pm.Normal(f"z_{ACQUIESCENCE}", 0.0, 1.0, dims=dims.RESPONDENT)
        shift = pm.Deterministic(ACQUIESCENCE, sd * z, dims=dims.RESPONDENT)
        key = data_fn(ITEM_KEY, item_key(data.codebook), dims=dims.ITEM)
        eta = eta + shift[:, None] * key[None, :]
    log_spread = None
    if "extreme" in styles:
        sd = pm.Gamma("style_sd", priors["style_sd"]["shape"], priors["style_sd"]["rate"])
        z = pm.Normal(f"z_{STYLE}", 0.0, 1.0, dims=dims.RESPONDENT)
        log_spread = pm.Deterministic(STYLE, sd * z, dims=dims.RESPONDENT)
    return eta, log_spread


def nonresponse_indicator(responses: np.ndarray) -> np.ndarray:
    """1 where an answer is missing, as int64 (respondent, item)."""
    return (np.asarray(responses) == MISSING).astype(np.int64)


def kappa_centred(responses: np.ndarray) -> bool:
    """Whether the items' non-response rates are written centred: when they differ by more
    than their own sampling noise, so that each item's rate is informed beyond the pooled
    spread (on the twin, whose rates differ by noise alone, the centred form made a funnel:
    bulk ESS 156 of 2,000 draws at ``sigma_kappa``)."""
    missing = np.asarray(responses) < 0
    n = missing.shape[0]
    rate = (missing.sum(axis=0) + 0.5) / (n + 1.0)
    logit = np.log(rate / (1.0 - rate))
    sampling = np.mean(1.0 / (n * rate * (1.0 - rate)))  # variance of each logit rate
    return bool(np.var(logit, ddof=1) > 2.0 * sampling) if len(logit) > 1 else True


def nonresponse_terms(model, spec, data, theta, data_fn) -> None:
    """The selection model's non-answer likelihood, on the traits ``theta`` (respondent, battery)."""
    p = spec.priors
    mu = pm.Normal("mu_kappa", p["mu_kappa"]["mu"], p["mu_kappa"]["sigma"])
    sigma = pm.Gamma("sigma_kappa", p["sigma_kappa"]["shape"], p["sigma_kappa"]["rate"])
    if kappa_centred(data.responses):
        kappa = pm.Normal(KAPPA, mu, sigma, dims=dims.ITEM)
    else:
        z = pm.Normal(f"z_{KAPPA}", 0.0, 1.0, dims=dims.ITEM)
        kappa = pm.Deterministic(KAPPA, mu + sigma * z, dims=dims.ITEM)
    gamma = pm.Normal(NONRESPONSE_SLOPE, 0.0, p["nonresponse_slope"]["sigma"], dims=dims.BATTERY)
    sd = pm.Gamma("propensity_sd", p["propensity_sd"]["shape"], p["propensity_sd"]["rate"])
    z = pm.Normal(f"z_{PROPENSITY}", 0.0, 1.0, dims=dims.RESPONDENT)
    propensity = pm.Deterministic(PROPENSITY, theta @ gamma + sd * z, dims=dims.RESPONDENT)
    observed = data_fn(
        NONRESPONSE_DATA, nonresponse_indicator(data.responses), dims=(dims.RESPONDENT, dims.ITEM)
    )
    pm.CustomDist(
        NONRESPONSE,
        kappa[None, :] + propensity[:, None],
        logp=_bernoulli_logit_logp,
        random=_bernoulli_logit_random,
        dtype="int64",
        observed=observed,
        dims=(dims.RESPONDENT, dims.ITEM),
    )


def _bernoulli_logit_logp(value, logit):
    """``d x - log(1 + e^x)`` per cell, as one operation with its own gradient
    (:mod:`scsurvey.model.fused_likelihood`): PyTensor's softplus branches per cell and does
    not vectorise."""
    from scsurvey.model.fused_likelihood import bernoulli_logit_logp

    return bernoulli_logit_logp(value, logit)


def _bernoulli_logit_random(logit, rng=None, size=None):
    return (rng.random(size or np.shape(logit)) < 1.0 / (1.0 + np.exp(-np.asarray(logit)))).astype(np.int64)
