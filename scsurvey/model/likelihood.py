"""The graded-response likelihood on the dense (respondent x item) array.

Observed answers are 0-based categories with ``MISSING`` (-1) for no answer. For answer
``k`` with thresholds ``c`` and linear predictor ``eta``::

    P(y = k) = F(c_k - eta) - F(c_{k-1} - eta),   c_{-1} = -inf, c_{K-1} = +inf

written as a log of a difference of CDFs that stays finite in both tails.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.math import log1mexp
from scipy.special import expit, ndtr

LINKS = ("logit", "probit")
# pm.Data containers of what the logit likelihood needs from the answers alone (answer_tables)
ANSWERED = "answered"
HAS_UPPER = "has_upper"
HAS_LOWER = "has_lower"
LOWER_INDEX = "lower_index"
ANSWER_TABLES = (ANSWERED, HAS_UPPER, HAS_LOWER, LOWER_INDEX)


def answer_tables(value: np.ndarray, n_thresholds: int) -> dict[str, np.ndarray]:
    """What the logit likelihood needs from the answers alone, computed once.

    A model compiled with the answers as inputs (so that new answers reuse the compiled
    code) would otherwise recompute these masks and indices at every gradient
    (docs/performance.md). Keys are :data:`ANSWER_TABLES`.

    Parameters
    ----------
    value : ndarray of int, shape (respondent, item)
        0-based answers, -1 where missing.
    n_thresholds : int
        K - 1.
    """
    value = np.asarray(value)
    observed = value >= 0
    row = np.arange(value.shape[-1]) * (n_thresholds + 2)
    return {
        ANSWERED: observed,
        HAS_UPPER: observed & (value < n_thresholds),
        HAS_LOWER: observed & (value > 0),
        LOWER_INDEX: (row + np.maximum(value, 0)).astype(np.int64),
    }


def _bounds(value, cuts):
    """Upper and lower thresholds of each answer and which of them exist."""
    k1 = cuts.shape[-1]  # K - 1 thresholds
    observed = pt.ge(value, 0)
    has_up = observed & pt.lt(value, k1)
    has_lo = observed & pt.gt(value, 0)
    steps = pt.arange(k1)
    one_up = pt.eq(value[..., None], steps)
    one_lo = pt.eq(value[..., None], steps + 1)
    c_up = pt.sum(pt.switch(one_up, cuts, 0.0), axis=-1)
    c_lo = pt.sum(pt.switch(one_lo, cuts, 0.0), axis=-1)
    return observed, has_up, has_lo, c_up, c_lo


def _logit_logp(value, eta, cuts, shape=None, tables=None):
    """Ordered-logit log-probabilities with one exp and one log per answer.

    With ``a = c_k - eta`` and ``b = c_{k-1} - eta`` (a > b)::

        log(s(a) - s(b)) = a - log((1 + e^a)(1 + e^b)) + log(1 - exp(b - a))

    The last term depends on the thresholds alone (computed per item and gap), and
    ``e^a = exp(c_k) exp(-eta)`` reuses one ``exp(-eta)`` per answer, so an answer costs one
    exp and one log where log-sigmoids cost six transcendentals with their gradients.
    Thresholds and their exps are picked by a flat index into a padded (item, K + 1) table.
    Exact while ``|c - eta| < 350``; beyond that the product overflows, the log-density is
    -inf and the sampler rejects the point (no answer of this survey gets near that).

    It is several times faster than the per-cell log-sigmoid form with one-hot threshold sums,
    whose (N, J, K) reductions were the larger half of the cost (docs/performance.md).
    """
    while cuts.ndim > 2 and cuts.type.broadcastable[0]:  # CustomDist adds batch dims of 1
        cuts = cuts[0]
    if cuts.ndim != 2:
        raise ValueError("the logit likelihood takes one threshold matrix of shape (item, K - 1)")
    # JAX needs concrete sizes for the padded table; a model compiled with its dims kept
    # symbolic (SBC swaps data) passes them in ``shape``.
    n_items, k1 = shape if shape is not None else cuts.type.shape
    if n_items is None or k1 is None:
        n_items, k1 = cuts.shape[0], cuts.shape[1]
    if tables is None:
        observed = pt.ge(value, 0)
        has_up = observed & pt.lt(value, k1)
        has_lo = observed & pt.gt(value, 0)
        row = pt.arange(n_items) * (k1 + 2)  # a constant when the sizes are known
        lo = row + pt.maximum(value, 0)  # index of c_{y-1}; missing cells are masked below
    else:
        observed, has_up, has_lo, lo = (tables[name] for name in ANSWER_TABLES)
    zero = pt.zeros((n_items, 1))
    padded = pt.concatenate([zero, cuts, zero], axis=1)  # column y + 1 holds c_y
    per_gap = log1mexp(cuts[:, :-1] - cuts[:, 1:])  # log(1 - exp(-gap)), interior answers only
    gap_table = pt.concatenate([zero, per_gap, zero, zero], axis=1)  # column y: gap below y
    up = lo + 1  # index of c_y
    c_flat, e_flat, g_flat = padded.ravel(), pt.exp(padded).ravel(), gap_table.ravel()
    w = pt.exp(-eta)
    e_up = pt.switch(has_up, e_flat[up] * w, 0.0)
    e_lo = pt.switch(has_lo, e_flat[lo] * w, 0.0)
    lp = pt.switch(has_up, c_flat[up] - eta, 0.0) - pt.log((1.0 + e_up) * (1.0 + e_lo)) + g_flat[lo]
    return pt.switch(observed, lp, 0.0)


# below this the normal log-CDF is its asymptotic series; above, the log of erfc, which every
# backend has natively (PyMC's form uses erfcx, which has no JAX implementation and whose
# Numba form cannot be cached)
LCDF_SERIES_BELOW = -30.0


def normal_lcdf(x):
    """log Phi(x) of the standard normal, accurate in both tails, from erfc and a series.

    For ``x > 0``, ``log1p(-erfc(x / sqrt 2) / 2)``; for ``-30 <= x <= 0``,
    ``log(erfc(-x / sqrt 2) / 2)`` (erfc keeps relative accuracy far into the tail); below,
    ``-x^2/2 - log(-x) - log(2 pi)/2 + log(1 - 1/x^2 + 3/x^4 - 15/x^6)``, whose next term is
    below 1e-11 there. Each branch sees its input clipped to its own
    range, so neither feeds an infinity or a NaN into the gradient of the other.
    """
    near = pt.maximum(x, LCDF_SERIES_BELOW)
    far = pt.minimum(x, LCDF_SERIES_BELOW)
    inv2 = 1.0 / far**2
    series = pt.log1p(inv2 * (-1.0 + inv2 * (3.0 - 15.0 * inv2)))
    tail = -0.5 * far**2 - pt.log(-far) - 0.5 * np.log(2.0 * np.pi) + series
    lower = pt.log(0.5 * pt.erfc(-near / np.sqrt(2.0)))
    upper = pt.log1p(-0.5 * pt.erfc(pt.maximum(x, 0.0) / np.sqrt(2.0)))  # 1 - Phi(-x), for x > 0
    return pt.switch(x > 0, upper, pt.switch(x >= LCDF_SERIES_BELOW, lower, tail))


def ordinal_logp(
    value,
    eta,
    cuts,
    link: str = "logit",
    shape: tuple[int, int] | None = None,
    tables=None,
    fused: bool = True,
    log_spread=None,
):
    """Elementwise log-probability of ordinal answers; 0 for missing cells.

    Parameters
    ----------
    value : tensor of int, shape (..., item)
        0-based categories, -1 for missing.
    eta : tensor, shape (..., item)
        Linear predictor.
    cuts : tensor, shape (item, K - 1) or (respondent, item, K - 1)
        Increasing thresholds, per item or per answer (a response style).
    link : {"logit", "probit"}
    shape : (int, int), optional
        Static ``(item, K - 1)`` size of ``cuts`` when the graph does not know it.
    tables : dict, optional
        :func:`answer_tables` of ``value`` as tensors (the logit graph only); computed from
        ``value`` when not given.
    fused : bool
        The logit link as one operation with its own gradient
        (:mod:`scsurvey.model.fused_likelihood`); False: the graph form, the reference the
        tests hold it to.
    log_spread : tensor, shape (respondent,) or (respondent, 1), optional
        Each respondent's log threshold spread around the item's centre (an extreme
        response style, :mod:`scsurvey.model.styles`).

    Returns
    -------
    tensor, shape of ``value``
    """
    if link not in LINKS:
        raise ValueError(f"link {link!r} is not one of {LINKS}")
    while cuts.ndim > 2 and cuts.type.broadcastable[0]:  # CustomDist adds batch dims of 1
        cuts = cuts[0]
    if log_spread is not None:
        log_spread = log_spread.reshape((-1,)) if log_spread.ndim > 1 else log_spread
        if link == "logit" and fused:
            from scsurvey.model.fused_likelihood import spread_logit_logp

            return spread_logit_logp(value, eta, cuts, log_spread)
        from scsurvey.model.styles import spread_thresholds

        cuts = spread_thresholds(cuts, log_spread)
    if cuts.ndim > 2:  # thresholds per answer: the bounds form
        return _bounded_logp(value, eta, cuts, _log_sigmoid if link == "logit" else normal_lcdf)
    if link == "logit" and fused:
        from scsurvey.model.fused_likelihood import ordered_logit_logp

        return ordered_logit_logp(value, eta, cuts)
    if link == "logit":
        return _logit_logp(value, eta, cuts, shape, tables)
    return _bounded_logp(value, eta, cuts, normal_lcdf)


def _log_sigmoid(x):
    return -pt.softplus(-x)


def _bounded_logp(value, eta, cuts, lcdf):
    """log(F(c_k - eta) - F(c_{k-1} - eta)) from the answer's two thresholds, ``cuts`` per
    item or per answer, with ``lcdf`` the link's log-CDF (symmetric noise)."""
    observed, has_up, has_lo, c_up, c_lo = _bounds(value, cuts)
    a = c_up - eta  # F(a): probability of an answer at or below k
    b = c_lo - eta  # F(b): probability of an answer below k
    interior = has_up & has_lo
    # Reflect into the lower tail, where the log-CDF is accurate.
    flip = interior & (a + b > 0)
    hi = pt.switch(flip, -b, a)
    lo = pt.switch(flip, -a, b)
    l_hi = lcdf(hi)
    l_lo = lcdf(pt.switch(interior, lo, hi - 1.0))
    mid = l_hi + log1mexp(pt.minimum(l_lo - l_hi, -1e-12))
    top = lcdf(-b)  # only a lower bound: P(y = K-1) = 1 - F(b)
    bottom = lcdf(a)  # only an upper bound: P(y = 0) = F(a)
    lp = pt.switch(interior, mid, pt.switch(has_up, bottom, top))
    return pt.switch(observed, lp, 0.0)


def ordinal_random(eta, cuts, link: str = "logit", rng=None, size=None, log_spread=None):
    """Draw answers by thresholding a latent ``eta + noise`` (logistic or normal).

    Parameters
    ----------
    eta : ndarray, shape (..., item)
    cuts : ndarray, shape (..., item, K - 1)
    link : {"logit", "probit"}
    rng : numpy.random.Generator
    size : tuple, optional
        Batch shape; defaults to the broadcast shape of ``eta`` and ``cuts[..., 0]``.
    log_spread : ndarray, shape (..., respondent, 1), optional
        Each respondent's log threshold spread (an extreme response style).

    Returns
    -------
    ndarray of int64
        0-based categories.
    """
    rng = np.random.default_rng(rng)
    if log_spread is not None:
        centre = np.mean(cuts, axis=-1, keepdims=True)
        cuts = centre + np.exp(np.asarray(log_spread))[..., None] * (cuts - centre)
    if size is None:
        size = np.broadcast_shapes(np.shape(eta), np.shape(cuts)[:-1])
    noise = rng.logistic(size=size) if link == "logit" else rng.standard_normal(size=size)
    latent = eta + noise
    return (latent[..., None] > cuts).sum(axis=-1).astype(np.int64)


def link_cdf(x, link: str):
    """The CDF of the link's latent noise at ``x``: NumPy arrays or PyTensor tensors.

    The one place a link becomes a function; the model, the simulator, the summaries and
    SBC's derived quantities all call it.

    Examples
    --------
    >>> float(link_cdf(0.0, "logit")), float(link_cdf(0.0, "probit"))
    (0.5, 0.5)
    """
    if link not in LINKS:
        raise ValueError(f"link {link!r} is not one of {LINKS}")
    if isinstance(x, pt.Variable):
        return pt.sigmoid(x) if link == "logit" else 0.5 * pt.erfc(-x / np.sqrt(2.0))
    return expit(x) if link == "logit" else ndtr(x)


def category_probs(eta, cuts, link: str = "logit"):
    """Category probabilities, shape ``(..., item, K)``: NumPy arrays or PyTensor tensors.

    Parameters
    ----------
    eta : array or tensor, shape (..., item)
    cuts : array or tensor, shape (..., item, K - 1)
    link : {"logit", "probit"}
    """
    tensor = isinstance(eta, pt.Variable) or isinstance(cuts, pt.Variable)
    if not tensor:
        eta, cuts = np.asarray(eta), np.asarray(cuts)
    inner = link_cdf(cuts - eta[..., None], link)
    if tensor:
        zeros = pt.zeros_like(inner[..., :1])
        return pt.concatenate([inner, zeros + 1.0], axis=-1) - pt.concatenate([zeros, inner], axis=-1)
    zeros = np.zeros_like(inner[..., :1])
    return np.concatenate([inner, zeros + 1.0], axis=-1) - np.concatenate([zeros, inner], axis=-1)


def support_share(eta, cuts, support, link: str = "logit"):
    """Probability of an answer in the support categories, any subset of them.

    Parameters
    ----------
    eta : array or tensor, shape (..., item)
    cuts : array or tensor, shape (..., item, K - 1)
    support : sequence of bool, length K
        True for each category counted as support (top, bottom, middle or split levels).
    link : {"logit", "probit"}

    Returns
    -------
    array or tensor, shape (..., item)

    Examples
    --------
    >>> round(float(support_share(0.0, [[-1.0, 1.0]], [True, False, True])[0]), 4)
    0.5379
    """
    mask = np.asarray(support, dtype=float)
    return (category_probs(eta, cuts, link) * mask).sum(axis=-1)
