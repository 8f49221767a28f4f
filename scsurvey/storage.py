"""Files: the stamp that ties a posterior to its inputs, atomic writes, a lock per model
directory, and reading a stored posterior with errors that name the file."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import arviz as az
import xarray as xr

from . import dims
from .draws import thin
from .manifest import MODEL_SOURCES
from .spec import ModelSpec
from .survey import SurveyData

LIBRARIES = ("scsurvey", "pymc", "pytensor", "arviz", "nutpie", "numpy", "xarray", "pandas")


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


class StorageError(OSError):
    """A stored posterior cannot be read or written; the message names the file."""


class LockedError(RuntimeError):
    """Another process is fitting the same model."""


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
    (``overrides``) are recorded beside it rather than making the posterior stale. The
    codebook's content is stored too, so that :func:`scsurvey.survey` can rebuild the model.
    """
    attrs = {
        "model_name": spec.name,
        "spec_hash": spec_hash or spec.hash(),
        "sampler_overrides": json.dumps(overrides or {}),
        "data_hash": data.data_hash,
        "content_hash": data.content_hash(),
        "codebook_content": json.dumps(data.codebook.raw or {}, default=str),
        "code_hash": code_hash(),
        "codebook": spec.codebook,
        "data_file": spec.data,
        "link": spec.link,
        "residual": int(spec.components.residual),  # 0: no respondent residual to integrate
        "sampler": spec.sampler.name,
        "seed": spec.sampler.seed,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_time_s": float(sum(timing.values())),
        "versions": json.dumps(versions()),
        "spec": json.dumps(spec.as_dict()),
    }
    for group in idata.groups():
        idata[group].attrs.update(attrs)


FLOAT32_GROUPS = (
    "posterior",
    "prior",
    "log_likelihood",
    "log_likelihood_integrated",
    "scores",
    dims.RESPONDENT_DRAWS,
)


def lean(
    idata: az.InferenceData, unconstrained: set[str], latent: set[str] = frozenset(), max_draws: int = 1000
) -> az.InferenceData:
    """Keep what users read: population-level draws whole, respondent-level draws thinned,
    no sampler coordinates, float32.

    Samplers store each transformed parameter twice (``sigma_g`` and ``sigma_g_log__``); the
    second is the sampler's working coordinate, not a quantity anyone reads. Respondent-level
    variables are most of a file (draws x respondents x batteries): the standardised
    residuals ``latent`` (``z_respondent``) are the sampler's coordinates and are dropped;
    the traits (``theta``) move to the group ``posterior_respondents`` at the draws the
    posterior predictive was thinned to (at most ``max_draws``), enough for person scores
    and fit statistics, which pair each replicate with its own draw. Their posterior means
    and sds over every draw are in the ``scores`` group. float32 keeps seven significant
    digits, far below Monte Carlo error; diagnostics are computed before.
    """
    post = idata.posterior
    respondent_level = [v for v, da in post.data_vars.items() if dims.RESPONDENT in da.dims]
    kept = [v for v in respondent_level if v not in latent and v not in unconstrained]
    if kept:
        if "posterior_predictive" in idata.groups():
            rep = idata.posterior_predictive
            at = {"chain": rep["chain"].values, "draw": rep["draw"].values}
        else:
            at = {"draw": thin(idata, max_draws).posterior["draw"].values}
        idata.add_groups({dims.RESPONDENT_DRAWS: post[kept].sel(at)})
    post = post.drop_vars([v for v in post.data_vars if v in unconstrained or v in respondent_level])
    used = {d for v in post.data_vars.values() for d in v.dims}
    idata.posterior = post.drop_vars([c for c in post.coords if c not in used and c in post.dims])
    if "prior" in idata.groups():  # population-level prior draws; respondents' are recomputable
        prior = idata.prior
        idata.prior = prior.drop_vars([v for v, da in prior.data_vars.items() if dims.RESPONDENT in da.dims])
    for group in FLOAT32_GROUPS:
        if group in idata.groups():
            ds = idata[group]
            idata[group] = ds.assign(
                {k: v.astype("float32") for k, v in ds.data_vars.items() if v.dtype == "float64"}
            )
    return idata


# zlib at level 1 behind HDF5's byte-shuffle filter. On `full`'s file: 3.1 s and 36.9 MB,
# against 4.0 s and 37.4 MB for ArviZ's own (zlib at level 4, no shuffle) and 1.4 s and 55 MB
# uncompressed (docs/performance.md).
COMPRESSION = {"zlib": True, "complevel": 1, "shuffle": True}


def to_netcdf(idata: az.InferenceData, path: Path | str) -> None:
    """Write ``idata`` as ``InferenceData.to_netcdf`` does (a netCDF group per InferenceData
    group, read back by ``az.from_netcdf``), numeric variables compressed with
    :data:`COMPRESSION`, which ArviZ's writer does not let a caller choose."""
    mode = "w"
    if idata.attrs:
        xr.Dataset(attrs=idata.attrs).to_netcdf(path, mode=mode, engine="h5netcdf")
        mode = "a"
    for group in idata.groups():
        ds = idata[group]
        encoding = {name: COMPRESSION for name, v in ds.variables.items() if v.dtype.kind in "biufc"}
        ds.to_netcdf(path, mode=mode, group=group, engine="h5netcdf", encoding=encoding)
        mode = "a"


def write_atomic(idata: az.InferenceData, path: Path) -> None:
    """Write to a temporary file beside ``path`` (:func:`to_netcdf`) and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        to_netcdf(idata, tmp)
        # mkstemp creates the file private (0600); a posterior is as readable as any file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_posterior(path: Path | str) -> az.InferenceData:
    """Read a stored posterior, with an error naming the file when it cannot be read.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    StorageError
        If ``path`` is a directory, or not a readable netCDF file (truncated, say).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no posterior there")
    if path.is_dir():
        raise StorageError(f"{path}: is a directory; give the posterior file (posterior.nc)")
    try:
        return az.from_netcdf(path, engine="h5netcdf")
    except (OSError, ValueError, KeyError) as err:
        raise StorageError(
            f"{path}: not a readable posterior (truncated, or not a netCDF file written by scsurvey): "
            f"{type(err).__name__}: {err}; fit the model again to replace it"
        ) from None


@contextlib.contextmanager
def model_lock(directory: Path | str):
    """Hold an exclusive lock on a model directory for the length of a fit.

    A second fit of the same model fails at once with :class:`LockedError` rather than
    leaving one fit's posterior beside the other's ``run.json``. The lock is an OS file
    lock (``flock``): it goes when the process ends, however it ends.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock_path = directory / ".lock"
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"{directory}: another fit of this model is running (it holds {lock_path}); "
                "wait for it to finish"
            ) from None
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json_atomic(payload: dict, path: Path) -> None:
    """Same as :func:`write_atomic` for a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)
