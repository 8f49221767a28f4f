"""What a DIF fit says: which items groups read differently, and the group differences
with and without DIF.

The practical size (ROPE) is :data:`ROPE` logits of the linear predictor. A shift of d
logits moves the probability of an answer above any threshold by at most d/4 (the
logistic's slope at 1/2), so 0.2 logits is at most 5 percentage points of an item's
support share: about three sampling standard errors of a share in a survey of 1,000, and
the smallest difference the report would put in a sentence. An item is flagged when a DIF
beyond the ROPE is more likely than not (:data:`FLAG_PROBABILITY`): chosen on a calibration
run of the DIF study (its own seed) as the threshold with the most power whose false-alarm
rate stays well under 5% (docs/design.md has the table).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from scsurvey.core import dims
from scsurvey.posterior.draws import HIGH, LOW, posterior_draws

ROPE = 0.2  # logits
FLAG_PROBABILITY = 0.5
LOCATION = "dif"
DISCRIMINATION = "dif_discrimination"


def has_dif(idata) -> bool:
    """Whether ``idata`` is a fit with the DIF component."""
    return LOCATION in idata.posterior


def item_table(
    idata, rope: float = ROPE, flag: float = FLAG_PROBABILITY, var: str = LOCATION
) -> pd.DataFrame:
    """Per DIF contrast and item: the DIF's mean, 90% interval and probability beyond the ROPE.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit with ``components.dif``.
    rope : float
        The practical size in logits (log discrimination ratio for ``dif_discrimination``).
    flag : float
        The probability beyond ``rope`` at which an item is flagged.
    var : {"dif", "dif_discrimination"}

    Returns
    -------
    pandas.DataFrame
        Indexed by (dif_level, item): ``mean``, ``low``, ``high``, ``p_beyond``, ``flagged``.

    Examples
    --------
    >>> import scsurvey as ss
    >>> idata = ss.load("models/full_dif/posterior.nc").idata  # doctest: +SKIP
    >>> ss.summaries.dif_items(idata).query("flagged")  # doctest: +SKIP
    """
    if var not in idata.posterior:
        raise KeyError(f"the posterior has no {var!r}: the model was fitted without components.dif")
    d = posterior_draws(idata, var)  # (sample, dif_level, item)
    p_beyond = _beyond(d, [rope]).isel(rope=0, drop=True)
    table = xr.Dataset(
        {
            "mean": d.mean(dims.STACKED),
            "low": d.quantile(LOW, dims.STACKED).drop_vars("quantile"),
            "high": d.quantile(HIGH, dims.STACKED).drop_vars("quantile"),
            "p_beyond": p_beyond,
            "flagged": p_beyond >= flag,
        }
    ).to_dataframe()
    return table[["mean", "low", "high", "p_beyond", "flagged"]]


def _beyond(draws: xr.DataArray, ropes) -> xr.DataArray:
    return (np.abs(draws) > xr.DataArray(list(ropes), dims="rope", coords={"rope": list(ropes)})).mean(
        dims.STACKED
    )


def p_beyond(idata, ropes, var: str = LOCATION) -> xr.DataArray:
    """P(|DIF| > rope) per rope, contrast and item (dims rope, dif_level, item), the draws
    read once for every rope."""
    return _beyond(posterior_draws(idata, var), ropes)


def factor_of(level: str) -> tuple[str, str | None]:
    """A contrast's factor and level: ``"province[Tianjin]"`` -> (province, Tianjin)."""
    if level.endswith("]") and "[" in level:
        factor, lv = level[:-1].split("[", 1)
        return factor, lv
    return level, None


def latent_difference(idata, level: str) -> xr.DataArray:
    """Draws (sample, battery) of the latent difference a DIF contrast compares.

    A binary covariate's effect on the latent trait (its second level minus its first), or a
    grouping factor's level minus its reference level (the first).
    """
    factor, lv = factor_of(level)
    post = idata.posterior
    if lv is None:
        return posterior_draws(idata, "beta").sel({dims.COVARIATE: factor}, drop=True)
    u = posterior_draws(idata, f"u_{factor}")
    return u.sel({factor: lv}, drop=True) - u.isel({factor: 0}, drop=True) if factor in post.dims else u


def group_differences(idata, baseline=None) -> pd.DataFrame:
    """Each DIF contrast's latent difference per battery, with DIF and (from ``baseline``,
    the same model fitted without it) without.

    Returns
    -------
    pandas.DataFrame
        Indexed by (dif_level, battery): ``with_dif``, ``with_dif_low``, ``with_dif_high`` and,
        given a baseline, ``without_dif``, ``without_dif_low``, ``without_dif_high``,
        ``change`` (with minus without, posterior means).
    """
    rows = []
    for level in idata.posterior[dims.DIF_LEVEL].values:
        fits = {"with_dif": idata, **({"without_dif": baseline} if baseline is not None else {})}
        parts = {}
        for key, fit in fits.items():
            d = latent_difference(fit, str(level))
            parts[key] = d.mean(dims.STACKED)
            parts[f"{key}_low"] = d.quantile(LOW, dims.STACKED).drop_vars("quantile")
            parts[f"{key}_high"] = d.quantile(HIGH, dims.STACKED).drop_vars("quantile")
        frame = xr.Dataset(parts).to_dataframe()
        frame.index = pd.MultiIndex.from_product(
            [[str(level)], frame.index], names=[dims.DIF_LEVEL, dims.BATTERY]
        )
        rows.append(frame)
    out = pd.concat(rows)
    if baseline is not None:
        out["change"] = out["with_dif"] - out["without_dif"]
    return out


def baseline_of(idata, others: dict) -> tuple[str, object] | tuple[None, None]:
    """Among ``others`` (name -> posterior of the same data), the fit of this model without DIF.

    The model configurations are compared as stored in each posterior's stamp, with DIF
    removed from this one; the sampler settings do not matter.
    """

    def config(fit):
        spec = json.loads(fit.posterior.attrs.get("spec", "{}"))
        spec.get("components", {}).pop("dif", None)
        spec.get("components", {}).pop("dif_kind", None)
        spec.get("priors", {}).pop("dif", None)
        kept = {k: spec.get(k) for k in ("link", "components", "priors", "centering")}
        return json.dumps(kept, sort_keys=True)

    mine = config(idata)
    for name, other in others.items():
        if not has_dif(other) and config(other) == mine:
            return name, other
    return None, None


def profile_contrasts(idata, x: dict[str, float]) -> np.ndarray:
    """A profile's DIF contrasts (dif_level,) from its standardised covariate values.

    A binary covariate's contrast is its 0/1 indicator minus the sample's share, read off the
    two standardised values the covariate takes; covariates not named sit at their mean and
    grouping factors at their average, contrast 0 (as :func:`summaries.support_probability`
    places them).
    """
    const = idata.constant_data
    out = np.zeros(const.sizes[dims.DIF_LEVEL])
    X = const["X"]
    for k, factor in enumerate(const["dif_factor"].values):
        factor = str(factor)
        if factor not in x or factor not in X[dims.ALL_COVARIATES].values:
            continue
        col = X.sel({dims.ALL_COVARIATES: factor}).values
        lo, hi = col.min(), col.max()
        out[k] = (x[factor] - lo) / (hi - lo) - float(const["dif_center"].values[k])
    return out
