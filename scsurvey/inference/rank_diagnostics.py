"""Rank-normalised split R-hat and bulk and tail ESS, vectorised over quantities.

The same estimators as ``arviz.rhat(method="rank")`` and ``arviz.ess(method="bulk" | "tail")``
(Vehtari, Gelman, Simpson, Carpenter and Buerkner 2021), computed for every quantity of a
variable at once. ArviZ 0.2x evaluates them one quantity at a time in Python, which on a
posterior with thousands of respondent-level quantities dominates a check, and a fit checks
after every sampling round (docs/performance.md). Here ranks, FFT
autocovariances and Geyer's initial monotone sequence run as array operations; the tests
hold the results equal to ArviZ's (relative 1e-9; 1e-13 seen).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import xarray as xr
from scipy import special
from scipy.fft import next_fast_len

TAIL_PROBS = (0.05, 0.95)
CHUNK = 500  # quantities per task when the work is spread over threads


def _split(x: np.ndarray) -> np.ndarray:
    """(k, chain, draw) -> (k, 2 chain, draw // 2): each chain's first and last halves."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, -half:]], axis=1)


def _z_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal scores of the ranks over all chains and draws, per quantity (Blom's offset;
    ties share their average rank, as ``scipy.stats.rankdata(method="average")``), and the
    draws of each quantity in ascending order, shape (k, chain x draw)."""
    k, c, d = x.shape
    n = c * d
    a = x.reshape(k, n)
    order = np.argsort(a, axis=1)
    ordered = np.take_along_axis(a, order, axis=1)
    scores = special.ndtri((np.arange(1, n + 1) - 0.375) / (n + 0.25))
    z = np.empty((k, n))
    np.put_along_axis(z, order, scores[None, :], axis=1)  # no ties: rank i + 1 at the i-th smallest
    # Ties, visited where they are: folded draws tie in pairs at the median, so every
    # quantity has some, but few.
    row, pos = np.nonzero(ordered[:, 1:] == ordered[:, :-1])  # sorted positions pos, pos + 1 tie
    if row.size:
        flat = row * n + pos  # ascending; runs never cross rows (pos < n - 1)
        starts = np.ones(flat.size, dtype=bool)
        starts[1:] = flat[1:] != flat[:-1] + 1
        first = flat[starts]  # each run's first tied position
        last = np.append(flat[np.flatnonzero(starts)[1:] - 1], flat[-1]) + 1  # and its last
        rank = (first % n + last % n) / 2.0 + 1.0  # the run's average rank
        tied = np.union1d(flat, flat + 1)
        run = np.searchsorted(first, tied, side="right") - 1
        z.reshape(-1)[tied - tied % n + order.reshape(-1)[tied]] = special.ndtri(
            (rank[run] - 0.375) / (n + 0.25)
        )
    return z.reshape(k, c, d), ordered


def _median(ordered: np.ndarray) -> np.ndarray:
    """Per row of sorted values, as ``np.median``."""
    n = ordered.shape[1]
    half = n // 2
    return ordered[:, half] if n % 2 else (ordered[:, half - 1] + ordered[:, half]) / 2.0


def _rhat(x: np.ndarray) -> np.ndarray:
    n = x.shape[2]
    within = x.var(axis=2, ddof=1).mean(axis=1)
    between = n * x.mean(axis=2).var(axis=1, ddof=1)
    return np.sqrt((between / within + n - 1) / n)


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS of (k, chain, draw) draws: FFT autocovariances and Geyer's initial monotone
    sequence, as ``arviz.stats.diagnostics._ess``."""
    k, m, n = x.shape
    size = m * n
    centred = x - x.mean(axis=2, keepdims=True)
    length = next_fast_len(2 * n)
    f = np.fft.rfft(centred, n=length, axis=2)
    acov = np.fft.irfft(f * np.conjugate(f), n=length, axis=2)[:, :, :n] / n
    mean_var = acov[:, :, 0].mean(axis=1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + x.mean(axis=2).var(axis=1, ddof=1)
    rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]  # (k, lag)
    rho[:, 0] = 1.0
    # Pairs (rho[2j], rho[2j + 1]); the positive sequence stops at the first pair K >= 1
    # whose sum is <= 0, or at the last pair the lag limit allows.
    k_max = max((n - 3) // 2, 0)
    n_pairs = k_max + 1
    pairs = rho[:, 0 : 2 * n_pairs : 2] + rho[:, 1 : 2 * n_pairs + 1 : 2]
    stop = pairs <= 0
    stop[:, 0] = False
    stop[:, k_max] = True
    first = np.where(pairs[:, 0] <= 0, 0, np.argmax(stop, axis=1))  # K per quantity
    monotone = np.minimum.accumulate(pairs, axis=1)  # Geyer's initial monotone sequence
    used = np.arange(n_pairs)[None, :] < first[:, None]
    sum_pairs = np.where(used, monotone, 0.0).sum(axis=1)
    rows = np.arange(k)
    rho_last = rho[rows, 2 * first]  # rho[0] = 1 when K = 0
    term = np.where((rho_last > 0) | (pairs[rows, first] >= 0), rho_last, 0.0)
    tau = np.maximum(-1.0 + 2.0 * sum_pairs + term, 1.0 / np.log10(size))
    constant = (x.max(axis=(1, 2)) - x.min(axis=(1, 2))) < np.finfo(float).resolution
    ess = np.where(constant, float(size), size / tau)
    return np.where(np.isnan(rho).any(axis=1) & ~constant, np.nan, ess)


def _quantities(x) -> tuple[np.ndarray, np.ndarray]:
    """(chain, draw, k) draws as (k, chain, draw) with NaN columns zeroed, and the NaN mask."""
    x = np.asarray(x, dtype=float)
    bad = np.isnan(x).any(axis=(0, 1))
    return np.ascontiguousarray(np.where(bad, 0.0, x).transpose(2, 0, 1)), bad


def rank_diagnostics(x) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat and bulk and tail ESS of every quantity.

    Parameters
    ----------
    x : array_like
        Draws, shape (chain, draw, k).

    Returns
    -------
    dict
        ``rhat`` (the larger of the bulk and folded split R-hat), ``ess_bulk`` and
        ``ess_tail`` (the smaller ESS of the 5% and 95% quantile indicators), each of shape
        (k,). NaN where a quantity has a NaN draw, or with fewer than 4 draws (and, for
        R-hat, fewer than 2 chains).
    """
    x = np.asarray(x, dtype=float)
    k = x.shape[2]
    if k >= 2 * CHUNK:  # NumPy's sorts and FFTs release the GIL: chunks run on every core
        parts = np.array_split(np.arange(k), -(-k // CHUNK))
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            done = list(pool.map(lambda idx: _rank_diagnostics(x[:, :, idx]), parts))
        return {key: np.concatenate([d[key] for d in done]) for key in done[0]}
    return _rank_diagnostics(x)


def _rank_diagnostics(x: np.ndarray) -> dict[str, np.ndarray]:
    q, bad = _quantities(x)
    k, c, d = q.shape
    nan = np.full(k, np.nan)
    if d < 4:
        return {"rhat": nan, "ess_bulk": nan.copy(), "ess_tail": nan.copy()}
    split = _split(q)
    z, ordered = _z_scale(split)
    with np.errstate(divide="ignore", invalid="ignore"):
        if c >= 2:
            folded = np.abs(split - _median(ordered)[:, None, None])
            rhat = np.maximum(_rhat(z), _rhat(_z_scale(folded)[0]))
        else:
            rhat = nan
        bulk = _ess(z)
        # type 7, as ArviZ, over every draw: the split's sorted draws when it kept them all
        # (an odd chain loses its middle draw), where a sorted input makes the partition cheap
        every = ordered if d % 2 == 0 else q.reshape(k, -1)
        quantiles = np.quantile(every, TAIL_PROBS, axis=1)
        tail = np.minimum(*(_ess(_split((q <= qi[:, None, None]).astype(float))) for qi in quantiles))
    out = {"rhat": rhat, "ess_bulk": bulk, "ess_tail": tail}
    return {name: np.where(bad, np.nan, v) for name, v in out.items()}


def diagnostics(ds: xr.Dataset) -> dict[str, xr.Dataset]:
    """``rhat``, ``ess_bulk`` and ``ess_tail`` of every variable of a posterior dataset.

    Returns
    -------
    dict
        Datasets shaped like ``ds`` without its chain and draw dims.
    """
    out = {"rhat": {}, "ess_bulk": {}, "ess_tail": {}}
    for name, da in ds.data_vars.items():
        da = da.transpose("chain", "draw", ...)
        rest = da.shape[2:]
        values = rank_diagnostics(da.values.reshape(da.shape[0], da.shape[1], -1))
        for key, v in values.items():
            out[key][name] = (da.dims[2:], v.reshape(rest))
    coords = {c: v for c, v in ds.coords.items() if "chain" not in v.dims and "draw" not in v.dims}
    return {key: xr.Dataset(v, coords=coords) for key, v in out.items()}
