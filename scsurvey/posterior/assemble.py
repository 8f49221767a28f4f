"""One fit, in memory: build the model, sample until clean, add predictive draws and the
log-likelihood, diagnose and stamp. Files are :mod:`scsurvey.storage.files`'s job."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import arviz as az

from scsurvey.core import dims
from scsurvey.inference.diagnostics import diagnose
from scsurvey.inference.rounds import check_memory, frees_python, sample, trace_values
from scsurvey.inputs.survey import SurveyData
from scsurvey.model.graph import BuiltModel, build
from scsurvey.model.spec import ModelSpec
from scsurvey.posterior.integrated_likelihood import INTEGRATED_DRAWS, add_integrated, compile_kernels
from scsurvey.posterior.item_person_fit import SCORES, scores
from scsurvey.posterior.predictive import add_predictive, predictive_draws, prior_draws
from scsurvey.posterior.stamp import lean, stamp, versions


def _without_respondents(post):
    post = post.drop_vars([v for v, da in post.data_vars.items() if dims.RESPONDENT in da.dims])
    return post.drop_vars([c for c in post.coords if c == dims.RESPONDENT])


def _timed(fn, *args):
    t0 = time.perf_counter()
    return fn(*args), time.perf_counter() - t0


def fit_survey(
    spec: ModelSpec,
    data: SurveyData,
    progress: bool = True,
    log=None,
    spec_hash: str | None = None,
    overrides: dict | None = None,
    built: BuiltModel | None = None,
) -> tuple[az.InferenceData, dict]:
    """Fit ``spec`` to ``data``: sampling, predictive draws, log-likelihood, diagnostics, stamp.

    Parameters
    ----------
    spec : ModelSpec
    data : SurveyData
    progress : bool
        Show the sampler's progress bars.
    log : callable, optional
        Receives one line per sampling round (default: stderr).
    spec_hash : str, optional
        The hash of the spec file when sampler settings were overridden for this run.
    overrides : dict, optional
        The sampler settings overridden, recorded in the stamp.
    built : BuiltModel, optional
        The model already built from ``spec`` and ``data``.

    Returns
    -------
    idata : arviz.InferenceData
        Groups posterior, sample_stats, prior, prior_predictive, posterior_predictive,
        log_likelihood (per respondent, conditional on their latent traits),
        log_likelihood_integrated (traits integrated out, on thinned draws, with each
        answer's predictive given the respondent's others), observed_data and
        constant_data, with the stamp
        and the diagnostics in every group's attributes.
    run : dict
        What ``run.json`` records: sampler settings, timings, rounds, diagnostics, centring.
    """
    built = built or build(spec, data)
    check_memory(trace_values(built.sampled), spec.sampler)
    t0 = time.perf_counter()
    sampled, prior, beside_s = _sample_with_prior(built, data, spec, progress, log)
    idata, diag = sampled.idata, sampled.diagnostics
    timing = {"compile_s": sampled.compile_s, "sample_s": sampled.sample_s}
    t1 = time.perf_counter()
    if built.sampling_model is not None:  # its respondents are the distinct ones: drop theirs
        idata.posterior = _without_respondents(idata.posterior)
        diag = None
    # what the steps below read from the posterior before the full stamp is written
    idata.posterior.attrs.update(link=spec.link, residual=int(spec.components.residual))
    add_predictive(idata, built, data, spec, prior=prior)
    t2 = time.perf_counter()
    timing["predictive_s"] = t2 - t1
    add_integrated(idata, min(INTEGRATED_DRAWS, predictive_draws(data.responses.size)))
    idata.add_groups({SCORES: scores(idata)})
    timing["integrated_s"] = time.perf_counter() - t2
    diag = diag or diagnose(idata)  # the last round's, when the posterior is the one it judged
    model = built.model
    latent = {v.name for v in model.free_RVs if dims.RESPONDENT in model.named_vars_to_dims.get(v.name, ())}
    lean(idata, {v.name for v in model.value_vars} - {v.name for v in model.free_RVs}, latent)
    stamp(idata, spec, data, timing, spec_hash=spec_hash, overrides=overrides)
    _stamp_fit(idata, diag, built, sampled)
    run = _run_record(spec, data, idata, diag, built, sampled, timing, spec_hash, overrides, beside_s)
    run["wall_time_s"] = time.perf_counter() - t0
    return idata, run


def _sample_with_prior(built: BuiltModel, data: SurveyData, spec: ModelSpec, progress: bool, log):
    """Sample; the prior draws and the compile of the kernels that run after sampling need no
    posterior, so with a sampler that frees Python they run in a thread while it samples.

    Returns the :class:`SamplingResult`, the prior draws (None when not drawn beside) and the
    seconds the kernels and the prior took beside sampling (None, None when not).
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = []

        def start_beside():
            pending.append(pool.submit(_timed, compile_kernels))
            pending.append(pool.submit(_timed, prior_draws, built, data, spec))

        beside = start_beside if frees_python(spec.sampler) else None
        sampled = sample(built.sampled, spec, progress, log=log, on_compiled=beside)
        (_, kernels_s), (prior, prior_s) = [p.result() for p in pending] or [(None, None)] * 2
    return sampled, prior, (kernels_s, prior_s)


def _stamp_fit(idata, diag, built: BuiltModel, sampled) -> None:
    """The fit's verdict, centring and rounds in every group's attributes."""
    for group in idata.groups():
        idata[group].attrs["diagnostics_ok"] = int(diag.ok)
        idata[group].attrs["diagnostics"] = json.dumps(asdict(diag))
        idata[group].attrs["centering"] = json.dumps(built.centering.as_dict())
        idata[group].attrs["sampling_rounds"] = len(sampled.rounds)
        idata[group].attrs["device"] = sampled.device


def _run_record(spec, data, idata, diag, built, sampled, timing, spec_hash, overrides, beside_s) -> dict:
    """What ``run.json`` records of a fit."""
    n_params = int(
        sum(v.size // (v.sizes["chain"] * v.sizes["draw"]) for v in idata.posterior.data_vars.values())
    )
    kernels_s, prior_s = beside_s
    return {
        "model": spec.name,
        "spec_hash": spec_hash or spec.hash(),
        "sampler_overrides": dict(overrides or {}),
        "data_hash": data.data_hash,
        "sampler": asdict(spec.sampler),
        "device": sampled.device,
        "wall_time_s": None,
        "timing_s": timing,
        "n_respondents": data.n_respondents,
        "n_items": len(data.codebook.items),
        "n_posterior_quantities": n_params,
        "ess_per_second": diag.min_ess_bulk / (timing["compile_s"] + timing["sample_s"]),
        "diagnostics": asdict(diag),
        "diagnostics_ok": diag.ok,
        "centering": built.centering.as_dict(),
        "rounds": sampled.rounds,
        # seconds spent beside sampling (null: after it, in predictive_s and integrated_s)
        "prior_beside_sampling_s": prior_s,
        "kernels_beside_sampling_s": kernels_s,
        "versions": versions(),
    }
