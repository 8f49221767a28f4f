"""The ordered-logit likelihood as one PyTensor operation with its own gradient.

Written as a PyTensor graph, the likelihood of ``N x J`` answers is a dozen elementwise
operations with gathers and switches, each a pass over memory and each with its own
gradient pass. Here one :class:`OrderedLogit` computes, in one sweep over the answers, each
answer's log-probability and its three local derivatives (with respect to the linear
predictor and to the answer's upper and lower threshold); its ``grad`` multiplies the
incoming gradient by them and scatters the threshold parts into a ``(J, K - 1)`` table
(:class:`ThresholdScatter`), so the value and the gradient share every exp and log.

For answer ``k`` with ``a = c_k - eta`` and ``b = c_{k-1} - eta``::

    log p    = a - log((1 + e^a)(1 + e^b)) + log(1 - e^(b - a))
    d/d eta  = [k < K-1] (s_a - 1) + [k > 0] s_b                 s_x = e^x / (1 + e^x)
    d/d c_k  = 1 - s_a + [interior] r_k                          r_k = 1 / (e^(c_k - c_{k-1}) - 1)
    d/d c_k-1 = -s_b - [interior] r_k

with ``e^a = e^(c_k) e^(-eta)``, so an answer costs one exp, one log and two divisions; the
terms in the thresholds alone are tables per item. The same formulas have a Numba form
(nutpie's default backend, and ``perform`` for PyMC's C backend) and a JAX form (nutpie's
JAX backend, numpyro). :func:`ordered_logit_logp` is what the model calls; the graph form in
:mod:`scsurvey.model.likelihood` stays as the reference the tests hold it to.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

# part of the compiled-code cache key: PyTensor caches a model's whole compiled function,
# kernels inlined, under a key that does not see this file; its hash does
KERNEL_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12], 16)


@numba.njit(cache=True)
def _threshold_tables(cuts):
    """Per item, columns indexed by the answer's category k (one past the last threshold):
    c_k, exp(c_k), log(1 - e^(c_{k-1} - c_k)) and r_k = 1 / (e^(c_k - c_{k-1}) - 1), the last
    two for interior categories."""
    n_items, k1 = cuts.shape
    c = np.zeros((n_items, k1 + 1))  # a column past the last threshold: every gather in bounds
    gap_log = np.zeros((n_items, k1 + 1))
    r = np.zeros((n_items, k1 + 1))
    for j in range(n_items):
        # element by element: a slice assignment would compile Numba's shape-mismatch error
        # message (string formatting), seconds of a cold compile
        for k in range(k1):
            c[j, k] = cuts[j, k]
        for k in range(1, k1):
            gap = cuts[j, k] - cuts[j, k - 1]
            gap_log[j, k] = np.log(-np.expm1(-gap))
            r[j, k] = 1.0 / np.expm1(gap)
    return c, np.exp(c), gap_log, r


# LLVM vectorises a loop of plain arithmetic, not one that calls libm's exp and log, and
# PyPI's llvmlite has no vector maths library: exp and log are written here in arithmetic and
# bit operations (range reduction and a polynomial), accurate to a few units in the last
# place. Reassociation is left out of the fast-math flags: it would undo the rounding trick
# below and the exact splitting of ln 2. error_model="numpy" drops the division-by-zero check
# that keeps a loop with a division from vectorising.
VECTOR = {
    "fastmath": {"nnan", "ninf", "nsz", "arcp", "contract", "afn"},
    "error_model": "numpy",
    "cache": True,
}
LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * LN2_HI is exact
LN2_LO = 1.90821492927058770002e-10
LOG2E = 1.44269504088896338700e00
ROUND = 6755399441055744.0  # 1.5 * 2^52: x + ROUND rounds x to an integer held in the low bits
ROUND_BITS = 0x4338000000000000  # the bits of ROUND
EXP_BIAS = 4503599627371519.0  # 2^52 + 1023: a biased exponent or-ed into 2^52's bits, as a double
SQRT2_FRACTION = 0x6A09E667F3BCD  # the fraction bits of sqrt(2)


@numba.njit(**VECTOR)
def vector_exp(x, out, scratch):
    """``out = exp(x)`` for finite ``x`` (clipped to +-700), vectorised.

    ``x = k ln 2 + r`` with ``|r| <= ln(2) / 2``; ``e^r`` by its Taylor polynomial to r^13
    (truncation below 2e-17 relative); ``2^k`` added to the result's exponent bits.
    """
    n = x.size
    for i in range(n):
        t = min(max(x[i], -700.0), 700.0)
        shifted = t * LOG2E + ROUND
        k = shifted - ROUND
        r = t - k * LN2_HI - k * LN2_LO
        p = 1.0 / 6227020800.0
        p = 1.0 / 479001600.0 + r * p
        p = 1.0 / 39916800.0 + r * p
        p = 1.0 / 3628800.0 + r * p
        p = 1.0 / 362880.0 + r * p
        p = 1.0 / 40320.0 + r * p
        p = 1.0 / 5040.0 + r * p
        p = 1.0 / 720.0 + r * p
        p = 1.0 / 120.0 + r * p
        p = 1.0 / 24.0 + r * p
        p = 1.0 / 6.0 + r * p
        p = 0.5 + r * p
        p = 1.0 + r * p
        out[i] = 1.0 + r * p
        scratch[i] = shifted
    bits = out.view(np.int64)
    k_bits = scratch.view(np.int64)
    for i in range(n):
        bits[i] += (k_bits[i] - ROUND_BITS) << 52


@numba.njit(**VECTOR)
def vector_log(x, out, mantissa, exponent):
    """``out = log(x)`` for positive normal ``x``, vectorised.

    ``x = m 2^e`` with ``m`` in [sqrt(1/2), sqrt(2)); ``log m = 2 atanh(s)``,
    ``s = (m - 1) / (m + 1)``, ``|s| < 0.172``, by its series to s^21 (below 1e-17).
    """
    n = x.size
    x_bits = x.view(np.int64)
    m_bits = mantissa.view(np.int64)
    e_bits = exponent.view(np.int64)
    for i in range(n):
        b = x_bits[i]
        fraction = b & 0x000FFFFFFFFFFFFF
        above = np.int64(fraction > SQRT2_FRACTION)
        m_bits[i] = (fraction | 0x3FF0000000000000) - (above << 52)
        e_bits[i] = (((b >> 52) & 0x7FF) + above) | 0x4330000000000000
    for i in range(n):
        m = mantissa[i]
        e = exponent[i] - EXP_BIAS
        s = (m - 1.0) / (m + 1.0)
        z = s * s
        p = 1.0 / 21.0
        p = 1.0 / 19.0 + z * p
        p = 1.0 / 17.0 + z * p
        p = 1.0 / 15.0 + z * p
        p = 1.0 / 13.0 + z * p
        p = 1.0 / 11.0 + z * p
        p = 1.0 / 9.0 + z * p
        p = 1.0 / 7.0 + z * p
        p = 1.0 / 5.0 + z * p
        p = 1.0 / 3.0 + z * p
        p = 1.0 + z * p
        out[i] = e * LN2_HI + (2.0 * s * p + e * LN2_LO)


@numba.njit(**VECTOR)
def logit_answers(eta, cuts, y):
    """Log-probability of each answer and its derivatives (eta, upper, lower threshold).

    Three passes over the answers: exp(-eta), vectorised; the gathers of each answer's
    threshold terms, which give the derivatives and the product whose log the
    log-probability needs; that log, vectorised.

    Parameters
    ----------
    eta : ndarray, shape (N, J)
    cuts : ndarray, shape (J, K - 1), increasing along the last axis
    y : ndarray of int64, shape (N, J)
        0-based categories, -1 where missing (every output is 0 there).

    Returns
    -------
    lp, d_eta, d_up, d_lo : ndarray, shape (N, J)
    """
    n, n_items = y.shape
    k1 = cuts.shape[1]
    c, e, gap_log, r = _threshold_tables(cuts)
    size = n * n_items
    flat_eta = np.ascontiguousarray(eta).reshape(size)
    flat_y = np.ascontiguousarray(y).reshape(size)
    w = np.empty(size)
    scratch = np.empty(size)
    vector_exp(-flat_eta, w, scratch)
    lp = np.empty(size)
    d_eta = np.empty(size)
    d_up = np.empty(size)
    d_lo = np.empty(size)
    product = np.empty(size)
    for i in range(n):
        for j in range(n_items):
            f = i * n_items + j
            k = flat_y[f]
            up = k >= 0 and k < k1
            lo = k > 0
            kk = min(max(k, 0), k1)
            e_up = e[j, kk] * w[f] if up else 0.0
            e_lo = e[j, kk - 1] * w[f] if lo else 0.0
            s_a = e_up / (1.0 + e_up)
            s_b = e_lo / (1.0 + e_lo)
            r_k = r[j, kk] if (up and lo) else 0.0
            product[f] = (1.0 + e_up) * (1.0 + e_lo)
            lp[f] = gap_log[j, kk] + (c[j, kk] - flat_eta[f] if up else 0.0)
            d_eta[f] = (s_a - 1.0 if up else 0.0) + (s_b if lo else 0.0)
            d_up[f] = 1.0 - s_a + r_k if up else 0.0
            d_lo[f] = -s_b - r_k if lo else 0.0
    logs = np.empty(size)
    vector_log(product, logs, w, scratch)  # w and scratch are free again: reused as scratch
    for f in range(size):
        lp[f] = lp[f] - logs[f] if flat_y[f] >= 0 else 0.0
    shape = (n, n_items)
    return lp.reshape(shape), d_eta.reshape(shape), d_up.reshape(shape), d_lo.reshape(shape)


@numba.njit(cache=True)
def scatter_thresholds(g_up, g_lo, y, k1):
    """Sum each answer's threshold derivatives into its item's thresholds: (J, K - 1)."""
    n, n_items = y.shape
    out = np.zeros((n_items, k1))
    for i in range(n):
        for j in range(n_items):
            k = y[i, j]
            if k < 0:
                continue
            if k < k1:
                out[j, k] += g_up[i, j]
            if k > 0:
                out[j, k - 1] += g_lo[i, j]
    return out


class OrderedLogit(Op):
    """``(eta, cuts, y) -> (lp, d_eta, d_up, d_lo)``, each ``(N, J)``: see the module."""

    __props__ = ()

    def make_node(self, eta, cuts, y):
        eta = pt.as_tensor_variable(eta).astype("float64")
        cuts = pt.as_tensor_variable(cuts).astype("float64")
        y = pt.as_tensor_variable(y).astype("int64")
        if eta.ndim != 2 or cuts.ndim != 2 or y.ndim != 2:
            raise ValueError("OrderedLogit takes eta (N, J), cuts (J, K - 1) and answers (N, J)")
        out = pt.matrix(dtype="float64", shape=y.type.shape)
        return Apply(self, [eta, cuts, y], [out.type() for _ in range(4)])

    def perform(self, node, inputs, outputs):
        eta, cuts, y = inputs
        results = logit_answers(
            np.ascontiguousarray(eta, dtype=np.float64),
            np.ascontiguousarray(cuts, dtype=np.float64),
            np.ascontiguousarray(y, dtype=np.int64),
        )
        for storage, value in zip(outputs, results, strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[2]] * 4

    def grad(self, inputs, output_grads):
        eta, cuts, y = inputs
        _, d_eta, d_up, d_lo = self(eta, cuts, y)
        if any(not isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            raise NotImplementedError("OrderedLogit's derivative outputs are not differentiable")
        g = output_grads[0]
        if isinstance(g.type, DisconnectedType):
            return [pt.zeros_like(eta), pt.zeros_like(cuts), DisconnectedType()()]
        return [g * d_eta, ThresholdScatter()(g * d_up, g * d_lo, y, cuts), DisconnectedType()()]

    def connection_pattern(self, node):
        return [[True] * 4, [True] * 4, [False] * 4]


class ThresholdScatter(Op):
    """``(g_up, g_lo, y, cuts) -> (J, K - 1)``: the thresholds' share of the gradient."""

    __props__ = ()

    def make_node(self, g_up, g_lo, y, cuts):
        g_up, g_lo = (pt.as_tensor_variable(g).astype("float64") for g in (g_up, g_lo))
        y = pt.as_tensor_variable(y).astype("int64")
        cuts = pt.as_tensor_variable(cuts).astype("float64")
        return Apply(self, [g_up, g_lo, y, cuts], [pt.matrix(dtype="float64", shape=cuts.type.shape)])

    def perform(self, node, inputs, outputs):
        g_up, g_lo, y, cuts = inputs
        outputs[0][0] = scatter_thresholds(
            np.ascontiguousarray(g_up), np.ascontiguousarray(g_lo), np.ascontiguousarray(y), cuts.shape[1]
        )

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[3]]

    def connection_pattern(self, node):
        return [[True], [True], [False], [False]]

    def grad(self, inputs, output_grads):
        raise NotImplementedError("ThresholdScatter has no second derivative")


def ordered_logit_logp(value, eta, cuts):
    """Elementwise ordered-logit log-probabilities of ``value`` (0 where missing), as one Op.

    Parameters
    ----------
    value : tensor of int, shape (N, J)
        0-based categories, -1 for missing.
    eta : tensor, shape (N, J)
    cuts : tensor, shape (J, K - 1)
    """
    eta = pt.as_tensor_variable(eta)
    value = pt.as_tensor_variable(value)
    if eta.ndim < 2:
        eta = pt.broadcast_to(eta, value.shape)
    return OrderedLogit()(eta, cuts, value)[0]


@register_funcify_default_op_cache_key(OrderedLogit)
def _numba_ordered_logit(op, node=None, **kwargs):
    @numba.njit
    def ordered_logit(eta, cuts, y):
        return logit_answers(np.ascontiguousarray(eta), np.ascontiguousarray(cuts), np.ascontiguousarray(y))

    return ordered_logit, KERNEL_VERSION


@register_funcify_default_op_cache_key(ThresholdScatter)
def _numba_threshold_scatter(op, node=None, **kwargs):
    @numba.njit
    def threshold_scatter(g_up, g_lo, y, cuts):
        return scatter_thresholds(
            np.ascontiguousarray(g_up), np.ascontiguousarray(g_lo), np.ascontiguousarray(y), cuts.shape[1]
        )

    return threshold_scatter, KERNEL_VERSION


def register_jax() -> None:
    """Give both Ops their JAX forms (nutpie's JAX backend, numpyro): done on first use, since
    importing PyTensor's JAX dispatch imports JAX itself."""
    from pytensor.link.jax.dispatch import jax_funcify

    jax_funcify.register(OrderedLogit)(_jax_ordered_logit)
    jax_funcify.register(ThresholdScatter)(_jax_threshold_scatter)
    jax_funcify.register(SpreadOrderedLogit)(_jax_spread_ordered_logit)
    jax_funcify.register(BernoulliLogit)(_jax_bernoulli_logit)


def _jax_ordered_logit(op, **kwargs):
    import jax.numpy as jnp

    def ordered_logit(eta, cuts, y):
        n_items, k1 = cuts.shape
        observed = y >= 0
        up = observed & (y < k1)
        lo = observed & (y > 0)
        k = jnp.clip(y, 0, k1)
        zero = jnp.zeros((n_items, 1))
        c_pad = jnp.concatenate([zero, cuts, zero], axis=1)  # column k + 1 holds c_k
        gap = cuts[:, 1:] - cuts[:, :-1]
        gap_log = jnp.concatenate([zero, jnp.log(-jnp.expm1(-gap)), zero], axis=1)
        r = jnp.concatenate([zero, 1.0 / jnp.expm1(gap), zero], axis=1)
        items = jnp.arange(n_items)[None, :]
        c_up, c_lo = c_pad[items, k + 1], c_pad[items, k]
        w = jnp.exp(-eta)
        e_up = jnp.where(up, jnp.exp(c_up) * w, 0.0)
        e_lo = jnp.where(lo, jnp.exp(c_lo) * w, 0.0)
        s_a, s_b = e_up / (1.0 + e_up), e_lo / (1.0 + e_lo)
        r_k = r[items, k]
        lp = gap_log[items, k] - jnp.log((1.0 + e_up) * (1.0 + e_lo)) + jnp.where(up, c_up - eta, 0.0)
        d_eta = jnp.where(up, s_a - 1.0, 0.0) + jnp.where(lo, s_b, 0.0)
        d_up = jnp.where(up, 1.0 - s_a + jnp.where(lo, r_k, 0.0), 0.0)
        d_lo = jnp.where(lo, -s_b - jnp.where(up, r_k, 0.0), 0.0)
        keep = observed.astype(eta.dtype)
        return lp * keep, d_eta * keep, d_up * keep, d_lo * keep

    return ordered_logit


def _jax_threshold_scatter(op, **kwargs):
    import jax.numpy as jnp

    def threshold_scatter(g_up, g_lo, y, cuts):
        n_items, k1 = cuts.shape
        items = jnp.broadcast_to(jnp.arange(n_items)[None, :], y.shape)
        out = jnp.zeros((n_items, k1 + 2))  # column k + 1 collects c_k; the ends are dropped
        out = out.at[items, y + 1].add(jnp.where(y >= 0, g_up, 0.0))
        out = out.at[items, y].add(jnp.where(y > 0, g_lo, 0.0))
        return out[:, 1:-1]

    return threshold_scatter


@numba.njit(**VECTOR)
def logit_answers_spread(eta, cuts, log_spread, y):
    """:func:`logit_answers` with each respondent's thresholds spread around the item's
    centre (an extreme response style): ``c'_ik = m + exp(s_i) (c_k - m)``, ``m`` the mean of
    the item's thresholds.

    The thresholds' exps are per answer now: two vectorised exps (upper and lower bound), and
    the gap term ``log(1 - e^(b - a))`` from their ratio by a second vectorised log.

    Returns
    -------
    lp, d_eta, d_up, d_lo, d_spread : ndarray, shape (N, J)
        The log-probability; its derivatives with respect to eta and to the answer's spread
        upper and lower thresholds; and with respect to ``s_i``.
    """
    n, n_items = y.shape
    k1 = cuts.shape[1]
    size = n * n_items
    centre = np.zeros(n_items)
    for j in range(n_items):
        for k in range(k1):
            centre[j] += cuts[j, k]
        centre[j] /= k1
    factor = np.exp(log_spread)
    flat_eta = np.ascontiguousarray(eta).reshape(size)
    flat_y = np.ascontiguousarray(y).reshape(size)
    arg_up, arg_lo = np.empty(size), np.empty(size)
    dev_up, dev_lo = np.zeros(size), np.zeros(size)
    lp = np.zeros(size)
    for i in range(n):
        for j in range(n_items):
            f = i * n_items + j
            k = flat_y[f]
            up = k >= 0 and k < k1
            lo = k > 0
            if up:
                dev_up[f] = factor[i] * (cuts[j, k] - centre[j])
                lp[f] = centre[j] + dev_up[f] - flat_eta[f]
            if lo:
                dev_lo[f] = factor[i] * (cuts[j, k - 1] - centre[j])
            arg_up[f] = centre[j] + dev_up[f] - flat_eta[f]
            arg_lo[f] = centre[j] + dev_lo[f] - flat_eta[f]
    e_up, e_lo, scratch = np.empty(size), np.empty(size), np.empty(size)
    vector_exp(arg_up, e_up, scratch)
    vector_exp(arg_lo, e_lo, scratch)
    d_eta, d_up, d_lo, d_spread = np.zeros(size), np.zeros(size), np.zeros(size), np.zeros(size)
    product, gap = np.empty(size), np.empty(size)
    for f in range(size):
        k = flat_y[f]
        up = k >= 0 and k < k1
        lo = k > 0
        eu = e_up[f] if up else 0.0
        el = e_lo[f] if lo else 0.0
        s_a = eu / (1.0 + eu)
        s_b = el / (1.0 + el)
        interior = up and lo
        ratio = el / eu if interior else 0.0  # e^(b - a): the spread gap, per answer
        r_k = ratio / (1.0 - ratio) if interior else 0.0
        gap[f] = 1.0 - ratio
        product[f] = (1.0 + eu) * (1.0 + el)
        d_eta[f] = (s_a - 1.0 if up else 0.0) + (s_b if lo else 0.0)
        d_up[f] = 1.0 - s_a + r_k if up else 0.0
        d_lo[f] = -s_b - r_k if lo else 0.0
        d_spread[f] = d_up[f] * dev_up[f] + d_lo[f] * dev_lo[f]
    logs, gap_logs, mantissa = np.empty(size), np.empty(size), np.empty(size)
    vector_log(product, logs, mantissa, scratch)
    vector_log(gap, gap_logs, mantissa, scratch)
    for f in range(size):
        lp[f] = lp[f] - logs[f] + gap_logs[f] if flat_y[f] >= 0 else 0.0
    shape = (n, n_items)
    return (
        lp.reshape(shape),
        d_eta.reshape(shape),
        d_up.reshape(shape),
        d_lo.reshape(shape),
        d_spread.reshape(shape),
    )


class SpreadOrderedLogit(Op):
    """``(eta, cuts, log_spread, y) -> (lp, d_eta, d_up, d_lo, d_spread)``, each ``(N, J)``:
    the ordered logit with per-respondent spread thresholds (:func:`logit_answers_spread`)."""

    __props__ = ()

    def make_node(self, eta, cuts, log_spread, y):
        eta = pt.as_tensor_variable(eta).astype("float64")
        cuts = pt.as_tensor_variable(cuts).astype("float64")
        log_spread = pt.as_tensor_variable(log_spread).astype("float64")
        y = pt.as_tensor_variable(y).astype("int64")
        if eta.ndim != 2 or cuts.ndim != 2 or log_spread.ndim != 1 or y.ndim != 2:
            raise ValueError(
                "SpreadOrderedLogit takes eta (N, J), cuts (J, K - 1), log_spread (N,) and answers (N, J)"
            )
        out = pt.matrix(dtype="float64", shape=y.type.shape)
        return Apply(self, [eta, cuts, log_spread, y], [out.type() for _ in range(5)])

    def perform(self, node, inputs, outputs):
        eta, cuts, log_spread, y = inputs
        results = logit_answers_spread(
            np.ascontiguousarray(eta, dtype=np.float64),
            np.ascontiguousarray(cuts, dtype=np.float64),
            np.ascontiguousarray(log_spread, dtype=np.float64),
            np.ascontiguousarray(y, dtype=np.int64),
        )
        for storage, value in zip(outputs, results, strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[3]] * 5

    def grad(self, inputs, output_grads):
        eta, cuts, log_spread, y = inputs
        _, d_eta, d_up, d_lo, d_spread = self(eta, cuts, log_spread, y)
        if any(not isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            raise NotImplementedError("SpreadOrderedLogit's derivative outputs are not differentiable")
        g = output_grads[0]
        if isinstance(g.type, DisconnectedType):
            return [pt.zeros_like(eta), pt.zeros_like(cuts), pt.zeros_like(log_spread), DisconnectedType()()]
        factor = pt.exp(log_spread)[:, None]
        # c'_k = m + f (c_k - m): f on the answer's own threshold, (1 - f) / (K - 1) on each
        # of the item's thresholds through the centre m
        own = ThresholdScatter()(g * factor * d_up, g * factor * d_lo, y, cuts)
        through_centre = (g * (1.0 - factor) * (d_up + d_lo)).sum(axis=0) / cuts.shape[1]
        return [
            g * d_eta,
            own + through_centre[:, None],
            (g * d_spread).sum(axis=1),
            DisconnectedType()(),
        ]

    def connection_pattern(self, node):
        return [[True] * 5, [True] * 5, [True] * 5, [False] * 5]


def spread_logit_logp(value, eta, cuts, log_spread):
    """Elementwise ordered-logit log-probabilities with each respondent's thresholds spread
    by ``exp(log_spread)`` around the item's centre (0 where missing), as one Op."""
    eta = pt.as_tensor_variable(eta)
    value = pt.as_tensor_variable(value)
    if eta.ndim < 2:
        eta = pt.broadcast_to(eta, value.shape)
    return SpreadOrderedLogit()(eta, cuts, log_spread, value)[0]


@register_funcify_default_op_cache_key(SpreadOrderedLogit)
def _numba_spread_ordered_logit(op, node=None, **kwargs):
    @numba.njit
    def spread_ordered_logit(eta, cuts, log_spread, y):
        return logit_answers_spread(
            np.ascontiguousarray(eta),
            np.ascontiguousarray(cuts),
            np.ascontiguousarray(log_spread),
            np.ascontiguousarray(y),
        )

    return spread_ordered_logit, KERNEL_VERSION


def _jax_spread_ordered_logit(op, **kwargs):
    import jax.numpy as jnp

    def spread_ordered_logit(eta, cuts, log_spread, y):
        n_items, k1 = cuts.shape
        observed = y >= 0
        up = observed & (y < k1)
        lo = observed & (y > 0)
        centre = cuts.mean(axis=1)[None, :]
        items = jnp.arange(n_items)[None, :]
        factor = jnp.exp(log_spread)[:, None]
        dev_up = jnp.where(up, factor * (cuts[items, jnp.clip(y, 0, k1 - 1)] - centre), 0.0)
        dev_lo = jnp.where(lo, factor * (cuts[items, jnp.clip(y - 1, 0, k1 - 1)] - centre), 0.0)
        a, b = centre + dev_up - eta, centre + dev_lo - eta
        eu = jnp.where(up, jnp.exp(jnp.clip(a, -700.0, 700.0)), 0.0)
        el = jnp.where(lo, jnp.exp(jnp.clip(b, -700.0, 700.0)), 0.0)
        s_a, s_b = eu / (1.0 + eu), el / (1.0 + el)
        interior = up & lo
        ratio = jnp.where(interior, el / jnp.where(interior, eu, 1.0), 0.0)
        r_k = jnp.where(interior, ratio / (1.0 - ratio), 0.0)
        lp = jnp.where(up, a, 0.0) - jnp.log((1.0 + eu) * (1.0 + el)) + jnp.log(1.0 - ratio)
        d_eta = jnp.where(up, s_a - 1.0, 0.0) + jnp.where(lo, s_b, 0.0)
        d_up = jnp.where(up, 1.0 - s_a + r_k, 0.0)
        d_lo = jnp.where(lo, -s_b - r_k, 0.0)
        keep = observed.astype(eta.dtype)
        d_spread = d_up * dev_up + d_lo * dev_lo
        return lp * keep, d_eta * keep, d_up * keep, d_lo * keep, d_spread * keep

    return spread_ordered_logit


@numba.njit(**VECTOR)
def bernoulli_logit_cells(logit, d):
    """``d x - log(1 + e^x)`` per cell and its derivative ``d - e^x / (1 + e^x)``, with the
    vectorised exp and log (``x`` clipped to +-700 by the exp)."""
    size = logit.size
    flat = np.ascontiguousarray(logit).reshape(size)
    flat_d = np.ascontiguousarray(d).reshape(size)
    e, scratch = np.empty(size), np.empty(size)
    vector_exp(flat, e, scratch)
    one_plus = np.empty(size)
    grad = np.empty(size)
    for f in range(size):
        one_plus[f] = 1.0 + e[f]
        grad[f] = flat_d[f] - e[f] / one_plus[f]
    logs, mantissa = np.empty(size), np.empty(size)
    vector_log(one_plus, logs, mantissa, scratch)
    lp = np.empty(size)
    for f in range(size):
        lp[f] = flat_d[f] * flat[f] - logs[f]
    return lp.reshape(logit.shape), grad.reshape(logit.shape)


class BernoulliLogit(Op):
    """``(logit, d) -> (lp, d_logit)``, each ``(N, J)``: Bernoulli log-probabilities of the
    0/1 cells ``d`` on the log-odds scale (:func:`bernoulli_logit_cells`)."""

    __props__ = ()

    def make_node(self, logit, d):
        logit = pt.as_tensor_variable(logit).astype("float64")
        d = pt.as_tensor_variable(d).astype("int64")
        if logit.ndim != 2 or d.ndim != 2:
            raise ValueError("BernoulliLogit takes log-odds (N, J) and 0/1 cells (N, J)")
        out = pt.matrix(dtype="float64", shape=d.type.shape)
        return Apply(self, [logit, d], [out.type(), out.type()])

    def perform(self, node, inputs, outputs):
        logit, d = inputs
        results = bernoulli_logit_cells(
            np.ascontiguousarray(logit, dtype=np.float64), np.ascontiguousarray(d, dtype=np.int64)
        )
        for storage, value in zip(outputs, results, strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[1]] * 2

    def grad(self, inputs, output_grads):
        logit, d = inputs
        _, d_logit = self(logit, d)
        if not isinstance(output_grads[1].type, DisconnectedType):
            raise NotImplementedError("BernoulliLogit's derivative output is not differentiable")
        g = output_grads[0]
        if isinstance(g.type, DisconnectedType):
            return [pt.zeros_like(logit), DisconnectedType()()]
        return [g * d_logit, DisconnectedType()()]

    def connection_pattern(self, node):
        return [[True, True], [False, False]]


def bernoulli_logit_logp(value, logit):
    """Elementwise Bernoulli log-probabilities of 0/1 ``value`` at log-odds ``logit``, as one Op."""
    value = pt.as_tensor_variable(value)
    logit = pt.broadcast_to(pt.as_tensor_variable(logit), value.shape)
    return BernoulliLogit()(logit, value)[0]


@register_funcify_default_op_cache_key(BernoulliLogit)
def _numba_bernoulli_logit(op, node=None, **kwargs):
    @numba.njit
    def bernoulli_logit(logit, d):
        return bernoulli_logit_cells(np.ascontiguousarray(logit), np.ascontiguousarray(d))

    return bernoulli_logit, KERNEL_VERSION


def _jax_bernoulli_logit(op, **kwargs):
    import jax
    import jax.numpy as jnp

    def bernoulli_logit(logit, d):
        return d * logit - jnp.logaddexp(0.0, logit), d - jax.nn.sigmoid(logit)

    return bernoulli_logit
