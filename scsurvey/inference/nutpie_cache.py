"""nutpie's Numba backend with its C wrappers cached on disk.

nutpie wraps PyTensor's compiled log-density and expand functions in two ``numba.cfunc``
C callbacks. PyTensor caches its own Numba code on disk, but nutpie's wrappers are closures
that Numba refuses to cache, so every fit recompiled them and, through them, relinked the
whole log-density: most of the compile time of `full` even when PyTensor's cache was warm
(docs/performance.md has the numbers).

Here the two wrappers are written as source keyed by the hash of the PyTensor function
they call (PyTensor's own cache key) and compiled with PyTensor's cache locator, so a
refit loads them from ``<base_compiledir>/numba``. With the data as inputs (shared
variables, the default of ``make fit``), the key holds the model's structure and sizes but
not the data values: the wrappers read each data array's address and shape from nutpie's
user-data record at run time, so new answers of the same shape (a corrected file, another
seed of the twin, an SBC simulation) reuse both the PyTensor function and the wrappers.
Anything the key cannot cover, or a nutpie or PyTensor without the pieces used here, falls
back to nutpie's own wrappers, which give the same posterior and only compile slower.

Each wrapper takes PyTensor's function into its own body (Numba's ``inline="always"``)
rather than calling it. Called, the function is a Numba library of its own: PyTensor's
graph function and the cache shim around it were each optimised and turned into machine
code with every node's code linked in, and then the wrapper did it a third time. Inlined,
the whole log-density is optimised and emitted once, in the wrapper (docs/performance.md).
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import numpy as np

WRAPPER_VERSION = "3"  # bump to invalidate cached wrappers after editing the sources below

_LOGP_SRC = """
def logp_numba(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
{unpack}        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_DIM,))
        logp = numba.carray(logp_, ())
        logp_val, grad = inner(x{shared})
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
{unpack}        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_EXPANDED,))
        (values,) = inner(x{shared})
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def _fill(src: str, names, user_data, shared_data) -> str:
    """The wrapper source, unpacking the shared arrays ``names`` from nutpie's user data.

    nutpie's user-data record holds, per shared variable, its address, size and shape as
    8-byte words; the generated lines read them by word offset, so the source depends on
    the variables' names, ranks and dtypes but not on their values or sizes.
    """
    if not names:
        return src.replace("{unpack}", "").replace("{shared}", "")
    record = user_data.dtype
    if record.itemsize % 8:
        raise ValueError("nutpie's user-data record is not made of 8-byte words")
    shared = record["shared"]
    base = record.fields["shared"][1]

    def word(part: str, name: str) -> int:
        offset = base + shared.fields[part][1] + shared[part].fields[name][1]
        if offset % 8:
            raise ValueError(f"user-data field {part}/{name} is not word-aligned")
        return offset // 8

    lines = [f"        u = numba.carray(user_data_, ({record.itemsize // 8},), np.uint64)\n"]
    for k, name in enumerate(names):
        value = shared_data[name]
        kind = "bool_" if value.dtype == np.bool_ else value.dtype.name
        start = word("shape", name)
        shape = "".join(f"int(u[{start + d}]), " for d in range(value.ndim))
        lines.append(
            f"        s{k} = numba.carray(address_as_void_pointer(u[{word('data', name)}]), "
            f"({shape}), np.{kind})\n"
        )
    args = "".join(f", s{k}" for k in range(len(names)))
    return src.replace("{unpack}", "".join(lines)).replace("{shared}", args)


def _cache_key(kind: str, inner, src: str, *sizes: int) -> str | None:
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    inner_key = CACHED_SRC_FUNCTIONS.get(getattr(inner, "py_func", None))
    if inner_key is None:  # PyTensor did not cache the function itself: nothing to key on
        return None
    text = f"scsurvey-{kind}-{WRAPPER_VERSION}-{inner_key}-{sizes}-{src}"
    return hashlib.sha256(text.encode()).hexdigest()


def inlined(inner):
    """PyTensor's graph function behind ``inner``, to be inlined into the caller's body.

    ``inner`` is what PyTensor's Numba linker returns: with its cache on, a shim
    ``def f(*args): return jitable_func(*args)`` around the graph function. Numba cannot
    inline a function of ``*args``, so the graph function itself is taken; when the shape is
    not that (another PyTensor), ``inner`` is returned and called as before.

    Parameters
    ----------
    inner : numba dispatcher
        The compiled PyTensor function's ``vm.jit_fn``.

    Returns
    -------
    numba dispatcher
        The graph function marked ``inline="always"``, or ``inner`` itself.
    """
    import inspect

    import numba

    graph = getattr(inner, "py_func", None)
    graph = getattr(graph, "__globals__", {}).get("jitable_func", inner)
    py_func = getattr(graph, "py_func", None)
    if py_func is None:
        return inner
    params = inspect.signature(py_func).parameters.values()
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return inner
    # never compiled on its own: its IR is compiled under the caller's options
    return numba.njit(inline="always", no_cpython_wrapper=True, no_cfunc_wrapper=True)(py_func)


def _compile_src(src: str, name: str, key: str, **env):
    import numba
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import compile_numba_function_src

    # __name__: Numba rebuilds a cached function's environment by importing its module
    env = {
        "__name__": __name__,
        "numba": numba,
        "np": np,
        "address_as_void_pointer": address_as_void_pointer,
        **env,
    }
    return compile_numba_function_src(src, name, env, cache_key=key)


def _signature(*args):
    import numba

    return numba.types.int64(*args)


@contextmanager
def cached_wrappers():
    """Within the block, nutpie's Numba compilation uses disk-cacheable C wrappers.

    Use with ``nutpie.compile_pymc_model(..., backend="numba", cache=True)``, frozen or with
    the data as shared inputs. Wrappers that cannot be keyed (PyTensor did not cache the
    function, or the user-data record has an unexpected layout) are left to nutpie.
    """
    import numba
    import nutpie.compile_pymc as ncp

    stock_logp, stock_expand = ncp._make_c_logp_func, ncp._make_c_expand_func
    t = numba.types
    dbl = t.CPointer(t.double)

    def source(template, names, user_data, shared_data):
        try:
            return _fill(template, list(names), user_data, shared_data)
        except (KeyError, ValueError, TypeError):
            return None

    def logp_func(n_dim, logp_fn, user_data, shared_logp, shared_data):
        src = source(_LOGP_SRC, shared_logp, user_data, shared_data)
        key = src and _cache_key("logp", logp_fn, src, n_dim)
        if key is None:
            return stock_logp(n_dim, logp_fn, user_data, shared_logp, shared_data)
        fn = _compile_src(src, "logp_numba", key, inner=inlined(logp_fn), N_DIM=n_dim)
        return fn, _signature(t.uint64, dbl, dbl, dbl, t.voidptr)

    def expand_func(n_dim, n_expanded, expand_fn, user_data, shared_vars, shared_data):
        src = source(_EXPAND_SRC, shared_vars, user_data, shared_data)
        key = src and _cache_key("expand", expand_fn, src, n_dim, n_expanded)
        if key is None:
            return stock_expand(n_dim, n_expanded, expand_fn, user_data, shared_vars, shared_data)
        fn = _compile_src(
            src, "expand_numba", key, inner=inlined(expand_fn), N_DIM=n_dim, N_EXPANDED=n_expanded
        )
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
        from nutpie.compile_pymc import address_as_void_pointer  # noqa: F401
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src  # noqa: F401
    except ImportError:
        return False
    return hasattr(ncp, "_make_c_logp_func") and hasattr(ncp, "_make_c_expand_func")
