"""Run NUTS: compile a model for its sampler and sample in rounds until a stopping rule is
met: the diagnostics with margin for a reported fit (:class:`MarginRule`), a looser rule for
an SBC simulation. One loop, :func:`sample_in_rounds`, serves both.

A round after divergences starts afresh at a higher ``target_accept``; a round after an
R-hat that more chains of the same length would not lower starts afresh with longer chains;
otherwise a round adds chains. See :func:`sample` and :func:`plan_round`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import arviz as az
import numpy as np
import pymc as pm
import pytensor
import xarray as xr
from pymc.model.transform.optimization import freeze_dims_and_data

from scsurvey.inference.diagnostics import Diagnostics, diagnose
from scsurvey.model.spec import ModelSpec, SpecError

# A function evaluated once runs PyTensor's Python implementations: compiling the per-variable
# log-densities and the gradient to C costs far more than one evaluation (docs/performance.md).
ONE_EVALUATION = {"mode": "FAST_COMPILE"}


def check_initial_point(model: pm.Model) -> None:
    """Fail before sampling if the log-density or its gradient is not finite."""
    point = model.initial_point()
    logps = model.point_logps(point, **ONE_EVALUATION)
    bad = {k: float(v) for k, v in logps.items() if not np.isfinite(v)}
    if bad:
        raise FloatingPointError(f"log-density not finite at the initial point: {bad}")
    grad = model.compile_dlogp(**ONE_EVALUATION)(point)
    if not np.all(np.isfinite(grad)):
        raise FloatingPointError("gradient of the log-density not finite at the initial point")


def check_compiled(compiled, model: pm.Model) -> None:
    """Fail before sampling if the log-density or its gradient is not finite where nutpie starts.

    Evaluates the function nutpie compiled, so the check costs no compile of its own (PyMC's
    ``compile_dlogp`` would compile the model a second time); only when that value is not finite are PyMC's
    per-variable log-densities compiled, to name the variable (:func:`check_initial_point`).
    A start that is not finite only after nutpie's jitter is left to nutpie, which retries.
    """
    try:
        logp, grad = compiled.logp_func(np.asarray(compiled.initial_point_func(0), dtype=float))
    except (AttributeError, TypeError, ValueError):  # a nutpie without these attributes
        check_initial_point(model)
        return
    if not (np.isfinite(logp) and np.all(np.isfinite(grad))):
        check_initial_point(model)


def uses_jax(sampler) -> bool:
    """Whether the sampler settings run the log-density through JAX."""
    return sampler.name == "numpyro" or (sampler.name == "nutpie" and sampler.nutpie_backend == "jax")


def use_device(device: str) -> str:
    """Point JAX at the device a spec asks for; returns the platform it will run on.

    Parameters
    ----------
    device : {"auto", "cpu", "gpu"}
        ``"auto"`` keeps JAX's own choice (a GPU when one is visible to JAX).

    Raises
    ------
    RuntimeError
        When the device is asked for and JAX sees none of that kind, naming the setting and
        the devices there are.
    """
    import jax

    if device == "auto":
        jax.config.update("jax_default_device", None)
        return jax.devices()[0].platform
    try:
        chosen = jax.devices(device)[0]
    except RuntimeError as err:
        raise RuntimeError(
            f"sampler.device = {device!r}: JAX finds no {device} device "
            f"(it sees {[d.platform for d in jax.devices()]}; a GPU needs jax with CUDA, "
            f"e.g. pip install 'jax[cuda12]')"
        ) from err
    jax.config.update("jax_default_device", chosen)
    return chosen.platform


def compile_nutpie(model: pm.Model, backend: str = "jax", swappable: bool = False):
    """Compile a model for nutpie.

    Parameters
    ----------
    model : pymc.Model
    backend : {"jax", "numba"}
    swappable : bool
        Keep data containers as inputs (shared variables), so that ``.with_data`` can swap
        them and, with Numba, the code cached on disk is keyed by the model's structure and
        sizes only: new answers of the same shape reuse it (`scsurvey.inference.nutpie_cache`). When
        False, data are frozen into compile-time constants, which lets XLA fold work that
        depends on data alone (the JAX default).
    """
    import nutpie

    from scsurvey.inference import liveness_patch, nutpie_cache
    from scsurvey.model import fused_likelihood

    if backend == "numba":
        liveness_patch.install()
    else:
        fused_likelihood.register_jax()
    if swappable:  # the sizes are fixed by the parameter vector anyway; only data stay inputs
        model = freeze_dims_and_data(model, data=[])
    cached = backend == "numba" and nutpie_cache.available()
    with nutpie_cache.cached_wrappers() if cached else contextlib.nullcontext():
        return nutpie.compile_pymc_model(
            model,
            backend=backend,
            gradient_backend="pytensor",
            freeze_model=not swappable,
            **({"cache": True} if cached else {}),
        )


def swap_data(compiled, values: dict):
    """``compiled.with_data`` for the containers the compiled model reads.

    A container the log-density does not read (the raw answers, once the likelihood reads
    precomputed tables) is not an input of the compiled model, and nutpie refuses its name.

    Raises
    ------
    ValueError
        When the compiled model reads none of ``values``: the swap would fit the old data.
    """
    inputs = getattr(compiled, "shared_data", None) or getattr(compiled, "_shared_data", None) or {}
    known = {k: v for k, v in values.items() if k in inputs}
    if not known:
        raise ValueError(f"the compiled model reads none of {sorted(values)} (its inputs: {sorted(inputs)})")
    return compiled.with_data(**known)


def _dim_length(model: pm.Model, dim: str) -> int:
    length = model.dim_lengths[dim]
    return int(length.get_value() if hasattr(length, "get_value") else length.data)


def trace_values(model: pm.Model) -> int:
    """Values per draw in the trace a sampler keeps of ``model``: every free variable on its
    own scale and (at most as many) unconstrained, and every deterministic.

    Sizes come from the variables' dims, else their static shapes, else their shapes
    evaluated at the initial point.

    Examples
    --------
    >>> import pymc as pm
    >>> with pm.Model(coords={"item": range(3)}) as m:
    ...     sd = pm.HalfNormal("sd")
    ...     x = pm.Normal("x", 0, sd, dims="item")
    ...     _ = pm.Deterministic("x2", 2 * x, dims="item")
    >>> trace_values(m)
    11
    """
    sizes, unknown = {}, []
    for var in [*model.free_RVs, *model.deterministics]:
        dims = model.named_vars_to_dims.get(var.name) or ()
        if len(dims) == var.type.ndim and None not in dims:
            sizes[var.name] = int(np.prod([_dim_length(model, d) for d in dims]))
        elif None not in var.type.shape:
            sizes[var.name] = int(np.prod(var.type.shape))
        else:
            unknown.append(var)
    if unknown:
        point = model.initial_point()
        at_values = model.replace_rvs_by_values([v.shape for v in unknown])  # not prior draws
        shapes = pytensor.function(model.value_vars, at_values, on_unused_input="ignore", **ONE_EVALUATION)(
            *(point[v.name] for v in model.value_vars)
        )
        sizes.update({v.name: int(np.prod(s)) for v, s in zip(unknown, shapes, strict=True)})
    return sum(sizes.values()) + sum(sizes[v.name] for v in model.free_RVs)


def check_memory(n_quantities: int, sampler) -> None:
    """Refuse sampler settings whose draws alone would not fit in this machine's memory.

    A trace holds every quantity of every draw of every chain in float64, and the rounds
    keep adding chains: ``rounds x chains x draws x quantities x 8`` bytes, against the
    machine's physical memory.

    Raises
    ------
    SpecError
        Naming ``sampler.draws`` and ``sampler.chains``, with the sizes.
    """
    need = 8.0 * n_quantities * sampler.chains * sampler.draws * sampler.rounds
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise SpecError(
            f"sampler.draws = {sampler.draws} with sampler.chains = {sampler.chains} and "
            f"sampler.rounds = {sampler.rounds}: the draws of {n_quantities:,} quantities would need "
            f"{need / 2**30:,.0f} GiB, more than this machine's {have / 2**30:,.0f} GiB"
        )


class FitInterrupted(KeyboardInterrupt):
    """Sampling stopped before every chain had its draws (Ctrl-C, a signal, a sampler that
    returned a short trace): nothing of the fit may be stored. An interrupt, so that no
    ``except Exception`` on the way up mistakes it for a failure to handle."""


def check_complete(idata: az.InferenceData, chains: int, draws: int) -> None:
    """Raise :class:`FitInterrupted` unless ``idata`` holds ``chains`` x ``draws`` finite draws.

    Samplers that catch an interrupt (nutpie, PyMC) return what they drew so far, padded
    with NaN or with fewer draws; such a trace must never pass for a posterior.
    """
    post = idata.posterior
    got = (int(post.sizes.get("chain", 0)), int(post.sizes.get("draw", 0)))
    if got != (chains, draws):
        raise FitInterrupted(
            f"sampling stopped early: {got[0]} chains x {got[1]} draws of {chains} x {draws}"
        )
    for name, da in post.data_vars.items():
        if da.dtype.kind == "f" and not np.isfinite(da.values).all():
            raise FitInterrupted(f"sampling stopped early: {name} has draws that were never made (NaN)")


def sample_nutpie(compiled, sampler, progress: bool = True, seed: int | None = None):
    """Sample a compiled nutpie model with the spec's sampler settings.

    An interrupt (Ctrl-C) aborts the chains and raises :class:`FitInterrupted`; nutpie on
    its own would return the partial trace.
    """
    import nutpie

    running = nutpie.sample(
        compiled,
        draws=sampler.draws,
        tune=sampler.tune,
        chains=sampler.chains,
        cores=min(sampler.cores, sampler.chains),
        seed=sampler.seed if seed is None else seed,
        target_accept=sampler.target_accept,
        low_rank_modified_mass_matrix=sampler.low_rank,
        progress_bar=progress,
        save_warmup=False,
        blocking=False,
    )
    try:
        idata = running.wait()
    except KeyboardInterrupt:
        running.abort()
        raise FitInterrupted("interrupted (Ctrl-C) while sampling") from None
    except BaseException:
        running.cancel()
        raise
    check_complete(idata, sampler.chains, sampler.draws)
    return idata


def _sampler_for(model: pm.Model, spec: ModelSpec, progress: bool):
    """Compile once; return ``draw(seed, target_accept, draws)`` drawing the spec's chains."""
    s = spec.sampler
    if s.name == "nutpie":
        inputs = s.data_inputs and s.nutpie_backend == "numba"  # XLA gains from constants
        compiled = compile_nutpie(model, s.nutpie_backend, swappable=inputs)
        check_compiled(compiled, model)
        return lambda seed, target_accept, draws: sample_nutpie(
            compiled, replace(s, target_accept=target_accept, draws=draws), progress, seed=seed
        )

    check_initial_point(model)
    if s.name == "numpyro":
        from scsurvey.model import fused_likelihood

        fused_likelihood.register_jax()

    def draw(seed, target_accept, draws):  # PyMC and numpyro compile inside pm.sample
        try:
            idata = _pm_sample(seed, target_accept, draws)
        except KeyboardInterrupt:
            raise FitInterrupted("interrupted (Ctrl-C) while sampling") from None
        check_complete(idata, s.chains, draws)
        return idata

    def _pm_sample(seed, target_accept, draws):
        return pm.sample(
            draws=draws,
            tune=s.tune,
            chains=s.chains,
            cores=min(s.cores, s.chains),
            random_seed=seed,
            target_accept=target_accept,
            nuts_sampler=s.name,
            progressbar=progress,
            model=model,
            compute_convergence_checks=False,
        )

    return draw


def next_round(divergences: int, target_accept: float) -> tuple[str, float]:
    """What the next sampling round does after a fit that is not clean.

    Divergent transitions mark a region the integrator cannot follow at the tuned step
    size; more chains cannot remove them (the count only grows), so the next round starts
    afresh, discarding the divergent chains, with ``target_accept`` halfway to 1 (smaller
    steps). Otherwise the next round adds chains to the ones there are.

    Returns
    -------
    action : {"restart", "add"}
    target_accept : float
    """
    if divergences:
        return "restart", round(1 - (1 - target_accept) / 2, 4)
    return "add", target_accept


# a round lengthens the chains when the R-hat their length allows is above this share of
# the margin: more chains would then average about that R-hat, not below the margin
FLOOR_SHARE = 0.8
LENGTHEN_MAX = 4.0  # at most this many times the previous round's draws per chain


def rhat_floor(chains: int, min_ess_bulk: float) -> float:
    """The R-hat that chains of this length average, however many there are.

    Split R-hat compares each half chain's mean with the others'; the spread of those means
    is set by each half's own effective sample size, so its expectation is about
    ``1 + chains / ESS`` for the quantity of least bulk ESS (measured on AR(1) draws of
    ESS 0.076 per draw, 1,500 per chain: R-hat - 1 averaged 0.0088, 0.0081 and 0.0084 with
    4, 8 and 12 chains, 0.0043 with 4 chains of 3,000; docs/design.md).

    Parameters
    ----------
    chains : int
        Chains in the posterior the ESS was computed on.
    min_ess_bulk : float
        The least bulk ESS over the posterior's quantities.

    Returns
    -------
    float
    """
    return 1.0 + chains / max(float(min_ess_bulk), 1.0)


def plan_round(diag, chains: int, draws: int, target_accept: float, rhat_target: float):
    """What the next sampling round does after a fit that is not clean, or not within the
    margin.

    Divergences: start afresh at a higher ``target_accept`` (:func:`next_round`). An R-hat
    floor (:func:`rhat_floor`) above ``FLOOR_SHARE`` of the margin: start afresh with
    chains long enough to bring the floor to two thirds of the margin (at most
    ``LENGTHEN_MAX`` times as long, in hundreds of draws), since more chains of the same
    length would leave R-hat where it is. Otherwise: add chains, which narrow the noise of
    R-hat around a floor that is within the margin.

    Parameters
    ----------
    diag : Diagnostics
        Of the posterior so far.
    chains : int
        Its chains.
    draws : int
        Draws per chain of the last round.
    target_accept : float
    rhat_target : float
        The margin (``sampler.rhat_target``).

    Returns
    -------
    action : {"restart", "lengthen", "add"}
    target_accept : float
    draws : int
        Draws per chain of the next round.
    """
    if diag.divergences:
        action, target_accept = next_round(diag.divergences, target_accept)
        return action, target_accept, draws
    excess = rhat_floor(chains, diag.min_ess_bulk) - 1.0
    if excess > FLOOR_SHARE * (rhat_target - 1.0):
        factor = min(LENGTHEN_MAX, 1.5 * excess / (rhat_target - 1.0))
        return "lengthen", target_accept, int(np.ceil(draws * factor / 100.0) * 100)
    return "add", target_accept, draws


def merge_chains(first: az.InferenceData, more: az.InferenceData) -> az.InferenceData:
    """``first`` with the chains of ``more`` appended (posterior and, where both have it,
    sample_stats)."""
    out = first.copy()
    for group in ("posterior", "sample_stats"):
        if group not in first.groups() or group not in more.groups():
            continue
        a, b = first[group], more[group]
        b = b.assign_coords(chain=np.arange(a.sizes["chain"], a.sizes["chain"] + b.sizes["chain"]))
        merged = xr.concat([a, b], dim="chain", data_vars="all", coords="minimal", compat="override")
        merged.attrs = a.attrs
        out[group] = merged
    return out


def round_seed(seed: int, round_: int) -> int:
    """The seed of sampling round ``round_`` (0 is the spec's own seed)."""
    return seed if round_ == 0 else seed + 7919 * round_


def frees_python(sampler) -> bool:
    """Whether the sampler runs without Python while it samples (nutpie on Numba: the
    log-density is machine code called from nutpie's threads, which release the GIL), so
    that other Python work can run beside it."""
    return sampler.name == "nutpie" and sampler.nutpie_backend == "numba"


@dataclass
class Judgement:
    """What a stopping rule says of the posterior after a round."""

    settled: bool  # stop here: the rule is met
    verdict: str  # for the round's log line
    record: dict = field(default_factory=dict)  # added to the round's record
    diagnostics: Diagnostics | None = None
    divergences: int = 0


class StoppingRule(Protocol):
    """When sampling rounds stop and what the next round does."""

    def judge(self, idata: az.InferenceData) -> Judgement: ...

    def plan(
        self, judgement: Judgement, chains: int, draws: int, target_accept: float
    ) -> tuple[str, float, int]:
        """``(action, target_accept, draws)`` of the next round; action "add", "restart" or
        "lengthen" (a fresh run with other draws per chain)."""
        ...


@dataclass(frozen=True)
class MarginRule:
    """A reported fit's rule: clean (:func:`diagnose`) with max R-hat within ``rhat_target``;
    the next round from :func:`plan_round`."""

    rhat_target: float

    def judge(self, idata: az.InferenceData) -> Judgement:
        diag = diagnose(idata)
        chains = int(idata.posterior.sizes["chain"])
        settled = diag.ok and diag.max_rhat <= self.rhat_target
        if settled:
            verdict = "clean"
        elif diag.ok:
            verdict = f"clean, but max R-hat {diag.max_rhat:.4f} > the margin {self.rhat_target}"
        else:
            verdict = "not clean: " + "; ".join(diag.failures)
        record = {
            "clean": diag.ok,
            "failures": diag.failures,
            "rhat_floor": rhat_floor(chains, diag.min_ess_bulk),
            "margin": settled,
        }
        return Judgement(settled, verdict, record, diag, diag.divergences)

    def plan(self, judgement: Judgement, chains: int, draws: int, target_accept: float):
        return plan_round(judgement.diagnostics, chains, draws, target_accept, self.rhat_target)


@dataclass
class Rounds:
    """What :func:`sample_in_rounds` returns."""

    idata: az.InferenceData
    rounds: list[dict]  # per round: seed, action, draws, chains, seconds and the rule's record
    last: Judgement
    sample_s: float


def sample_in_rounds(
    draw,
    rule: StoppingRule,
    *,
    chains: int,
    draws: int,
    tune: int,
    target_accept: float,
    seed_of,
    max_rounds: int,
    budget_s: float = float("inf"),
    log=None,
) -> Rounds:
    """Sample in rounds until ``rule`` is met, ``max_rounds`` are done or ``budget_s`` seconds
    of sampling are spent (a round is not started when the last one says it would overrun).

    Parameters
    ----------
    draw : callable
        ``draw(seed, target_accept, draws)`` returns InferenceData of ``chains`` new chains.
    rule : StoppingRule
        Judges the posterior after each round and plans the next (:class:`MarginRule`).
    chains, draws, tune : int
        Of the first round (``tune`` only scales the cost estimate of the next round).
    target_accept : float
    seed_of : callable
        ``seed_of(k)``, the seed of round ``k`` (0-based).
    max_rounds : int
    log : callable, optional
        Receives one line per round.

    Returns
    -------
    Rounds
    """
    log = log or (lambda _line: None)
    t1 = time.perf_counter()
    idata, rounds, action = None, [], "add"
    while True:
        k = len(rounds)
        r0 = time.perf_counter()
        more = draw(seed_of(k), target_accept, draws)
        idata = more if idata is None or action != "add" else merge_chains(idata, more)
        seconds = time.perf_counter() - r0
        judgement = rule.judge(idata)
        total = int(idata.posterior.sizes["chain"])
        rounds.append(
            {
                "round": k + 1,
                "seed": seed_of(k),
                "action": "first" if k == 0 else action,
                **{"target_accept": target_accept, "draws": draws, "chains_added": chains},
                **{"chains_total": total, "seconds": seconds, **judgement.record},
            }
        )
        line = f"{total} chains x {draws} draws in {seconds:.1f} s, {judgement.verdict}"
        log(f"round {k + 1}/{max_rounds}: {line}")
        spent = time.perf_counter() - t1
        if judgement.settled or len(rounds) >= max_rounds:
            break
        action, target_accept, next_draws = rule.plan(judgement, total, draws, target_accept)
        estimate = seconds * (next_draws + tune) / (draws + tune)  # tuning costs the same
        if spent + estimate > budget_s:
            log(f"sampling budget {budget_s:.0f} s would be overrun by another round: stopping")
            break
        log(
            _next_round_line(
                k + 2,
                max_rounds,
                action,
                chains,
                draws,
                next_draws,
                target_accept,
                seed_of(k + 1),
                rounds[-1],
            )
        )
        draws = next_draws
    return Rounds(idata, rounds, judgement, time.perf_counter() - t1)


def _next_round_line(k, max_rounds, action, chains, draws, next_draws, target_accept, seed, last) -> str:
    head = f"round {k}/{max_rounds}: "
    if action == "restart":
        return (
            head
            + f"divergences: a fresh run of {chains} chains at target_accept {target_accept} (seed {seed})"
        )
    if action == "lengthen":
        return head + (
            f"chains of {draws} draws average R-hat about {last['rhat_floor']:.4f} however many "
            f"there are: a fresh run of {chains} chains x {next_draws} draws (seed {seed})"
        )
    return head + f"adding {chains} chains (seed {seed})"


# what a user is told while the model compiles (the figures are docs/performance.md's)
COMPILE_HINT = "a first compile takes one to two minutes on 2 cores, a cached one (.pytensor) seconds"


def _backend_name(s) -> str:
    return f"nutpie ({s.nutpie_backend})" if s.name == "nutpie" else s.name


@dataclass
class SamplingResult:
    """What :func:`sample` returns."""

    idata: az.InferenceData  # posterior and sample_stats, every round's chains
    rounds: list[dict]
    diagnostics: Diagnostics | None  # of the draws returned
    compile_s: float
    sample_s: float
    device: str  # the platform the log-density ran on


def sample(
    model: pm.Model, spec: ModelSpec, progress: bool = True, log=None, on_compiled=None
) -> SamplingResult:
    """Run NUTS with the sampler the spec names, in rounds until the diagnostics pass with margin
    (or, for ``name = "advi"``, the approximate mode of :mod:`scsurvey.inference.approximate`).

    The first round draws the spec's ``chains`` x ``draws``. While the diagnostics fail (see
    :func:`diagnose`), or pass with max R-hat above ``sampler.rhat_target`` (a margin below
    the 1.01 threshold, so that the fit stays clean on another CPU), another round
    (:func:`plan_round`) either adds as many chains, each with its own seed and tuning;
    or, when chains of this length cannot bring R-hat within the margin, starts afresh with
    longer chains; or, after divergences, starts afresh at a higher ``target_accept``;
    until ``sampler.rounds`` rounds are done or ``sampler.budget_s`` seconds of sampling
    are spent (:func:`sample_in_rounds`).

    Parameters
    ----------
    model : pymc.Model
    spec : ModelSpec
    progress : bool
        Show the sampler's progress bar in every round.
    log : callable, optional
        Receives one line per round (default: print to stderr).
    on_compiled : callable, optional
        Called with no arguments once the model is compiled, before the first round: the
        moment to start work in another thread that should run beside sampling (see
        :func:`frees_python`) and not beside compiling, whose PyTensor flags are global.

    Returns
    -------
    SamplingResult
    """
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    s = spec.sampler
    if s.name == "advi":
        check_initial_point(model)
        return _approximate(model, spec, progress, log)
    t0 = time.perf_counter()
    device = use_device(s.device) if uses_jax(s) else "cpu"
    log(f"compiling the model for {_backend_name(s)}: {COMPILE_HINT}")
    draw = _sampler_for(model, spec, progress)
    compile_s = time.perf_counter() - t0
    log(f"compiled in {compile_s:.0f} s; sampling {s.chains} chains x ({s.tune} + {s.draws}) draws")
    if on_compiled is not None:
        on_compiled()
    result = sample_in_rounds(
        draw,
        MarginRule(s.rhat_target),
        chains=s.chains,
        draws=s.draws,
        tune=s.tune,
        target_accept=float(s.target_accept),
        seed_of=lambda k: round_seed(s.seed, k),
        max_rounds=s.rounds,
        budget_s=s.budget_s,
        log=log,
    )
    return SamplingResult(
        result.idata, result.rounds, result.last.diagnostics, compile_s, result.sample_s, device
    )


def _approximate(model: pm.Model, spec: ModelSpec, progress: bool, log) -> SamplingResult:
    """``sampler.name = "advi"``: one fit of the approximation, judged by PSIS (no rounds)."""
    from scsurvey.inference.approximate import LABEL, fit_advi

    s = spec.sampler
    idata, info = fit_advi(model, s.vi_steps, s.draws, s.seed, progress)
    diag = diagnose(idata)
    verdict = "usable" if diag.ok else "NOT usable"
    log(
        f"approximate posterior ({LABEL}): {s.vi_steps} steps in {info['fit_s']:.1f} s, "
        f"PSIS k-hat {info['psis_khat']:.2f} ({info['psis_s']:.1f} s): {verdict}"
    )
    rounds = [
        {
            "round": 1,
            "seed": s.seed,
            "action": "advi",
            "seconds": info["fit_s"],
            "clean": diag.ok,
            "margin": diag.ok,
            "failures": diag.failures,
            **{k: info[k] for k in ("steps", "psis_khat", "elbo")},
        }
    ]
    return SamplingResult(idata, rounds, diag, 0.0, info["fit_s"] + info["psis_s"], "cpu")
