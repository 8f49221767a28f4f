"""Sample a model, add predictive draws and log-likelihood, stamp and store InferenceData.

One file per fit: ``models/<name>/posterior.nc``, written to a temporary file and renamed,
so a failed fit never replaces a good one; ``models/<name>/run.json`` beside it records the
sampler arguments, wall time and diagnostics. Loading checks the spec and data hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from . import dims
from .codebook import load_codebook
from .load import SurveyData, load_survey
from .model import OBSERVED, BuiltModel, build
from .spec import ModelSpec, load_spec

# Thresholds a fit must meet; a fit that misses any is stored but flagged.
RHAT_MAX = 1.01
ESS_MIN = 400
LIBRARIES = ("scsurvey", "pymc", "pytensor", "arviz", "nutpie", "numpy", "xarray", "pandas")
ALL_COVARIATES = "covariate_all"  # every codebook covariate column (the model may use fewer)
MODEL_SOURCES = (
    "codebook.py",
    "load.py",
    "likelihood.py",
    "priors.py",
    "spec.py",
    "model.py",
    "fit.py",
    "centering.py",
)


class StalePosteriorError(RuntimeError):
    """A stored posterior no longer matches its spec or data."""


@dataclass
class Diagnostics:
    max_rhat: float
    max_rhat_var: str
    min_ess_bulk: float
    min_ess_bulk_var: str
    min_ess_tail: float
    min_ess_tail_var: str
    divergences: int
    min_bfmi: float
    mean_tree_depth: float | None
    mean_step_size: float | None
    mean_leapfrog_steps: float | None
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def versions() -> dict[str, str]:
    """Versions of Python and the libraries a posterior depends on."""
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def code_hash() -> str:
    """SHA-256 of the modules that define the model and its data."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in MODEL_SOURCES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def model_paths(name: str, root: Path | str = ".") -> dict[str, Path]:
    """Where a model's spec and outputs live."""
    root = Path(root)
    out_dir = root / "models" / name
    return {
        "spec": root / "models" / f"{name}.toml",
        "dir": out_dir,
        "posterior": out_dir / "posterior.nc",
        "run": out_dir / "run.json",
    }


def load_inputs(spec: ModelSpec, root: Path | str = ".") -> SurveyData:
    """The codebook and survey file a spec names, validated."""
    root = Path(root)
    codebook = load_codebook(root / spec.codebook)
    return load_survey(root / spec.data, codebook)


def check_initial_point(model: pm.Model) -> None:
    """Fail before sampling if the log-density or its gradient is not finite."""
    point = model.initial_point()
    bad = {k: float(v) for k, v in model.point_logps(point).items() if not np.isfinite(v)}
    if bad:
        raise FloatingPointError(f"log-density not finite at the initial point: {bad}")
    grad = model.compile_dlogp()(point)
    if not np.all(np.isfinite(grad)):
        raise FloatingPointError("gradient of the log-density not finite at the initial point")


def compile_nutpie(model: pm.Model, backend: str = "jax", swappable: bool = False):
    """Compile a model for nutpie.

    Parameters
    ----------
    model : pymc.Model
    backend : {"jax", "numba"}
    swappable : bool
        Keep data containers as inputs so that ``.with_data`` can swap them (SBC). When
        False, data are frozen into compile-time constants, which lets XLA fold work that
        depends on data alone, and (Numba) lets the compiled wrappers be cached on disk
        (`scsurvey.nutpie_numba`).
    """
    import nutpie

    from . import nutpie_numba

    cached = backend == "numba" and not swappable and nutpie_numba.available()
    with nutpie_numba.cached_wrappers() if cached else contextlib.nullcontext():
        return nutpie.compile_pymc_model(
            model,
            backend=backend,
            gradient_backend="pytensor",
            freeze_model=not swappable,
            **({"cache": True} if cached else {}),
        )


def sample_nutpie(compiled, sampler, progress: bool = True, seed: int | None = None):
    """Sample a compiled nutpie model with the spec's sampler settings."""
    import nutpie

    return nutpie.sample(
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
    )


def _sampler_for(model: pm.Model, spec: ModelSpec, progress: bool):
    """Compile once; return ``draw(seed, target_accept)`` drawing the spec's chains."""
    s = spec.sampler
    if s.name == "nutpie":
        compiled = compile_nutpie(model, s.nutpie_backend)
        return lambda seed, target_accept: sample_nutpie(
            compiled, replace(s, target_accept=target_accept), progress, seed=seed
        )

    def draw(seed, target_accept):  # PyMC and numpyro compile inside pm.sample
        return pm.sample(
            draws=s.draws,
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


def sample(
    model: pm.Model, spec: ModelSpec, progress: bool = True, log=None
) -> tuple[az.InferenceData, dict]:
    """Run NUTS with the sampler the spec names, in rounds until the diagnostics pass.

    The first round draws the spec's ``chains`` x ``draws``. While the diagnostics fail (see
    :func:`diagnose`), another round either adds as many chains, each with its own seed and
    tuning, or, after divergences, starts afresh at a higher ``target_accept``
    (:func:`next_round`), until ``sampler.rounds`` rounds are done or ``sampler.budget_s``
    seconds of sampling are spent (a round is not started when the previous one says it
    would overrun).

    Parameters
    ----------
    model : pymc.Model
    spec : ModelSpec
    progress : bool
        Show the sampler's progress bar in every round.
    log : callable, optional
        Receives one line per round (default: print to stderr).

    Returns
    -------
    idata : arviz.InferenceData
        Groups ``posterior`` and ``sample_stats``, every round's chains.
    timing : dict
        ``compile_s``, ``sample_s`` and ``rounds``: per round its seed, chains, seconds
        and what the diagnostics said after it.
    """
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    s = spec.sampler
    t0 = time.perf_counter()
    draw = _sampler_for(model, spec, progress)
    t1 = time.perf_counter()
    idata, rounds, action, target_accept = None, [], "add", float(s.target_accept)
    while True:
        k = len(rounds)
        r0 = time.perf_counter()
        more = draw(round_seed(s.seed, k), target_accept)
        idata = more if idata is None or action == "restart" else merge_chains(idata, more)
        seconds = time.perf_counter() - r0
        diag = diagnose(idata)
        rounds.append(
            {
                "round": k + 1,
                "seed": round_seed(s.seed, k),
                "action": "first" if k == 0 else action,
                "target_accept": target_accept,
                "chains_added": s.chains,
                "chains_total": int(idata.posterior.sizes["chain"]),
                "seconds": seconds,
                "clean": diag.ok,
                "failures": diag.failures,
            }
        )
        verdict = "clean" if diag.ok else "not clean: " + "; ".join(diag.failures)
        log(
            f"round {k + 1}/{s.rounds}: {rounds[-1]['chains_total']} chains x {s.draws} draws "
            f"in {seconds:.1f} s, {verdict}"
        )
        spent = time.perf_counter() - t1
        if diag.ok or len(rounds) >= s.rounds:
            break
        if spent + seconds > s.budget_s:
            log(f"sampling budget {s.budget_s:.0f} s would be overrun by another round: stopping")
            break
        action, target_accept = next_round(diag.divergences, target_accept)
        if action == "restart":
            log(
                f"round {k + 2}/{s.rounds}: divergences: a fresh run of {s.chains} chains at "
                f"target_accept {target_accept} (seed {round_seed(s.seed, k + 1)})"
            )
        else:
            log(f"round {k + 2}/{s.rounds}: adding {s.chains} chains (seed {round_seed(s.seed, k + 1)})")
    t2 = time.perf_counter()
    return idata, {"compile_s": t1 - t0, "sample_s": t2 - t1, "rounds": rounds}


def diagnose(idata: az.InferenceData) -> Diagnostics:
    """Convergence diagnostics over every posterior variable, naming the worst ones."""
    post = idata.posterior
    with warnings.catch_warnings():
        # constant entries (e.g. a correlation matrix diagonal) have undefined R-hat
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(post)
        bulk = az.ess(post, method="bulk")
        tail = az.ess(post, method="tail")

    def extreme(ds, fn):
        best_val, best_var = None, ""
        for name, da in ds.data_vars.items():
            vals = da.values[np.isfinite(da.values)]
            if vals.size == 0:
                continue
            v = float(fn(vals))
            if best_val is None or fn([v, best_val]) == v:
                best_val, best_var = v, name
        return (best_val if best_val is not None else float("nan")), best_var

    max_rhat, rhat_var = extreme(rhat, np.max)
    min_bulk, bulk_var = extreme(bulk, np.min)
    min_tail, tail_var = extreme(tail, np.min)
    stats = idata.sample_stats if "sample_stats" in idata.groups() else xr.Dataset()
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    try:
        bfmi = float(np.min(az.bfmi(idata)))
    except (KeyError, AttributeError, ValueError):
        bfmi = float("nan")

    def mean_of(*names):
        for n in names:
            if n in stats:
                return float(stats[n].mean())
        return None

    failures = []
    if not max_rhat <= RHAT_MAX:
        failures.append(f"max R-hat {max_rhat:.3f} > {RHAT_MAX} ({rhat_var})")
    if not min_bulk >= ESS_MIN:
        failures.append(f"min bulk ESS {min_bulk:.0f} < {ESS_MIN} ({bulk_var})")
    if not min_tail >= ESS_MIN:
        failures.append(f"min tail ESS {min_tail:.0f} < {ESS_MIN} ({tail_var})")
    if divergences:
        failures.append(f"{divergences} divergent transitions")
    if np.isfinite(bfmi) and bfmi < 0.3:
        failures.append(f"min BFMI {bfmi:.2f} < 0.3")
    return Diagnostics(
        max_rhat=max_rhat,
        max_rhat_var=rhat_var,
        min_ess_bulk=min_bulk,
        min_ess_bulk_var=bulk_var,
        min_ess_tail=min_tail,
        min_ess_tail_var=tail_var,
        divergences=divergences,
        min_bfmi=bfmi,
        mean_tree_depth=mean_of("depth", "tree_depth"),
        mean_step_size=mean_of("step_size", "step_size_bar"),
        mean_leapfrog_steps=mean_of("n_steps"),
        failures=failures,
    )


def respondent_log_likelihood(idata: az.InferenceData, model: pm.Model) -> xr.Dataset:
    """Log-likelihood per respondent (summed over items) for leave-one-respondent-out LOO."""
    cell = pm.compute_log_likelihood(
        idata, model=model, var_names=[OBSERVED], extend_inferencedata=False, progressbar=False
    )
    return xr.Dataset({OBSERVED: cell[OBSERVED].sum(dims.ITEM)})


def _as_int8(ds: xr.Dataset) -> xr.Dataset:
    return ds.assign({OBSERVED: ds[OBSERVED].astype(np.int8)})


def with_model_data(idata: az.InferenceData, model: pm.Model) -> az.InferenceData:
    """The posterior with the model's data containers as ``constant_data``.

    PyMC redraws from the prior every variable that depends on a data container missing
    from the trace's ``constant_data`` (it takes the data to have changed); the gaps' centring
    weight is such a container, so without this the posterior predictive would redraw them.
    """
    values = {v.name: np.asarray(v.get_value()) for v in model.data_vars}
    constant = xr.Dataset({k: ([f"{k}_dim_{i}" for i in range(v.ndim)], v) for k, v in values.items()})
    return az.InferenceData(posterior=idata.posterior, constant_data=constant)


def add_predictive(idata, built: BuiltModel, data: SurveyData, spec: ModelSpec, progress=True):
    """Add prior, prior predictive, posterior predictive, log-likelihood and data groups."""
    model = built.model
    seed = spec.sampler.seed
    with model:
        prior = pm.sample_prior_predictive(draws=spec.output.prior_draws, random_seed=seed + 1)
        post_pred = pm.sample_posterior_predictive(
            with_model_data(idata, model),
            var_names=[OBSERVED],
            random_seed=seed + 2,
            progressbar=progress,
            extend_inferencedata=False,
        )
    idata.add_groups(
        prior=prior.prior,
        prior_predictive=_as_int8(prior.prior_predictive),
        posterior_predictive=_as_int8(post_pred.posterior_predictive),
        log_likelihood=respondent_log_likelihood(idata, model),
    )
    for name in ("observed_data", "constant_data"):  # nutpie and PyMC write their own
        if name in idata.groups():
            del idata[name]
    coords = data.coords()
    observed = xr.Dataset(
        {OBSERVED: ((dims.RESPONDENT, dims.ITEM), data.responses)},
        coords={dims.RESPONDENT: coords[dims.RESPONDENT], dims.ITEM: coords[dims.ITEM]},
    )
    idata.add_groups(observed_data=observed, constant_data=survey_constants(data))
    return idata


def survey_constants(data: SurveyData) -> xr.Dataset:
    """What checks and summaries need to read a posterior without the codebook or data.

    Covariates (standardised, with their centres and scales), group indices with their
    level labels as coordinates, the battery of each item and the support categories.
    """
    cb = data.codebook
    coords = data.coords()
    constant = {
        "X": ((dims.RESPONDENT, ALL_COVARIATES), data.X),
        "covariate_center": ((ALL_COVARIATES,), data.covariate_center),
        "covariate_scale": ((ALL_COVARIATES,), data.covariate_scale),
        "battery_of_item": ((dims.ITEM,), np.array([i.battery for i in cb.items])),
        "support": ((dims.CATEGORY,), np.array(cb.scale.support_mask)),
        "category_code": ((dims.CATEGORY,), np.asarray(cb.scale.codes)),
    }
    out_coords = {
        dims.RESPONDENT: coords[dims.RESPONDENT],
        dims.ITEM: coords[dims.ITEM],
        dims.CATEGORY: coords[dims.CATEGORY],
        ALL_COVARIATES: data.covariate_names,
    }
    for g in cb.groups:
        constant[f"index_{g.id}"] = ((dims.RESPONDENT,), data.groups[g.id])
        out_coords[g.id] = list(g.levels)
    return xr.Dataset(constant, coords=out_coords)


def stamp(
    idata,
    spec: ModelSpec,
    data: SurveyData,
    timing: dict,
    spec_hash: str | None = None,
    overrides: dict | None = None,
) -> None:
    """Attributes that tie a posterior to its spec, data, code and libraries.

    ``spec_hash`` is the hash of the spec file; sampler settings overridden for this run
    (``overrides``) are recorded beside it rather than making the posterior stale.
    """
    attrs = {
        "model_name": spec.name,
        "spec_hash": spec_hash or spec.hash(),
        "sampler_overrides": json.dumps(overrides or {}),
        "data_hash": data.data_hash,
        "code_hash": code_hash(),
        "codebook": spec.codebook,
        "data_file": spec.data,
        "link": spec.link,
        "sampler": spec.sampler.name,
        "seed": spec.sampler.seed,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_time_s": float(sum(timing.values())),
        "versions": json.dumps(versions()),
        "spec": json.dumps(spec.as_dict()),
    }
    for group in idata.groups():
        idata[group].attrs.update(attrs)


def write_atomic(idata: az.InferenceData, path: Path) -> None:
    """Write to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        idata.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(payload: dict, path: Path) -> None:
    """Same as :func:`write_atomic` for a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def fit(
    name: str,
    root: Path | str = ".",
    sampler: str | None = None,
    progress: bool = True,
    overrides: dict | None = None,
) -> tuple[az.InferenceData, dict]:
    """Fit model ``name`` and store ``models/<name>/posterior.nc`` and ``run.json``.

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
        Sampler settings overriding the spec's (draws, tune, chains, seed, ...).

    Returns
    -------
    idata : arviz.InferenceData
    run : dict
        What run.json records.
    """
    paths = model_paths(name, root)
    file_spec = spec = load_spec(paths["spec"])
    changes = dict(overrides or {})
    if sampler:
        changes["name"] = sampler
    if changes:
        spec = spec.replace(sampler=changes)
    data = load_inputs(spec, root)
    built = build(spec, data)
    check_initial_point(built.model)
    t0 = time.perf_counter()
    idata, timing = sample(built.model, spec, progress)
    rounds = timing.pop("rounds")
    t1 = time.perf_counter()
    add_predictive(idata, built, data, spec, progress)
    timing["predictive_s"] = time.perf_counter() - t1
    diag = diagnose(idata)
    stamp(idata, spec, data, timing, spec_hash=file_spec.hash(), overrides=changes)
    for group in idata.groups():
        idata[group].attrs["diagnostics_ok"] = int(diag.ok)
        idata[group].attrs["diagnostics"] = json.dumps(asdict(diag))
        idata[group].attrs["centering"] = json.dumps(built.centering.as_dict())
        idata[group].attrs["sampling_rounds"] = len(rounds)
    write_atomic(idata, paths["posterior"])
    n_params = int(
        sum(v.size // (v.sizes["chain"] * v.sizes["draw"]) for v in idata.posterior.data_vars.values())
    )
    run = {
        "model": name,
        "spec_hash": file_spec.hash(),
        "sampler_overrides": changes,
        "data_hash": data.data_hash,
        "sampler": asdict(spec.sampler),
        "wall_time_s": time.perf_counter() - t0,
        "timing_s": timing,
        "n_respondents": data.n_respondents,
        "n_items": len(data.codebook.items),
        "n_posterior_quantities": n_params,
        "ess_per_second": diag.min_ess_bulk / (timing["compile_s"] + timing["sample_s"]),
        "diagnostics": asdict(diag),
        "diagnostics_ok": diag.ok,
        "centering": built.centering.as_dict(),
        "rounds": rounds,
        "versions": versions(),
    }
    write_json_atomic(run, paths["run"])
    return idata, run


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
    idata = az.from_netcdf(paths["posterior"])
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
