"""Named models in a project directory: ``models/<name>.toml`` and ``models/<name>/``.

What the CLI and Make use: fit a named spec into ``models/<name>/posterior.nc`` (with
``run.json`` beside it, under a lock), and load a stored posterior, refusing a stale one.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import arviz as az

from .codebook import load_codebook
from .paths import model_paths
from .spec import ModelSpec, load_spec
from .storage import code_hash, read_posterior
from .survey import SurveyData, load_survey


class StalePosteriorError(RuntimeError):
    """A stored posterior no longer matches its spec or data."""


def load_inputs(spec: ModelSpec, root: Path | str = ".") -> SurveyData:
    """The codebook and survey file a spec's ``[inputs]`` name, validated."""
    root = Path(root)
    return load_survey(root / spec.data, load_codebook(root / spec.codebook))


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
    from .api import SurveyModel

    paths = model_paths(name, root)
    changes = dict(overrides or {})
    if sampler:
        changes["name"] = sampler
    model = SurveyModel.from_spec(paths["spec"], root=root)
    idata = model.fit(progress=progress, **changes)
    model.save(paths["posterior"], run_json=paths["run"])
    return idata, model.run


# a warm-up fit: enough draws for every step after sampling to run, nothing more
WARM_SAMPLER = {"draws": 20, "tune": 20, "chains": 1, "rounds": 1, "prior_draws": 20}


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
    from .api import SurveyModel

    t0 = time.perf_counter()
    model = SurveyModel.from_spec(model_paths(name, root)["spec"], root=root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 20 draws fail the diagnostics by design
        model.fit(progress=progress, log=lambda _line: None, **WARM_SAMPLER)
    return {**model.run["timing_s"], "wall_s": time.perf_counter() - t0}


def load_posterior(name: str, root: Path | str = ".", check: bool = True) -> az.InferenceData:
    """Load ``models/<name>/posterior.nc``, refusing one that no longer matches.

    Parameters
    ----------
    name : str
    root : Path or str
    check : bool
        Compare the stored spec and data hashes with the current spec and data file.

    Raises
    ------
    FileNotFoundError
        If the model has not been fitted.
    StalePosteriorError
        If the spec or the data (or codebook) changed since the fit.
    """
    paths = model_paths(name, root)
    if not paths["posterior"].exists():
        raise FileNotFoundError(f"{paths['posterior']}: no posterior; run `make fit MODEL={name}`")
    idata = read_posterior(paths["posterior"])
    if check:
        check_current(idata, load_spec(paths["spec"]), root, paths["posterior"])
    return idata


def check_current(idata, spec: ModelSpec, root, where) -> None:
    """Raise :class:`StalePosteriorError` unless ``idata`` was fitted from this spec and data."""
    attrs = idata.posterior.attrs
    problems = []
    if attrs.get("spec_hash") != spec.hash():
        problems.append(
            f"spec {spec.path} changed (stored {str(attrs.get('spec_hash'))[:12]}, now {spec.hash()[:12]})"
        )
    data = load_inputs(spec, root)
    if attrs.get("data_hash") != data.data_hash:
        problems.append(
            f"data {spec.data} or codebook {spec.codebook} changed (stored "
            f"{str(attrs.get('data_hash'))[:12]}, now {data.data_hash[:12]})"
        )
    if problems:
        raise StalePosteriorError(
            f"{where}: stale posterior: " + "; ".join(problems) + f"; refit with `make fit MODEL={spec.name}`"
        )
    if attrs.get("code_hash") != code_hash():
        print(f"note: {where} was fitted with other model code; make will refit it", file=sys.stderr)
