"""The vectorised R-hat and ESS give ArviZ's numbers, quantity for quantity."""

from __future__ import annotations

import logging
import warnings

import arviz as az
import numpy as np
import pytest

from scsurvey.inference import rank_diagnostics

# ArviZ and this module compute the same sums in a different order: relative differences
# of about 1e-13 were seen; 1e-9 leaves room for other BLAS/FFT builds and still fails on
# any difference of method (a different lag cut-off moves ESS by 1e-3 or more).
RTOL = 1e-9


def _ar1(rng, chains, draws, k, phi):
    e = rng.normal(size=(chains, draws, k))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x + rng.normal(size=(1, 1, k))


def _arviz(x):
    ds = az.from_dict(posterior={"v": x}).posterior
    logging.getLogger("arviz").setLevel(logging.ERROR)  # "Array contains NaN-value"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "rhat": az.rhat(ds)["v"].values,
            "ess_bulk": az.ess(ds, method="bulk")["v"].values,
            "ess_tail": az.ess(ds, method="tail")["v"].values,
        }


@pytest.mark.parametrize(
    ("chains", "draws", "phi"),
    [
        (4, 1000, 0.0),
        (4, 1000, 0.9),
        (4, 500, 0.99),
        (2, 301, 0.5),
        (3, 200, -0.6),
        (4, 7, 0.3),
        (1, 100, 0.5),
    ],
)
def test_matches_arviz(chains, draws, phi):
    rng = np.random.default_rng(int(draws * 10 + chains))
    x = _ar1(rng, chains, draws, 25, phi)
    x[:, :, 0] = 1.5  # constant: undefined R-hat, ESS = all draws
    x[0, 3, 1] = np.nan  # a NaN draw: NaN everywhere
    x[:, :, 2] = rng.integers(0, 3, size=(chains, draws))  # heavy ties
    x[:, :, 3] = np.round(x[:, :, 3], 1)  # some ties
    x[0, :, 4] += 3.0  # one chain elsewhere: R-hat far above 1
    expected = _arviz(x)
    got = rank_diagnostics.rank_diagnostics(x)
    for key, ref in expected.items():
        np.testing.assert_array_equal(np.isnan(got[key]), np.isnan(ref), err_msg=key)
        np.testing.assert_allclose(got[key], ref, rtol=RTOL, err_msg=key)


def test_threaded_chunks_match_one_pass():
    rng = np.random.default_rng(5)
    x = _ar1(rng, 4, 200, 2 * rank_diagnostics.CHUNK + 7, 0.7)
    whole = rank_diagnostics._rank_diagnostics(x)
    chunked = rank_diagnostics.rank_diagnostics(x)
    for key in whole:
        np.testing.assert_array_equal(chunked[key], whole[key])


def test_flags_a_chain_that_did_not_mix():
    rng = np.random.default_rng(2)
    x = _ar1(rng, 4, 500, 3, 0.3)
    x[1, :, 0] += 1.0
    r = rank_diagnostics.rank_diagnostics(x)["rhat"]
    assert r[0] > 1.1
    assert np.all(r[1:] < 1.02)


def test_diagnostics_keep_each_variables_dims_and_coords():
    rng = np.random.default_rng(0)
    idata = az.from_dict(
        posterior={"a": rng.normal(size=(4, 100)), "b": rng.normal(size=(4, 100, 3, 2))},
        coords={"item": ["x", "y", "z"], "battery": ["p", "q"]},
        dims={"b": ["item", "battery"]},
    )
    found = rank_diagnostics.diagnostics(idata.posterior)
    assert found["rhat"]["a"].dims == ()
    assert found["ess_tail"]["b"].dims == ("item", "battery")
    assert list(found["ess_bulk"]["b"]["item"].values) == ["x", "y", "z"]
    ref = az.ess(idata.posterior, method="bulk")["b"].values
    np.testing.assert_allclose(found["ess_bulk"]["b"].values, ref, rtol=RTOL)
