"""Approximate inference for surveys beyond what NUTS does in minutes: mean-field ADVI.

The approximation is judged the way Yao, Vehtari, Simpson and Gelman (2018, "Yes, but did
it work?") judge one: draws from the approximation ``q`` are importance-weighted against the
model's log-density ``p`` on the same unconstrained space, and the Pareto shape ``k`` of the
weights' tail says whether ``q`` is close enough to the posterior for its draws to be used.
``k <= 0.7`` is the threshold (Vehtari et al. 2024, "Pareto smoothed importance sampling").
A posterior from here is labelled approximate in the file, ``run.json`` and the report.
"""

from __future__ import annotations

import time
import warnings

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

PSIS_K_MAX = 0.7
METHOD = "advi"
LABEL = "mean-field ADVI"
START_SD = 0.05
LEARNING_RATE = 0.01  # Adam: a higher ELBO than PyMC's default adagrad in the same steps
# Draws from q are made and judged at most this many values (draws x unconstrained
# dimension) at a time: on a large survey all draws at once, with SciPy's densities and
# PyMC's copies, fill the memory of a small machine (docs/performance.md).
CHUNK_VALUES = 20_000_000


def chunk_sizes(draws: int, dim: int) -> list[int]:
    """Split ``draws`` draws of ``dim`` values into chunks of at most :data:`CHUNK_VALUES`
    values (one draw at least)."""
    size = max(1, CHUNK_VALUES // max(dim, 1))
    return [min(size, draws - start) for start in range(0, draws, size)]


def psis_khat(model: pm.Model, approx, draws: int, seed: int) -> tuple[float, np.ndarray]:
    """Pareto k of the importance ratios ``p / q`` of ``draws`` draws from a mean-field ``q``.

    Parameters
    ----------
    model : pymc.Model
    approx : pymc.variational.approximations.MeanField
        A fitted approximation of ``model``'s posterior.
    draws : int
        Draws from ``q`` (1,000 or more for a stable ``k``).
    seed : int

    Returns
    -------
    khat : float
    log_ratios : numpy.ndarray
        ``log p(z) - log q(z)`` per draw, unnormalised.
    """
    group = approx.groups[0]
    mu = np.asarray(approx.mean.eval(), dtype=float)
    sd = np.asarray(approx.std.eval(), dtype=float)
    rng = np.random.default_rng(seed)  # in chunks, the same draws as one (draws, dim) call
    log_q_const = -np.log(sd).sum() - 0.5 * mu.size * np.log(2.0 * np.pi)
    logp = model.compile_logp()  # on the unconstrained space, Jacobians included

    def point(row):
        return {
            name: row[s].reshape(shape).astype(dtype) for name, s, shape, dtype in group.ordering.values()
        }

    log_ratios = np.empty(draws)
    start = 0
    for n in chunk_sizes(draws, mu.size):
        eps = rng.standard_normal((n, mu.size))
        log_q = log_q_const - 0.5 * np.einsum("ij,ij->i", eps, eps)
        log_p = np.array([logp(point(row)) for row in mu + sd * eps])
        log_ratios[start : start + n] = log_p - log_q
        start += n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns when k > 0.7: that is the result here
        _, khat = az.psislw(log_ratios.copy())
    return float(khat), log_ratios


def draw(approx, draws: int, seed: int) -> az.InferenceData:
    """``draws`` draws from the approximation as InferenceData (one chain), made
    :func:`chunk_sizes` at a time into arrays of their final size: the memory of a large
    survey's draws is then about their own size, not PyMC's several copies of them."""
    sizes = chunk_sizes(draws, approx.ndim)
    if len(sizes) == 1:
        return approx.sample(draws, random_seed=seed, return_inferencedata=True)
    rng = np.random.default_rng(seed)
    first = approx.sample(sizes[0], random_seed=rng, return_inferencedata=True)
    template = first.posterior
    out = {v: np.empty((1, draws, *da.shape[2:]), da.dtype) for v, da in template.data_vars.items()}
    start = 0
    for k, n in enumerate(sizes):
        post = approx.sample(n, random_seed=rng, return_inferencedata=True).posterior if k else template
        for v, da in post.data_vars.items():
            out[v][:, start : start + n] = da.values
        start += n
    coords = {k: c for k, c in template.coords.items() if "draw" not in c.dims}
    first.posterior = xr.Dataset(
        {v: (template[v].dims, a) for v, a in out.items()}, coords=coords, attrs=template.attrs
    ).assign_coords(draw=np.arange(draws))
    return first


def fit_advi(
    model: pm.Model, steps: int, draws: int, seed: int, progress: bool = True
) -> tuple[az.InferenceData, dict]:
    """Fit mean-field ADVI, draw from it and judge it by PSIS.

    Parameters
    ----------
    model : pymc.Model
    steps : int
        Optimisation steps.
    draws : int
        Draws stored as the posterior (one chain), and as many for the PSIS diagnostic.
    seed : int
    progress : bool

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` (one chain) labelled with ``inference``, ``psis_khat`` and ``elbo`` in
        its attributes.
    info : dict
        ``method``, ``steps``, ``psis_khat``, ``elbo`` (mean of the last tenth of the steps),
        ``fit_s`` and ``psis_s``.
    """
    t0 = time.perf_counter()
    with model:
        approx = pm.fit(
            n=steps,
            method=METHOD,
            random_seed=seed,
            progressbar=progress,
            # PyMC starts every sd at 0.69 on the unconstrained scale; draws that wide send
            # an ordinal likelihood's category probabilities to 0 and the gradient to NaN
            start_sigma={v.name: START_SD for v in model.value_vars},
            obj_optimizer=pm.adam(learning_rate=LEARNING_RATE),
            total_grad_norm_constraint=100.0,
        )
    t1 = time.perf_counter()
    khat, _ = psis_khat(model, approx, draws, seed + 1)
    t2 = time.perf_counter()
    idata = draw(approx, draws, seed + 2)
    tail = np.asarray(approx.hist[-max(1, steps // 10) :], dtype=float)
    elbo = float(-tail.mean())
    for key, value in (("inference", LABEL), ("psis_khat", khat), ("elbo", elbo)):
        idata.posterior.attrs[key] = value
    info = {
        "method": METHOD,
        "steps": steps,
        "psis_khat": khat,
        "elbo": elbo,
        "fit_s": t1 - t0,
        "psis_s": t2 - t1,
    }
    return idata, info
