"""Each respondent's answers with their latent traits integrated out, given a posterior draw.

The conditional log-likelihood ``log p(y_i | theta_i, phi)`` treats each respondent's latent
traits as parameters: leaving one respondent out then moves their own traits from the
posterior to the prior, and PSIS-LOO fails (most Pareto k above 0.7 on the twin). The
integrated (marginal) one,

    log p(y_i | phi) = log  integral  prod_j p(y_ij | theta)  N(theta; mu_i(phi), R(phi))  dtheta,

with ``mu_i`` the respondent's covariate and group part and ``R`` the battery correlation,
is what leave-one-respondent-out asks (Merkle, Furr and Rabe-Hesketh 2019). The integral is
over one trait per battery, by adaptive Gauss-Hermite quadrature: a product grid centred
and scaled at each respondent's conditional posterior of ``theta``.

The same pass gives a calibrated predictive check: each answer's distribution given the
respondent's *other* answers (their traits integrated out) and the population-level
draws. Its randomised PIT is uniform under the model; an answer style, a heavier-tailed
link or discriminations the model lacks make a respondent's answers hang together other
than the model says, and the PIT shows it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import arviz as az
import numba
import numpy as np
import xarray as xr
from numpy.polynomial.hermite_e import hermegauss

from scsurvey.core import dims
from scsurvey.core.defaults import DRAWS
from scsurvey.core.dims import OBSERVED
from scsurvey.model import predictor
from scsurvey.model.dif import DIF_DATA
from scsurvey.model.dif import DISCRIMINATION as DIF_DISCRIMINATION
from scsurvey.model.dif import LOCATION as DIF_LOCATION
from scsurvey.model.styles import ACQUIESCENCE, ITEM_KEY, STYLE, spread_thresholds
from scsurvey.posterior.draws import has_draws, has_residual, posterior_draws, thin

INTEGRATED_DRAWS = DRAWS.integrated  # thinned posterior draws the integrated likelihood is computed on
NODES_PER_DIM = {1: 25, 2: 15, 3: 7}  # product grids of 25, 225 and 343 nodes before pruning
# Nodes of the product grid whose weight is below this are dropped: in two batteries, 145 of
# 15 x 15 nodes remain, together 2.4e-8 of the weight (accuracy: tests, docs/design.md)
PRUNE = 1e-8
INFLATE = 1.5  # the quadrature's spread against the conditional posterior's sd
INTEGRATED = "log_likelihood_integrated"  # InferenceData group written by :func:`add_integrated`


class MissingGroupError(ValueError):
    """A posterior lacks a group a check needs; the message names it and what adds it."""


def require(idata, *groups: str, what: str) -> None:
    """Raise :class:`MissingGroupError` unless ``idata`` has every group in ``groups``."""
    missing = [g for g in groups if g not in idata.groups()]
    if missing:
        raise MissingGroupError(
            f"{what} needs the InferenceData groups {missing}, which this posterior lacks "
            f"(it has {list(idata.groups())}); refit it with this version (`make fit`) to add them"
        )


@dataclass
class Population:
    """Per posterior sample: what the integral over each respondent's traits needs."""

    mean: np.ndarray  # (sample, respondent, battery): covariate and group part of theta
    chol: np.ndarray  # (sample, battery, battery): Cholesky factor of the residual correlation
    lam: np.ndarray  # (sample, pattern, item): discriminations per DIF pattern (one without)
    offset: np.ndarray  # (sample, respondent, item): item-specific covariate effects and DIF
    cuts: np.ndarray  # (sample, item, threshold)
    col: np.ndarray  # (item,): battery position of each item
    link: str
    lam_row: np.ndarray | None = None  # (respondent,): each one's row of ``lam`` (None: all 0)
    # (sample, respondent): each respondent's log threshold spread (an extreme response style)
    style: np.ndarray | None = None
    # a respondent-level latent besides the traits (a response style): the leave-one-answer-out
    # CDFs reweight the draws by each answer's likelihood (see :func:`_integrate`)
    loo_draws: bool = False

    def __post_init__(self):
        if self.lam.ndim == 2:  # (sample, item): one pattern, every respondent's discriminations
            self.lam = self.lam[:, None, :]
        if self.lam_row is None:
            self.lam_row = np.zeros(self.offset.shape[1], dtype=np.int64)

    def answer_cuts(self, samples=slice(None)) -> np.ndarray:
        """The thresholds each answer is read against, (sample, respondent, item, threshold):
        with no style the respondent axis has length 1."""
        if self.style is None:
            return self.cuts[samples][:, None]
        return spread_thresholds(self.cuts[samples], self.style[samples])

    def log_spread(self) -> np.ndarray:
        """The kernels' form of :attr:`style`: zeros without one."""
        if self.style is None:
            return np.zeros((self.cuts.shape[0], self.offset.shape[1]))
        return self.style

    def eta(self, theta: np.ndarray, samples=slice(None)) -> np.ndarray:
        """Linear predictor (sample, respondent, item) of the chosen ``samples`` at the traits
        ``theta`` (sample, respondent, battery) of those samples."""
        lam = self.lam[samples][:, self.lam_row, :]
        return predictor.eta(lam, theta, self.col, self.offset[samples])


def population(idata, styles: bool = True) -> Population:
    """The population-level part of every posterior sample of ``idata``; with ``styles``
    false, the response styles set aside (thresholds at the items' own, no acquiescence)."""
    post, const = idata.posterior, idata.constant_data
    n_s = post.sizes["chain"] * post.sizes["draw"]
    n_i = const.sizes[dims.RESPONDENT]
    batteries = list(post[dims.BATTERY].values)
    col = np.array([batteries.index(b) for b in const["battery_of_item"].values])
    X = const["X"]
    beta = x = None
    if "beta" in post:
        beta = posterior_draws(idata, "beta")  # (s, battery, covariate)
        x = X.sel({dims.ALL_COVARIATES: list(beta[dims.COVARIATE].values)}).values
        beta = beta.values
    groups = [
        (posterior_draws(idata, name).values, const[f"index_{name[2:]}"].values)
        for name in post.data_vars
        if name.startswith("u_")
    ]
    mean = predictor.trait_mean(n_i, len(batteries), beta, x, groups)
    if mean.shape[0] != n_s:  # no covariates or groups: one mean for every draw
        mean = np.repeat(mean, n_s, axis=0)
    if "corr_matrix" in post:
        chol = np.linalg.cholesky(posterior_draws(idata, "corr_matrix").values)
    else:
        chol = np.broadcast_to(np.eye(len(batteries)), (n_s, len(batteries), len(batteries)))
    offset = np.zeros((n_s, n_i, len(col)))
    if "delta" in post:
        delta = posterior_draws(idata, "delta")  # (s, item_covariate, item)
        x = X.sel({dims.ALL_COVARIATES: list(delta[dims.ITEM_COVARIATE].values)}).values
        offset = predictor.item_offset(delta.values, x, n_i, len(col))
    lam = posterior_draws(idata, "lambda").values[:, None, :]
    lam_row = None
    if DIF_LOCATION in post:
        contrasts = const[DIF_DATA].values  # (respondent, dif_level)
        offset = offset + predictor.item_offset(
            posterior_draws(idata, DIF_LOCATION).values, contrasts, n_i, len(col)
        )
        if DIF_DISCRIMINATION in post:
            patterns, lam_row = np.unique(contrasts, axis=0, return_inverse=True)
            ratio = posterior_draws(idata, DIF_DISCRIMINATION).values  # (s, dif_level, item)
            lam = lam * np.exp(np.einsum("pl,slj->spj", patterns, ratio))
            lam_row = lam_row.ravel().astype(np.int64)
    style = styles and has_draws(idata, STYLE)
    acquiescence = styles and has_draws(idata, ACQUIESCENCE)
    if acquiescence:
        key = const[ITEM_KEY].values
        offset = offset + posterior_draws(idata, ACQUIESCENCE).values[:, :, None] * key
    return Population(
        mean=mean,
        chol=np.asarray(chol),
        lam=lam,
        offset=offset,
        cuts=posterior_draws(idata, "cuts").values,
        col=col,
        link=post.attrs.get("link", "logit"),
        lam_row=lam_row,
        style=posterior_draws(idata, STYLE).values if style else None,
        loo_draws=style or acquiescence,
    )


@numba.njit(cache=True)
def _log_cdf(x, probit):
    """log F(x) of the link's noise: logistic, or normal with an asymptotic series in the
    far lower tail (where ``erfc`` underflows)."""
    if probit:
        if x > -30.0:
            return math.log(0.5 * math.erfc(-x / math.sqrt(2.0)))
        # Mills ratio: phi(x) / -x times 1 - 1/x^2 + 3/x^4 - 15/x^6 + 105/x^8 (error < 1e-11 here)
        r = 1.0 / (x * x)
        series = 1.0 - r * (1.0 - r * (3.0 - r * (15.0 - 105.0 * r)))
        return -0.5 * x * x - math.log(-x) - 0.5 * math.log(2.0 * math.pi) + math.log(series)
    if x > 0:
        return -math.log1p(math.exp(-x))
    return x - math.log1p(math.exp(x))


@numba.njit(cache=True)
def _log1mexp(x):
    """log(1 - exp(x)) for x < 0, accurate near 0 as well (Maechler 2012)."""
    return math.log(-math.expm1(x)) if x > -0.6931471805599453 else math.log1p(-math.exp(x))


@numba.njit(cache=True)
def _log_interval(hi, lo, probit):
    """log(F(hi) - F(lo)), hi > lo; either bound may be infinite."""
    if hi + lo > 0:  # reflect into the lower tail, where log F keeps its digits
        hi, lo = -lo, -hi
    l_hi = _log_cdf(hi, probit) if hi < np.inf else 0.0
    if lo == -np.inf:
        return l_hi
    return l_hi + _log1mexp(min(_log_cdf(lo, probit) - l_hi, -1e-300))


@numba.njit(cache=True)
def _cdf(x, probit):
    if x == np.inf:
        return 1.0
    if x == -np.inf:
        return 0.0
    if probit:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


TAIL = 1e-6  # below this an answer's probability is read from its log (``_log_interval``)


@numba.njit(cache=True, inline="always")
def _answer(cuts, k, n_k, eta, probit):
    """Log-probability of answer ``k`` (0-based, observed) at linear predictor ``eta``, and the
    CDF at its upper and lower threshold."""
    hi = cuts[k] - eta if k < n_k else np.inf
    lo = cuts[k - 1] - eta if k >= 1 else -np.inf
    fh = _cdf(hi, probit)
    fl = _cdf(lo, probit)
    # the plain difference where it keeps its digits, the log form in the tails
    lp = math.log(fh - fl) if fh - fl > TAIL else _log_interval(hi, lo, probit)
    return lp, fh, fl


@numba.njit(cache=True, inline="always")
def _answer_p(cuts, k, n_k, eta, probit):
    """:func:`_answer` as a probability, without the log where it is not needed.

    Returns the probability, the CDF at the upper and lower threshold, and the
    log-probability when the answer is in the tail (probability at most :data:`TAIL`;
    NaN otherwise), where the probability is its ``exp`` and may underflow to 0.
    """
    fh = _cdf(cuts[k] - eta, probit) if k < n_k else 1.0
    fl = _cdf(cuts[k - 1] - eta, probit) if k >= 1 else 0.0
    if fh - fl > TAIL:
        return fh - fl, fh, fl, np.nan
    lp, _, _ = _answer(cuts, k, n_k, eta, probit)
    return math.exp(lp), fh, fl, lp


@numba.njit(cache=True)
def _log_sum_exp(x, n):
    top = -np.inf
    for k in range(n):
        top = max(top, x[k])
    if top == -np.inf:
        return top
    acc = 0.0
    for k in range(n):
        acc += math.exp(x[k] - top)
    return top + math.log(acc)


@dataclass
class Grid:
    """A pruned product grid of Gauss-Hermite nodes, in lexicographic order of its digits.

    ``prefix[b, q]`` numbers the distinct leading digits ``(d_0, ..., d_b)`` of node ``q``:
    battery ``b``'s trait depends on those alone (the grid's factor is lower-triangular), and
    the nodes sharing a prefix are contiguous, from ``start[b, p]`` to ``start[b, p + 1]``.
    """

    z1: np.ndarray  # (n,): the one-dimensional nodes
    digits: np.ndarray  # (node, battery)
    node_term: np.ndarray  # (node,): log weight less the N(0, I) log density
    prefix: np.ndarray  # (battery, node)
    start: np.ndarray  # (battery, node + 1), padded with the node count
    n_prefix: np.ndarray  # (battery,)


def grid(n_b: int, n: int, prune: float = PRUNE) -> Grid:
    """The product grid of ``n`` nodes per battery without nodes of weight below ``prune``.

    Parameters
    ----------
    n_b : int
        Batteries (dimensions).
    n : int
        Gauss-Hermite nodes per dimension.
    prune : float
        Nodes whose normalised product weight is below this are dropped (0 keeps all).
    """
    z1, w1 = hermegauss(n)
    log_w1 = np.log(w1 / w1.sum())
    digits = np.array(list(itertools.product(range(n), repeat=n_b)), dtype=np.int64).reshape(-1, n_b)
    log_w = log_w1[digits].sum(axis=1)
    keep = log_w >= math.log(prune) if prune > 0 else np.ones(len(digits), bool)
    if not keep.any():
        raise ValueError(f"prune = {prune}: no node of the {n}-point grid in {n_b} dimensions weighs as much")
    digits, log_w = digits[keep], log_w[keep]
    n_q = len(digits)
    node_term = log_w + 0.5 * (z1[digits] ** 2).sum(axis=1) + 0.5 * n_b * math.log(2.0 * math.pi)
    prefix = np.empty((n_b, n_q), dtype=np.int64)
    start = np.full((n_b, n_q + 1), n_q, dtype=np.int64)
    n_prefix = np.empty(n_b, dtype=np.int64)
    for b in range(n_b):
        new = np.ones(n_q, bool)
        new[1:] = (digits[1:, : b + 1] != digits[:-1, : b + 1]).any(axis=1)
        prefix[b] = np.cumsum(new) - 1
        first = np.flatnonzero(new)
        n_prefix[b] = len(first)
        start[b, : len(first)] = first
    return Grid(z1, digits, node_term, prefix, start, n_prefix)


@numba.njit(cache=True, parallel=True)
def _integrate(
    mean,
    inv_chol,
    log_det_chol,
    lam,
    lam_row,
    offset,
    cuts,
    log_spread,
    loo_draws,
    col,
    y,
    centre,
    scale,
    z1,
    digits,
    node_term,
    prefix,
    start,
    n_prefix,
    probit,
):
    """The quadrature over a :class:`Grid`, one respondent per thread.

    An item of battery ``b`` is read at the grid's distinct prefixes of ``b + 1`` digits,
    not at every node, and its leave-one-out sums run over those prefixes with the nodes'
    masses summed within each. Answers are handled as probabilities (one exp each for the
    logit, a log per battery and prefix, a division per leave-one-out weight); answers in
    the far tail keep their logs.
    """
    n_s, n_i, n_b = mean.shape
    n_q = digits.shape[0]
    n_j, n_k = y.shape[1], cuts.shape[2]
    loglik = np.empty((n_s, n_i))
    cdf_hi = np.zeros((n_i, n_j))
    cdf_lo = np.zeros((n_i, n_j))
    draw_weight = np.zeros((n_i, n_j))
    half_log_2pi = 0.5 * n_b * math.log(2.0 * math.pi)
    exp_neg_cuts = np.exp(-cuts)
    for i in numba.prange(n_i):
        local = np.empty(n_k)
        trait = np.empty((n_b, n_q))  # trait[b, p]: battery b's trait at prefix p
        prob = np.empty((n_j, n_q))
        tail_lp = np.empty((n_j, n_q))  # the log-probability of a tail answer, else NaN
        f_hi = np.empty((n_j, n_q))
        f_lo = np.empty((n_j, n_q))
        sum_b = np.empty((n_b, n_q))  # log-likelihood of battery b's answers at prefix p
        prod_b = np.empty((n_b, n_q))  # the part of it not yet taken to the log
        log_mass = np.empty(n_q)
        group = np.empty(n_q)
        weight = np.empty(n_q)
        terms = np.empty(n_q)
        dev = np.empty(n_b)
        log_det_scale = 0.0
        for b in range(n_b):
            log_det_scale += math.log(abs(scale[i, b, b]))
            for p in range(n_prefix[b]):
                t = centre[i, b]
                for c in range(b + 1):
                    t += scale[i, b, c] * z1[digits[start[b, p], c]]
                trait[b, p] = t
        for s in range(n_s):
            for b in range(n_b):
                for p in range(n_prefix[b]):
                    sum_b[b, p] = 0.0
                    prod_b[b, p] = 1.0
            for j in range(n_j):
                k = y[i, j]
                if k < 0:  # missing: no contribution, no check
                    continue
                b = col[j]
                lam_sj, offset_sij = lam[s, lam_row[i], j], offset[s, i, j]
                _spread(cuts[s, j], log_spread[s, i], local)
                cuts_sj = local
                # e^-c of the answer's thresholds; 0 and inf stand for the open ends
                if log_spread[s, i] == 0.0:
                    up = exp_neg_cuts[s, j, k] if k < n_k else 0.0
                    low = exp_neg_cuts[s, j, k - 1] if k >= 1 else np.inf
                else:
                    up = math.exp(-local[k]) if k < n_k else 0.0
                    low = math.exp(-local[k - 1]) if k >= 1 else np.inf
                for p in range(n_prefix[b]):
                    eta = lam_sj * trait[b, p] + offset_sij
                    if probit:
                        pr, fh, fl, lp = _answer_p(cuts_sj, k, n_k, eta, True)
                    else:  # the common case: F(c - eta) = 1 / (1 + e^eta e^-c), one exp for both
                        e = math.exp(eta)
                        fh = 1.0 / (1.0 + e * up)
                        fl = 1.0 / (1.0 + e * low)
                        if fh - fl > TAIL:  # false for NaN (0 x inf) as well
                            pr, lp = fh - fl, np.nan
                        else:  # the tail, or beyond any answer: the plain form
                            pr, fh, fl, lp = _answer_p(cuts_sj, k, n_k, eta, False)
                    prob[j, p] = pr
                    tail_lp[j, p] = lp
                    f_hi[j, p] = fh
                    f_lo[j, p] = fl
                    if lp == lp:  # a tail answer: its log
                        sum_b[b, p] += lp
                    else:
                        prod_b[b, p] *= pr
                        if prod_b[b, p] < 1e-200:  # a long battery: keep the product in range
                            sum_b[b, p] += math.log(prod_b[b, p])
                            prod_b[b, p] = 1.0
            for b in range(n_b):
                for p in range(n_prefix[b]):
                    sum_b[b, p] += math.log(prod_b[b, p])
            log_prior_const = -log_det_chol[s] - half_log_2pi + log_det_scale
            for q in range(n_q):
                prior = 0.0
                for b in range(n_b):
                    dev[b] = trait[b, prefix[b, q]] - mean[s, i, b]
                for b in range(n_b):
                    v = 0.0
                    for c in range(b + 1):
                        v += inv_chol[s, b, c] * dev[c]
                    prior += v * v
                total = 0.0
                for b in range(n_b):
                    total += sum_b[b, prefix[b, q]]
                log_mass[q] = node_term[q] + total - 0.5 * prior + log_prior_const
            loglik[s, i] = _log_sum_exp(log_mass, n_q)
            for b in range(n_b):
                n_p = n_prefix[b]
                top = -np.inf
                for p in range(n_p):  # the nodes' mass summed within each prefix
                    lo_q, hi_q = start[b, p], start[b, p + 1]
                    if hi_q - lo_q == 1:
                        group[p] = log_mass[lo_q]
                    else:
                        group[p] = _log_sum_exp(log_mass[lo_q:hi_q], hi_q - lo_q)
                    top = max(top, group[p])
                for p in range(n_p):
                    weight[p] = math.exp(group[p] - top)
                for j in range(n_j):
                    if col[j] != b or y[i, j] < 0:
                        continue
                    # the mass without answer j: weight / prob, or in logs when a prob is ~0
                    exact = True
                    for p in range(n_p):
                        if prob[j, p] < 1e-250:
                            exact = False
                            break
                    norm = 0.0
                    hi_acc = 0.0
                    lo_acc = 0.0
                    norm_scale = 0.0  # log of norm's unit against the weights' (exp(top))
                    if exact:
                        for p in range(n_p):
                            w = weight[p] / prob[j, p]
                            norm += w
                            hi_acc += w * f_hi[j, p]
                            lo_acc += w * f_lo[j, p]
                    else:
                        for p in range(n_p):
                            lp = tail_lp[j, p]
                            terms[p] = group[p] - (lp if lp == lp else math.log(prob[j, p]))
                        rest_top = -np.inf
                        for p in range(n_p):
                            rest_top = max(rest_top, terms[p])
                        for p in range(n_p):
                            w = math.exp(terms[p] - rest_top)
                            norm += w
                            hi_acc += w * f_hi[j, p]
                            lo_acc += w * f_lo[j, p]
                        norm_scale = rest_top - top
                    if loo_draws:  # norm / sum(weight), in one unit: 1 / p(y_ij | y_i,-j, draw)
                        total_w = 0.0
                        for p in range(n_p):
                            total_w += weight[p]
                        w_s = math.exp(min(math.log(norm) + norm_scale - math.log(total_w), 700.0))
                    else:
                        w_s = 1.0
                    draw_weight[i, j] += w_s
                    cdf_hi[i, j] += w_s * hi_acc / norm
                    cdf_lo[i, j] += w_s * lo_acc / norm
    for i in range(n_i):
        for j in range(n_j):
            if draw_weight[i, j] > 0:
                cdf_hi[i, j] /= draw_weight[i, j]
                cdf_lo[i, j] /= draw_weight[i, j]
    return loglik, cdf_hi, cdf_lo


@numba.njit(cache=True, inline="always")
def _spread(cuts, log_spread, out):
    """An item's thresholds spread by ``exp(log_spread)`` around their mean, into ``out``."""
    n_k = cuts.shape[0]
    if log_spread == 0.0:
        for k in range(n_k):
            out[k] = cuts[k]
        return
    centre = 0.0
    for k in range(n_k):
        centre += cuts[k]
    centre /= n_k
    factor = math.exp(log_spread)
    for k in range(n_k):
        out[k] = centre + factor * (cuts[k] - centre)


def integrate(
    pop: Population,
    y: np.ndarray,
    centre: np.ndarray,
    scale: np.ndarray,
    per_dim: int | None = None,
    prune: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrated log-likelihood per sample and respondent, and each answer's predictive CDF
    given the respondent's other answers.

    Parameters
    ----------
    pop : Population
    y : ndarray of int, shape (respondent, item)
        0-based answers, negative where missing.
    centre : ndarray, shape (respondent, battery)
        Where each respondent's quadrature grid is centred.
    scale : ndarray, shape (respondent, battery, battery)
        Lower-triangular factor spreading the grid.
    per_dim : int, optional
        Nodes per battery (default :data:`NODES_PER_DIM`).
    prune : float, optional
        Drop grid nodes of weight below this (default :data:`PRUNE`; 0 keeps all).

    Returns
    -------
    loglik : ndarray, shape (sample, respondent)
    cdf_hi, cdf_lo : ndarray, shape (respondent, item)
        ``P(Y_ij <= y_ij | y_i,-j)`` and ``P(Y_ij < y_ij | y_i,-j)``, averaged over samples
        (0 where the answer is missing).
    """
    return _integrate(*_integrate_args(pop, y, centre, scale, per_dim, prune))


def _integrate_args(pop, y, centre, scale, per_dim=None, prune=None) -> tuple:
    """:func:`_integrate`'s arguments, in the types it is compiled for."""
    n_b = pop.mean.shape[2]
    g = grid(n_b, per_dim or NODES_PER_DIM.get(n_b, 5), PRUNE if prune is None else prune)
    f = np.ascontiguousarray
    return (
        f(pop.mean, dtype=float),
        f(np.linalg.inv(pop.chol), dtype=float),
        f(np.log(np.diagonal(pop.chol, axis1=1, axis2=2)).sum(-1), dtype=float),
        f(pop.lam, dtype=float),
        f(pop.lam_row, dtype=np.int64),
        f(pop.offset, dtype=float),
        f(pop.cuts, dtype=float),
        f(pop.log_spread(), dtype=float),
        bool(pop.loo_draws),
        f(pop.col, dtype=np.int64),
        f(y, dtype=np.int64),
        f(centre, dtype=float),
        f(scale, dtype=float),
        f(g.z1, dtype=float),
        g.digits,
        g.node_term,
        g.prefix,
        g.start,
        g.n_prefix,
        pop.link == "probit",
    )


@numba.njit(cache=True, parallel=True)
def _conditional(mean, lam, lam_row, offset, cuts, log_spread, col, y, probit):
    """:func:`_integrate` at given traits (a model without a residual: the population
    part), so each answer's log-likelihood and CDF are read at them directly."""
    n_s, n_i, _ = mean.shape
    n_j, n_k = y.shape[1], cuts.shape[2]
    loglik = np.zeros((n_s, n_i))
    cdf_hi = np.zeros((n_i, n_j))
    cdf_lo = np.zeros((n_i, n_j))
    for i in numba.prange(n_i):
        local = np.empty(n_k)
        for s in range(n_s):
            for j in range(n_j):
                k = y[i, j]
                if k < 0:
                    continue
                eta = lam[s, lam_row[i], j] * mean[s, i, col[j]] + offset[s, i, j]
                _spread(cuts[s, j], log_spread[s, i], local)
                lp, fh, fl = _answer(local, k, n_k, eta, probit)
                loglik[s, i] += lp
                cdf_hi[i, j] += fh / n_s
                cdf_lo[i, j] += fl / n_s
    return loglik, cdf_hi, cdf_lo


def conditional(
    pop: Population, theta: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-likelihood per sample and respondent given their traits, and each answer's CDFs.

    Parameters
    ----------
    pop : Population
    theta : ndarray, shape (sample, respondent, battery)
        The traits at each sample (the population part alone for a model without residual).
    y : ndarray of int, shape (respondent, item)
        0-based answers, negative where missing (no contribution).

    Returns
    -------
    loglik : ndarray, shape (sample, respondent)
    cdf_hi, cdf_lo : ndarray, shape (respondent, item)
        ``P(Y_ij <= y_ij | theta)`` and ``P(Y_ij < y_ij | theta)`` averaged over samples.
    """
    return _conditional(*_conditional_args(pop, theta, y))


def _conditional_args(pop: Population, theta: np.ndarray, y: np.ndarray) -> tuple:
    """:func:`_conditional`'s arguments, in the types it is compiled for."""
    f = np.ascontiguousarray
    return (
        f(theta, dtype=float),
        f(pop.lam, dtype=float),
        f(pop.lam_row, dtype=np.int64),
        f(pop.offset, dtype=float),
        f(pop.cuts, dtype=float),
        f(pop.log_spread(), dtype=float),
        f(pop.col, dtype=np.int64),
        f(y, dtype=np.int64),
        pop.link == "probit",
    )


def _one_answer() -> tuple[Population, np.ndarray, np.ndarray, np.ndarray]:
    """A population of one sample, respondent, battery and three-category item; its answer;
    and a grid's centre and spread: the smallest call of the kernels."""
    pop = Population(
        mean=np.zeros((1, 1, 1)),
        chol=np.ones((1, 1, 1)),
        lam=np.ones((1, 1, 1)),
        offset=np.zeros((1, 1, 1)),
        cuts=np.array([[[-1.0, 1.0]]]),
        col=np.zeros(1, dtype=np.int64),
        link="logit",
    )
    return pop, np.ones((1, 1), dtype=np.int64), np.zeros((1, 1)), np.ones((1, 1, 1))


def compile_kernels() -> None:
    """Compile the Numba kernels of the replicates' log-likelihood and the integrated
    likelihood (or load them from Numba's cache) by calling them on one answer.

    Their first compile is independent of any posterior: a fit calls this beside sampling.
    The link is an argument, so one call serves both links.
    """
    pop, y, centre, scale = _one_answer()
    integrate(pop, y, centre, scale)
    conditional(pop, pop.mean, y)


def adaptive_grid(idata) -> tuple[np.ndarray, np.ndarray]:
    """Centre and spread of each respondent's grid: the mean and (inflated) Cholesky factor of
    the conditional posterior of their traits."""
    theta = posterior_draws(idata, "theta").values  # (s, i, b)
    centre = theta.mean(axis=0)
    dev = theta - centre
    cov = np.einsum("sib,sic->ibc", dev, dev) / max(theta.shape[0] - 1, 1)
    cov = cov * INFLATE**2 + 1e-6 * np.eye(theta.shape[2])
    return centre, np.linalg.cholesky(cov)


def compute(idata, max_draws: int | None = INTEGRATED_DRAWS, per_dim: int | None = None) -> xr.Dataset:
    """Integrated log-likelihood and leave-one-answer-out predictive CDFs of a posterior.

    Parameters
    ----------
    idata : arviz.InferenceData
        A stored fit with ``posterior`` (``theta`` among it), ``observed_data`` and
        ``constant_data``.
    max_draws : int, optional
        Thin each chain evenly to at most about this many samples in all.
    per_dim : int, optional
        Quadrature nodes per battery.

    Returns
    -------
    xarray.Dataset
        ``y`` (chain, draw, respondent): the integrated log-likelihood on the thinned draws;
        ``cdf_hi`` and ``cdf_lo`` (respondent, item).
    """
    require(idata, "posterior", "observed_data", "constant_data", what="the integrated likelihood")
    small = thin(idata, max_draws)
    pop = population(small)
    y = idata.observed_data[OBSERVED].values.astype(int)
    if has_residual(idata):
        centre, scale = adaptive_grid(idata)
        loglik, cdf_hi, cdf_lo = integrate(pop, y, centre, scale, per_dim)
        method, nodes = "adaptive Gauss-Hermite", per_dim or NODES_PER_DIM.get(pop.mean.shape[2], 5)
        pruned = PRUNE
    else:
        loglik, cdf_hi, cdf_lo = conditional(pop, pop.mean, y)
        method, nodes, pruned = "none: no respondent residual to integrate", 1, 0.0
    post = small.posterior
    shape = (post.sizes["chain"], post.sizes["draw"], y.shape[0])
    coords = {
        "chain": post["chain"].values,
        "draw": post["draw"].values,
        dims.RESPONDENT: idata.observed_data[dims.RESPONDENT].values,
        dims.ITEM: idata.observed_data[dims.ITEM].values,
    }
    return xr.Dataset(
        {
            OBSERVED: (("chain", "draw", dims.RESPONDENT), loglik.reshape(shape)),
            "cdf_hi": ((dims.RESPONDENT, dims.ITEM), cdf_hi),
            "cdf_lo": ((dims.RESPONDENT, dims.ITEM), cdf_lo),
        },
        coords=coords,
        attrs={
            "method": method,
            "nodes_per_battery": nodes,
            "pruned_below": pruned,
        },
    )


def add_integrated(idata, max_draws: int | None = INTEGRATED_DRAWS) -> az.InferenceData:
    """Store :func:`compute`'s result in the group ``log_likelihood_integrated``."""
    idata.add_groups({INTEGRATED: compute(idata, max_draws)})
    return idata


def integrated(idata, max_draws: int | None = INTEGRATED_DRAWS) -> xr.Dataset:
    """The stored integrated group, or computed now for a posterior that lacks it."""
    return idata[INTEGRATED] if INTEGRATED in idata.groups() else compute(idata, max_draws)
