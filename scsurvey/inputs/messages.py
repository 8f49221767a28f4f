"""How the readers of other people's files name what is wrong: the error they raise and
the values they show in it."""

from __future__ import annotations

import numpy as np

MAX_SHOWN = 8  # offending values listed in an error message


class DataError(ValueError):
    """A survey file violates its codebook; the message names file, column and values."""


def plain(v):
    """A value as a reader wants it: 7 rather than np.float64(7.0)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, tuple):
        return tuple(plain(x) for x in v)
    return v


def shown(values) -> str:
    """At most :data:`MAX_SHOWN` values, as a list a reader can scan."""
    values = [plain(v) for v in values]
    head = ", ".join(repr(v) for v in values[:MAX_SHOWN])
    more = f" and {len(values) - MAX_SHOWN} more" if len(values) > MAX_SHOWN else ""
    return f"[{head}{more}]"


def label(value) -> str:
    """A value as a level label: 3.0 -> '3', 'East' -> 'East'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
