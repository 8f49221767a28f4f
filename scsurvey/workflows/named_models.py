"""Named models in a project directory: ``models/<name>.toml`` and ``models/<name>/``.

What the CLI and Make use: fit a named spec into ``models/<name>/posterior.nc`` (with
``run.json`` beside it, under a lock), or compile it into the caches without storing a fit.
Reading one back is :func:`scsurvey.storage.reader.load_posterior`.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import arviz as az

from scsurvey.core.defaults import WARM_SAMPLER
from scsurvey.core.paths import model_paths
from scsurvey.storage.files import model_lock
from scsurvey.surveymodel import SurveyModel


def fit(
    name: str,
    root: Path | str = ".",
    sampler: str | None = None,
    progress: bool = True,
    overrides: dict | None = None,
) -> tuple[az.InferenceData, dict]:
    """Fit model ``name`` and store ``models/<name>/posterior.nc`` and ``run.json``.

    The posterior is written to a temporary file and renamed, so a failed fit never
    replaces a good one; a second fit of the same model while one runs is refused.

    Parameters
    ----------
    name : str
        Spec name: ``models/<name>.toml``.
    root : Path or str
        Project root.
    sampler : str, optional
        Override the spec's sampler (nutpie, pymc, numpyro).
    progress : bool
        Show progress bars.
    overrides : dict, optional
        Sampler settings overriding the spec's (draws, tune, chains, seed, ...); recorded
        in the stamp and in run.json.

    Returns
    -------
    idata : arviz.InferenceData
    run : dict
        What run.json records.
    """
    paths = model_paths(name, root)
    changes = dict(overrides or {})
    if sampler:
        changes["name"] = sampler
    # the lock is held from before the inputs are read until the file is in place: a second
    # fit of the model fails at once instead of sampling in full and overwriting this one
    with model_lock(paths["dir"]):
        model = SurveyModel.from_spec(paths["spec"], root=root)
        idata = model.fit(progress=progress, **changes)
        model.save(paths["posterior"], run_json=paths["run"], lock=False)
    return idata, model.run


def warm(name: str, root: Path | str = ".", progress: bool = False) -> dict:
    """Compile model ``name`` for its data into the on-disk caches, storing no posterior.

    Runs the fit's every step on a few draws: the sampler's compiled log-density (PyTensor's
    and nutpie's caches, keyed by the model's structure and sizes) and the Numba kernels of
    the predictive draws and the integrated likelihood. A later ``fit`` of the same spec
    and data file, or of new data of the same sizes, finds them compiled. ``make setup``
    runs it, as rstanarm compiles its models when it is installed.

    Parameters
    ----------
    name : str
        Spec name: ``models/<name>.toml``.
    root : Path or str
        Project root.
    progress : bool
        Show the sampler's progress bar.

    Returns
    -------
    dict
        The warm-up fit's timings (``compile_s``, ``sample_s``, ``predictive_s``,
        ``integrated_s``) and its wall time (``wall_s``).
    """
    t0 = time.perf_counter()
    model = SurveyModel.from_spec(model_paths(name, root)["spec"], root=root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 20 draws fail the diagnostics by design
        model.fit(progress=progress, log=lambda _line: None, **WARM_SAMPLER)
    return {**model.run["timing_s"], "wall_s": time.perf_counter() - t0}
