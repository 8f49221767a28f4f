"""nutpie's Numba C wrappers, cached on disk: same log-density and gradient as the model."""

import ctypes
import inspect

import numpy as np
import pymc as pm
import pytest
from pymc.model.transform.optimization import freeze_dims_and_data

from scsurvey.inference import nutpie_cache
from scsurvey.inference.rounds import ONE_EVALUATION, compile_nutpie


def test_the_pinned_nutpie_and_pytensor_have_what_the_cache_uses():
    # a failure here means a new nutpie or PyTensor: fits still run, on nutpie's own wrappers
    assert nutpie_cache.available()


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(5)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 1.0, shape=3)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Deterministic("mu_sum", mu.sum())
        pm.Normal("y", mu, sigma, observed=rng.normal(size=(20, 3)))
    return model


def _call_logp(compiled, x):
    grad, logp = np.zeros_like(x), np.zeros(())
    dbl = ctypes.POINTER(ctypes.c_double)
    code = compiled.compiled_logp_func.ctypes(
        x.size,
        x.ctypes.data_as(dbl),
        grad.ctypes.data_as(dbl),
        logp.ctypes.data_as(dbl),
        ctypes.c_void_p(compiled.user_data.ctypes.data),
    )
    return code, float(logp), grad


def test_cached_wrapper_gives_the_models_logp_and_gradient(small_model):
    compiled = compile_nutpie(small_model, "numba")
    # the wrapper is ours (written as source for the cache), not nutpie's closure
    assert "inner(x)" in compiled.compiled_logp_func._pyfunc.__source__
    assert "inner(x)" in compiled.compiled_expand_func._pyfunc.__source__

    point = small_model.initial_point()
    point = {k: v + 0.3 for k, v in point.items()}
    x = np.concatenate([np.ravel(point[v.name]) for v in small_model.value_vars])
    code, logp, grad = _call_logp(compiled, x)
    assert code == 0
    # exact up to floating-point reassociation between the two compiled graphs
    np.testing.assert_allclose(logp, small_model.compile_logp(**ONE_EVALUATION)(point), rtol=1e-10)
    np.testing.assert_allclose(
        grad, small_model.compile_dlogp(**ONE_EVALUATION)(point), rtol=1e-10, atol=1e-12
    )
    # and a wrong dimension is refused, as in nutpie's own wrapper
    assert _call_logp(compiled, x[:-1])[0] == -1


def test_the_wrappers_take_pytensors_graph_function_inline(small_model):
    compiled = compile_nutpie(small_model, "numba")
    for wrapper in (compiled.compiled_logp_func, compiled.compiled_expand_func):
        inner = wrapper._pyfunc.__globals__["inner"]
        # the graph function itself (named arguments), not PyTensor's *args cache shim
        assert inner.targetoptions.get("inline") == "always"
        assert inner.py_func.__name__ == "numba_funcified_fgraph"
        assert "*args" not in str(inspect.signature(inner.py_func))


def test_a_function_of_another_shape_is_called_not_inlined():
    import numba

    @numba.njit
    def shim(*args):
        return args[0]

    @numba.njit
    def plain(x):
        return x

    assert nutpie_cache.inlined(shim) is shim  # *args, no graph function behind it
    assert nutpie_cache.inlined(plain).targetoptions.get("inline") == "always"
    assert nutpie_cache.inlined(len) is len  # not a Numba function at all


def test_cached_wrappers_are_written_to_the_numba_cache(small_model):
    from pytensor.link.numba.cache import NUMBA_CACHE_PATH

    compiled = compile_nutpie(small_model, "numba")
    key = nutpie_cache._cache_key(
        "logp", compiled.logp_func.vm.jit_fn, compiled.compiled_logp_func._pyfunc.__source__, compiled.n_dim
    )
    assert key is not None
    assert list(NUMBA_CACHE_PATH.glob(f"*logp_numba-{key}*.nbi")), f"no cached wrapper in {NUMBA_CACHE_PATH}"


def test_stock_wrappers_come_back_after_the_block():
    import nutpie.compile_pymc as ncp

    before = ncp._make_c_logp_func, ncp._make_c_expand_func
    with pytest.raises(RuntimeError), nutpie_cache.cached_wrappers():
        assert ncp._make_c_logp_func is not before[0]
        raise RuntimeError("compile failed")
    assert (ncp._make_c_logp_func, ncp._make_c_expand_func) == before


def _data_model(values):
    with pm.Model() as model:
        y = pm.Data("y_data", values)
        scale = pm.Data("scale", np.array([1.0, 2.0, 0.5]))
        mu = pm.Normal("mu", 0.0, 1.0, shape=3)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", mu * scale, sigma, observed=y)
    return model


def _flat(model, shift):
    """A point off the initial one, and its flat vector in the compiled model's order."""
    point = {
        k: v + 0.1 * np.arange(1, np.size(v) + 1).reshape(np.shape(v)) + shift
        for k, v in model.initial_point().items()
    }
    names = [v.name for v in freeze_dims_and_data(model, data=[]).value_vars]  # nutpie's order
    return point, np.concatenate([np.ravel(point[name]) for name in names])


def test_data_as_inputs_give_the_models_logp_before_and_after_new_data():
    rng = np.random.default_rng(7)
    first, second = rng.normal(size=(20, 3)), rng.normal(loc=1.0, size=(20, 3))
    compiled = compile_nutpie(_data_model(first), "numba", swappable=True)
    src = compiled.compiled_logp_func._pyfunc.__source__
    assert "address_as_void_pointer" in src, "the shared-data wrapper is nutpie's, not the cacheable one"
    for values, c in ((first, compiled), (second, compiled.with_data(y_data=second))):
        model = _data_model(values)
        point, x = _flat(model, 0.2)
        grad_order = [v.name for v in model.value_vars]
        names = [v.name for v in freeze_dims_and_data(model, data=[]).value_vars]
        code, logp, grad = _call_logp(c, x)
        assert code == 0
        np.testing.assert_allclose(logp, model.compile_logp(**ONE_EVALUATION)(point), rtol=1e-10)
        dlogp = model.compile_dlogp(**ONE_EVALUATION)(point)
        sizes = [np.size(point[n]) for n in grad_order]
        parts = dict(zip(grad_order, np.split(dlogp, np.cumsum(sizes)[:-1]), strict=True))
        np.testing.assert_allclose(grad, np.concatenate([parts[n] for n in names]), rtol=1e-10, atol=1e-12)


def test_new_data_share_one_compiled_wrapper_while_the_parameters_keep_their_size():
    """The cache key holds the structure and the parameter vector's size, not the data: new
    answers, even more rows of them, map to the same compiled code; a wider parameter
    vector does not."""
    rng = np.random.default_rng(8)

    def key(values, width=3):
        c = compile_nutpie(
            _data_model(values) if width == 3 else _wide_model(values), "numba", swappable=True
        )
        src = c.compiled_logp_func._pyfunc.__source__
        return nutpie_cache._cache_key("logp", c.logp_func.vm.jit_fn, src, c.n_dim)

    first = key(rng.normal(size=(20, 3)))
    assert first is not None
    assert key(rng.normal(size=(20, 3))) == first
    assert key(rng.normal(size=(35, 3))) == first
    assert key(rng.normal(size=(20, 4)), width=4) != first


def _wide_model(values):
    with pm.Model() as model:
        y = pm.Data("y_data", values)
        mu = pm.Normal("mu", 0.0, 1.0, shape=values.shape[1])
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", mu, sigma, observed=y)
    return model
