"""The one TOML reader and key checker of codebooks, specs and twin settings."""

from __future__ import annotations

import tomllib
from pathlib import Path


def read_toml(path: Path | str, error: type[Exception], what: str) -> dict:
    """Read a TOML file, raising ``error`` with a message naming ``what`` and the path.

    Parameters
    ----------
    path : Path or str
    error : Exception type
        Raised when the file is missing, is a directory or is not valid TOML.
    what : str
        What the file is ("codebook", "model spec", ...).

    Examples
    --------
    >>> read_toml("no/such.toml", ValueError, "model spec")
    Traceback (most recent call last):
    ...
    ValueError: model spec no/such.toml: file not found
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path}: file not found")
    if path.is_dir():
        raise error(f"{what} {path}: is a directory, not a TOML file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise error(f"{what} {path}: not valid TOML: {err}") from err


def check_keys(table: dict, allowed, where: str, error: type[Exception], prefix: str = "") -> None:
    """Raise ``error`` naming ``where`` and every key of ``table`` not in ``allowed``.

    Examples
    --------
    >>> check_keys({"draws": 1, "draw": 2}, {"draws"}, "models/x.toml", ValueError, "sampler.")
    Traceback (most recent call last):
    ...
    ValueError: models/x.toml: unknown keys ['sampler.draw'] (allowed: ['draws'])
    """
    if not isinstance(table, dict):
        raise error(f"{where}: {prefix.rstrip('.') or 'value'} must be a table, got {table!r}")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise error(f"{where}: unknown keys {[prefix + k for k in unknown]} (allowed: {sorted(allowed)})")
