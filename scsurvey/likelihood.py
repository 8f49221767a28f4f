"""The graded-response likelihood on the dense (respondent x item) array.

Observed answers are 0-based categories with ``MISSING`` (-1) for no answer. For answer
``k`` with thresholds ``c`` and linear predictor ``eta``::

    P(y = k) = F(c_k - eta) - F(c_{k-1} - eta),   c_{-1} = -inf, c_{K-1} = +inf

written as a log of a difference of CDFs that stays finite in both tails.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.dist_math import normal_lcdf
from pymc.math import log1mexp

LINKS = ("logit", "probit")


def _log_sigmoid(x):
    return -pt.softplus(-x)


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


def ordinal_logp(value, eta, cuts, link: str = "logit"):
    """Elementwise log-probability of ordinal answers; 0 for missing cells.

    Parameters
    ----------
    value : tensor of int, shape (..., item)
        0-based categories, -1 for missing.
    eta : tensor, shape (..., item)
        Linear predictor.
    cuts : tensor, shape (item, K - 1)
        Increasing thresholds.
    link : {"logit", "probit"}

    Returns
    -------
    tensor, shape of ``value``
    """
    observed, has_up, has_lo, c_up, c_lo = _bounds(value, cuts)
    a = c_up - eta  # F(a): probability of an answer at or below k
    b = c_lo - eta  # F(b): probability of an answer below k
    interior = has_up & has_lo
    if link == "logit":
        # log(s(a) - s(b)) = log s(a) + log s(-b) + log(1 - exp(b - a)), and b - a is minus
        # the item's threshold gap, so the last term is a function of the thresholds alone,
        # picked per answer by a one-hot. Measured (logp + gradient of `full` on the twin,
        # nutpie's JAX backend, best of 5 x 200): 847 us, against 1229 us computing it per
        # answer and 1347 us gathering thresholds by index (XLA's scatter-add is slow here).
        gaps = cuts[..., 1:] - cuts[..., :-1]
        per_gap = log1mexp(-gaps)
        one_mid = pt.eq(value[..., None], pt.arange(1, cuts.shape[-1]))
        lp = (
            pt.switch(has_up, _log_sigmoid(a), 0.0)
            + pt.switch(has_lo, _log_sigmoid(-b), 0.0)
            + pt.sum(pt.switch(one_mid, per_gap, 0.0), axis=-1)
        )
    elif link == "probit":
        # Reflect into the lower tail, where the normal log-CDF is accurate.
        flip = interior & (a + b > 0)
        hi = pt.switch(flip, -b, a)
        lo = pt.switch(flip, -a, b)
        l_hi = normal_lcdf(0.0, 1.0, hi)
        l_lo = normal_lcdf(0.0, 1.0, pt.switch(interior, lo, hi - 1.0))
        mid = l_hi + log1mexp(pt.minimum(l_lo - l_hi, -1e-12))
        top = normal_lcdf(0.0, 1.0, -b)  # only a lower bound: P(y = K-1) = 1 - F(b)
        bottom = normal_lcdf(0.0, 1.0, a)  # only an upper bound: P(y = 0) = F(a)
        lp = pt.switch(interior, mid, pt.switch(has_up, bottom, top))
    else:
        raise ValueError(f"link {link!r} is not one of {LINKS}")
    return pt.switch(observed, lp, 0.0)


def ordinal_random(eta, cuts, link: str = "logit", rng=None, size=None):
    """Draw answers by thresholding a latent ``eta + noise`` (logistic or normal).

    Parameters
    ----------
    eta : ndarray, shape (..., item)
    cuts : ndarray, shape (..., item, K - 1)
    link : {"logit", "probit"}
    rng : numpy.random.Generator
    size : tuple, optional
        Batch shape; defaults to the broadcast shape of ``eta`` and ``cuts[..., 0]``.

    Returns
    -------
    ndarray of int64
        0-based categories.
    """
    rng = np.random.default_rng(rng)
    if size is None:
        size = np.broadcast_shapes(np.shape(eta), np.shape(cuts)[:-1])
    noise = rng.logistic(size=size) if link == "logit" else rng.standard_normal(size=size)
    latent = eta + noise
    return (latent[..., None] > cuts).sum(axis=-1).astype(np.int64)


def category_probs(eta, cuts, link: str = "logit"):
    """Category probabilities (numpy), shape ``(..., item, K)``, for simulation and checks."""
    from scipy.special import expit, ndtr

    cdf = expit if link == "logit" else ndtr
    inner = cdf(np.asarray(cuts) - np.asarray(eta)[..., None])
    lower = np.concatenate([np.zeros_like(inner[..., :1]), inner], axis=-1)
    upper = np.concatenate([inner, np.ones_like(inner[..., :1])], axis=-1)
    return upper - lower
