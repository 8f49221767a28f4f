"""Reading a stored posterior: the one way in. The file is read whole and checked (a
truncated file or a corrupt chunk fails here, naming the file, not in a later read), and,
given the spec it was fitted from, refused when the spec or data changed since."""

from __future__ import annotations

import sys
from pathlib import Path

import arviz as az

from scsurvey.core.paths import model_paths
from scsurvey.core.sources import code_hash
from scsurvey.model.spec import ModelSpec, load_inputs, load_spec
from scsurvey.storage.files import StorageError


class StalePosteriorError(RuntimeError):
    """A stored posterior no longer matches its spec or data."""


# what every posterior scsurvey writes carries in its posterior group's attributes
STAMP_KEYS = ("model_name", "spec_hash", "data_hash", "code_hash")


def read_posterior(path: Path | str) -> az.InferenceData:
    """Read a stored posterior, with an error naming the file when it cannot be read.

    The file is read whole, not lazily: a corrupt chunk (its HDF5 checksum fails, or it does
    not decompress) is found here rather than by a later read far from the file's name.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    StorageError
        If ``path`` is a directory, not a readable netCDF file (truncated, say), has a corrupt
        chunk, or is netCDF but not a posterior written by scsurvey.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no posterior there")
    if path.is_dir():
        raise StorageError(f"{path}: is a directory; give the posterior file (posterior.nc)")
    try:
        idata = az.from_netcdf(path, engine="h5netcdf")
        for group in idata.groups():
            idata[group].load()
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise StorageError(
            f"{path}: not a readable posterior (truncated, corrupt, or not a netCDF file written by "
            f"scsurvey): {type(err).__name__}: {str(err)[:200]}; fit the model again to replace it"
        ) from None
    missing = [a for a in STAMP_KEYS if "posterior" not in idata.groups() or a not in idata.posterior.attrs]
    if missing:
        raise StorageError(
            f"{path}: a netCDF file, but not a posterior written by scsurvey (it lacks "
            f"{'the posterior group' if 'posterior' not in idata.groups() else missing}); "
            "fit the model again to replace it"
        )
    return idata


def open_posterior(
    path: Path | str, spec: ModelSpec | None = None, root: Path | str = "."
) -> az.InferenceData:
    """Read a stored posterior and, given its spec, refuse it when it is stale.

    Parameters
    ----------
    path : Path or str
        The posterior file.
    spec : ModelSpec, optional
        The spec it should have been fitted from; its inputs are read relative to ``root``.
    root : Path or str
        The project root.

    Raises
    ------
    FileNotFoundError, StorageError
        As :func:`read_posterior`.
    StalePosteriorError
        If the spec, the data or the codebook changed since the fit.
    """
    idata = read_posterior(path)
    if spec is not None:
        check_current(idata, spec, root, path)
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
    return open_posterior(paths["posterior"], load_spec(paths["spec"]) if check else None, root)
