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
