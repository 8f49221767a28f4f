"""Population (MRP) estimates of a fit, as stored beside its posterior: reading them and
setting them beside the sample's shares. Computing them is :mod:`scsurvey.workflows.mrp`'s job."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import xarray as xr

from scsurvey.core import dims
from scsurvey.core.paths import model_paths
from scsurvey.posterior.draws import observed_support

MRP_FILE = "mrp.nc"  # beside posterior.nc


def summary_table(out: xr.Dataset, idata, codebook, low: float = 0.05, high: float = 0.95) -> pd.DataFrame:
    """Per item: the sample's support share, the MRP estimate and interval, the published share."""
    sample = observed_support(idata).values
    published = {i.id: i.published_support for i in codebook.items}
    s = out["support"]
    table = pd.DataFrame(
        {
            "sample": sample,
            "mrp": s.mean(dims.STACKED).values,
            "mrp_low": s.quantile(low, dims.STACKED).values,
            "mrp_high": s.quantile(high, dims.STACKED).values,
            "published": [published.get(i) for i in s[dims.ITEM].values],
        },
        index=pd.Index(s[dims.ITEM].values, name="item"),
    )
    for col in ("weighted", "weighted_low", "weighted_high"):
        if col in out:
            table[col] = out[col].values
    return table


def load(name: str, root: Path | str = ".") -> xr.Dataset | None:
    """The stored MRP estimates of model ``name``, or ``None``; the report compares their
    ``posterior_created_at`` with the posterior's to tell stale ones."""
    paths = model_paths(name, root)
    target = paths["posterior"].with_name(MRP_FILE)
    if not target.exists():
        return None
    return xr.load_dataset(target, engine="h5netcdf")
