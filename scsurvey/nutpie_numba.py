"""nutpie's Numba backend with its C wrappers cached on disk.

nutpie wraps PyTensor's compiled log-density and expand functions in two ``numba.cfunc``
C callbacks. PyTensor caches its own Numba code on disk, but nutpie's wrappers are closures
that Numba refuses to cache, so every fit recompiled them and, through them, relinked the
whole log-density: most of the compile time of `full` even when PyTensor's cache was warm
(docs/performance.md has the numbers).

Here the two wrappers are written as source keyed by the hash of the PyTensor function
they call (PyTensor's own cache key) and compiled with PyTensor's cache locator, so a
refit of the same model and data loads them from ``<base_compiledir>/numba``. This only
applies to frozen models (data as constants, no shared variables: ``make fit``); anything
else, or a nutpie or PyTensor without the pieces used here, falls back to nutpie's own
wrappers, which give the same posterior and only compile slower.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import numpy as np

WRAPPER_VERSION = "1"  # bump to invalidate cached wrappers after editing the sources below

_LOGP_SRC = """
def logp_numba(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_DIM,))
        logp = numba.carray(logp_, ())
        logp_val, grad = inner(x)
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
"""

_EXPAND_SRC = """
def expand_numba(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM:
        return -1
    if expanded != N_EXPANDED:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_EXPANDED,))
        (values,) = inner(x)
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def _cache_key(kind: str, inner, src: str, *sizes: int) -> str | None:
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    inner_key = CACHED_SRC_FUNCTIONS.get(getattr(inner, "py_func", None))
    if inner_key is None:  # PyTensor did not cache the function itself: nothing to key on
        return None
    text = f"scsurvey-{kind}-{WRAPPER_VERSION}-{inner_key}-{sizes}-{src}"
    return hashlib.sha256(text.encode()).hexdigest()


def _compile_src(src: str, name: str, key: str, **env):
    import numba
    from pytensor.link.numba.cache import compile_numba_function_src

    # __name__: Numba rebuilds a cached function's environment by importing its module
    env = {"__name__": __name__, "numba": numba, "np": np, **env}
    return compile_numba_function_src(src, name, env, cache_key=key)


def _signature(*args):
    import numba

    return numba.types.int64(*args)


@contextmanager
def cached_wrappers():
    """Within the block, nutpie's Numba compilation uses disk-cacheable C wrappers.

    Use with ``nutpie.compile_pymc_model(..., backend="numba", cache=True)`` on a frozen
    model. Wrappers that cannot be keyed (shared variables, or PyTensor did not cache the
    function) are left to nutpie.
    """
    import numba
    import nutpie.compile_pymc as ncp

    stock_logp, stock_expand = ncp._make_c_logp_func, ncp._make_c_expand_func
    t = numba.types

    def logp_func(n_dim, logp_fn, user_data, shared_logp, shared_data):
        key = None if shared_logp else _cache_key("logp", logp_fn, _LOGP_SRC, n_dim)
        if key is None:
            return stock_logp(n_dim, logp_fn, user_data, shared_logp, shared_data)
        fn = _compile_src(_LOGP_SRC, "logp_numba", key, inner=logp_fn, N_DIM=n_dim)
        dbl = t.CPointer(t.double)
        return fn, _signature(t.uint64, dbl, dbl, dbl, t.voidptr)

    def expand_func(n_dim, n_expanded, expand_fn, user_data, shared_vars, shared_data):
        key = None if shared_vars else _cache_key("expand", expand_fn, _EXPAND_SRC, n_dim, n_expanded)
        if key is None:
            return stock_expand(n_dim, n_expanded, expand_fn, user_data, shared_vars, shared_data)
        fn = _compile_src(
            _EXPAND_SRC, "expand_numba", key, inner=expand_fn, N_DIM=n_dim, N_EXPANDED=n_expanded
        )
        dbl = t.CPointer(t.double)
        return fn, _signature(t.uint64, t.uint64, dbl, dbl, t.voidptr)

    ncp._make_c_logp_func, ncp._make_c_expand_func = logp_func, expand_func
    try:
        yield
    finally:
        ncp._make_c_logp_func, ncp._make_c_expand_func = stock_logp, stock_expand


def available() -> bool:
    """Whether the installed nutpie and PyTensor have what :func:`cached_wrappers` uses."""
    try:
        import nutpie.compile_pymc as ncp
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src  # noqa: F401
    except ImportError:
        return False
    return hasattr(ncp, "_make_c_logp_func") and hasattr(ncp, "_make_c_expand_func")
