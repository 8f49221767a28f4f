"""nutpie's Numba C wrappers, cached on disk: same log-density and gradient as the model."""

import ctypes

import numpy as np
import pymc as pm
import pytest

from scsurvey import nutpie_numba
from scsurvey.sampling import compile_nutpie


def test_the_pinned_nutpie_and_pytensor_have_what_the_cache_uses():
    # a failure here means a new nutpie or PyTensor: fits still run, on nutpie's own wrappers
    assert nutpie_numba.available()


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
    assert compiled.compiled_logp_func._pyfunc.__source__ == nutpie_numba._LOGP_SRC
    assert compiled.compiled_expand_func._pyfunc.__source__ == nutpie_numba._EXPAND_SRC

    point = small_model.initial_point()
    point = {k: v + 0.3 for k, v in point.items()}
    x = np.concatenate([np.ravel(point[v.name]) for v in small_model.value_vars])
    code, logp, grad = _call_logp(compiled, x)
    assert code == 0
    # exact up to floating-point reassociation between the two compiled graphs
    np.testing.assert_allclose(logp, small_model.compile_logp()(point), rtol=1e-10)
    np.testing.assert_allclose(grad, small_model.compile_dlogp()(point), rtol=1e-10, atol=1e-12)
    # and a wrong dimension is refused, as in nutpie's own wrapper
    assert _call_logp(compiled, x[:-1])[0] == -1


def test_cached_wrappers_are_written_to_the_numba_cache(small_model):
    from pytensor.link.numba.cache import NUMBA_CACHE_PATH

    compiled = compile_nutpie(small_model, "numba")
    key = nutpie_numba._cache_key(
        "logp", compiled.logp_func.vm.jit_fn, nutpie_numba._LOGP_SRC, compiled.n_dim
    )
    assert key is not None
    assert list(NUMBA_CACHE_PATH.glob(f"*logp_numba-{key}*.nbi")), f"no cached wrapper in {NUMBA_CACHE_PATH}"


def test_stock_wrappers_come_back_after_the_block():
    import nutpie.compile_pymc as ncp

    before = ncp._make_c_logp_func, ncp._make_c_expand_func
    with pytest.raises(RuntimeError), nutpie_numba.cached_wrappers():
        assert ncp._make_c_logp_func is not before[0]
        raise RuntimeError("compile failed")
    assert (ncp._make_c_logp_func, ncp._make_c_expand_func) == before
