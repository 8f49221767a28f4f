"""Where a named model's spec and outputs live: plain paths, importable without PyMC or
ArviZ, so that the command line's light commands (``status``, ``deps``) start at once."""

from __future__ import annotations

from pathlib import Path


def model_paths(name: str, root: Path | str = ".") -> dict[str, Path]:
    """Where a model's spec and outputs live.

    Parameters
    ----------
    name : str
        Spec name: ``models/<name>.toml``.
    root : Path or str
        Project root.

    Returns
    -------
    dict
        ``spec``, ``dir``, ``posterior`` and ``run`` paths.
    """
    root = Path(root)
    out_dir = root / "models" / name
    return {
        "spec": root / "models" / f"{name}.toml",
        "dir": out_dir,
        "posterior": out_dir / "posterior.nc",
        "run": out_dir / "run.json",
    }


def known_models(root: Path | str = ".") -> list[str]:
    """The model specs in ``<root>/models``."""
    return sorted(p.stem for p in (Path(root) / "models").glob("*.toml"))
