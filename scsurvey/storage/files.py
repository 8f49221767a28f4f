"""Files: atomic writes of posteriors and run records, a lock per model directory, and
reading a stored posterior with errors that name the file."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

import arviz as az
import xarray as xr


class StorageError(OSError):
    """A stored posterior cannot be read or written; the message names the file."""


class LockedError(RuntimeError):
    """Another process is fitting the same model."""


# zlib at level 1 behind HDF5's byte-shuffle filter: about as small as ArviZ's own level 4
# and faster to write (docs/performance.md); a Fletcher-32 checksum per chunk, so that a
# corrupt chunk fails on reading instead of passing as numbers
COMPRESSION = {"zlib": True, "complevel": 1, "shuffle": True, "fletcher32": True}


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
