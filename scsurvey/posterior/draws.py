"""Reading draws from a stored posterior: what checks, summaries and plots share.

Every function takes InferenceData written by :func:`scsurvey.posterior.assemble.fit_survey` (or loaded
back) and needs nothing else.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from numpy.polynomial.hermite_e import hermegauss

from scsurvey.core import dims
from scsurvey.core.dims import OBSERVED

INTERVAL = 0.90  # credible intervals in checks and summaries
LOW, HIGH = (1 - INTERVAL) / 2, 1 - (1 - INTERVAL) / 2


def has_residual(idata) -> bool:
    """Whether the model has a respondent residual (``components.residual``; files written
    before the flag existed all have one)."""
    return bool(int(idata.posterior.attrs.get("residual", 1)))


def residual_quadrature(idata, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and normalised weights integrating the unit-normal residual of the
    latent trait; a single node at zero when the model has no residual."""
    if not has_residual(idata):
        return np.zeros(1), np.ones(1)
    x, w = hermegauss(nodes)
    return x, w / w.sum()


def observed_answers(idata) -> xr.DataArray:
    return idata.observed_data[OBSERVED]


def replicated_answers(idata, max_draws: int | None = None, seed: int = 0) -> xr.DataArray:
    """Posterior predictive answers stacked to a ``sample`` dim, optionally thinned."""
    rep = idata.posterior_predictive[OBSERVED].stack({dims.STACKED: dims.SAMPLE})
    if max_draws is not None and rep.sizes[dims.STACKED] > max_draws:
        keep = np.sort(np.random.default_rng(seed).choice(rep.sizes[dims.STACKED], max_draws, replace=False))
        rep = rep.isel({dims.STACKED: keep})
    return rep.transpose(dims.STACKED, dims.RESPONDENT, dims.ITEM)


def categories(idata) -> list[str]:
    return list(idata.constant_data[dims.CATEGORY].values)


def support_mask(idata) -> np.ndarray:
    return idata.constant_data["support"].values.astype(bool)


def observed_support(idata) -> xr.DataArray:
    """Each item's share of its observed answers that are in the support categories."""
    obs = observed_answers(idata)
    mask = obs >= 0
    return (support_indicator(idata, obs) & mask).sum(dims.RESPONDENT) / mask.sum(dims.RESPONDENT)


def interval_summary(draws: xr.DataArray, dim=dims.STACKED) -> xr.Dataset:
    return xr.Dataset(
        {
            "mean": draws.mean(dim),
            "low": draws.quantile(LOW, dim).drop_vars("quantile"),
            "high": draws.quantile(HIGH, dim).drop_vars("quantile"),
        }
    )


def support_indicator(idata, answers: xr.DataArray) -> xr.DataArray:
    support = support_mask(idata)
    return xr.apply_ufunc(lambda a: support[np.clip(a, 0, None)], answers)


def battery_scores(idata, answers: xr.DataArray, mask: xr.DataArray) -> xr.Dataset:
    """Respondent mean of answered items per battery, on the scale's codes."""
    codes = idata.constant_data["category_code"].values
    values = xr.apply_ufunc(lambda a: codes[np.clip(a, 0, None)], answers).where(mask)
    battery = idata.constant_data["battery_of_item"]
    out = {}
    for b in pd.unique(battery.values):
        cols = battery.values == b
        out[str(b)] = values.isel({dims.ITEM: cols}).mean(dims.ITEM, skipna=True)
    return xr.Dataset(out)


def posterior_draws(idata, var: str) -> xr.DataArray:
    """A variable's draws stacked to ``sample``: from the posterior, or for a respondent-level
    variable stored apart (:func:`scsurvey.storage.files.lean`), at the posterior's draws that
    group holds."""
    if var in idata.posterior:
        da = idata.posterior[var]
    elif dims.RESPONDENT_DRAWS in idata.groups() and var in idata[dims.RESPONDENT_DRAWS]:
        da = idata[dims.RESPONDENT_DRAWS][var]
        chains = np.intersect1d(da["chain"].values, idata.posterior["chain"].values)
        draws_ = np.intersect1d(da["draw"].values, idata.posterior["draw"].values)
        if not len(chains) or not len(draws_):
            raise KeyError(f"{var}: stored at draws the posterior here does not hold")
        da = da.sel(chain=chains, draw=draws_)
    else:
        raise KeyError(f"{var!r} is in neither the posterior nor {dims.RESPONDENT_DRAWS!r}")
    return da.stack({dims.STACKED: dims.SAMPLE}).transpose(dims.STACKED, ...)


def has_draws(idata, var: str) -> bool:
    """Whether ``idata`` holds draws of ``var``, in the posterior or the respondent-level group."""
    if var in idata.posterior:
        return True
    return dims.RESPONDENT_DRAWS in idata.groups() and var in idata[dims.RESPONDENT_DRAWS]


def at_predictive_draws(idata) -> az.InferenceData:
    """The posterior (with the constants and respondent-level draws) at the draws the posterior
    predictive was drawn from, which may be thinned; the whole posterior without one."""
    post = idata.posterior
    if "posterior_predictive" in idata.groups():
        rep = idata.posterior_predictive
        post = post.sel(chain=rep["chain"].values, draw=rep["draw"].values)
    out = az.InferenceData(posterior=post, constant_data=idata.constant_data)
    if dims.RESPONDENT_DRAWS in idata.groups():
        out.add_groups({dims.RESPONDENT_DRAWS: idata[dims.RESPONDENT_DRAWS]})
    return out


def thin(idata, max_draws: int | None) -> az.InferenceData:
    """Every k-th draw of every chain, keeping at most about ``max_draws`` in all."""
    post = idata.posterior
    total = post.sizes["chain"] * post.sizes["draw"]
    step = 1 if max_draws is None else max(1, int(np.ceil(total / max_draws)))
    return idata.isel(draw=slice(None, None, step)) if step > 1 else idata
