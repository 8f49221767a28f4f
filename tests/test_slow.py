"""Full-size fit of `full` on the twin, and parameter recovery (opt in: pytest -m slow)."""

import numpy as np
import pandas as pd
import pytest
from conftest import TWIN, make_project

from scsurvey.fit import fit
from scsurvey.simulate import make_twin, write_twin

# Main parameters: item, threshold, covariate, group-scale and correlation parameters.
MAIN = (
    "mu_alpha",
    "sigma_alpha",
    "alpha",
    "gbar",
    "sigma_g",
    "g",
    "a",
    "beta",
    "sigma_province",
    "sigma_occupation",
    "u_occupation",
    "partial_corr01",
    "tau_item",
    "delta",
)


@pytest.fixture(scope="module")
def full_fit(tmp_path_factory, root):
    project = tmp_path_factory.mktemp("full")
    twin = make_twin(TWIN, root)
    write_twin(twin, project / "scs2020.csv", project / "truth.json")
    make_project(project, project / "scs2020.csv")
    idata, run = fit("full", root=project, progress=False)
    truth = dict(twin.truth)
    truth["u_occupation"] = truth["sigma_occupation"][:, None] * truth["z_occupation"]
    truth["delta"] = np.concatenate([truth["delta_surveillance"], truth["delta_punishment"]], axis=1)
    return idata, run, truth


@pytest.mark.slow
def test_full_fit_on_the_twin_has_clean_diagnostics(full_fit):
    _, run, _ = full_fit
    d = run["diagnostics"]
    print(
        f"full: wall {run['wall_time_s']:.0f} s, min bulk ESS {d['min_ess_bulk']:.0f} "
        f"({d['min_ess_bulk_var']}), ESS/s {run['ess_per_second']:.2f}, R-hat {d['max_rhat']:.4f}, "
        f"divergences {d['divergences']}"
    )
    assert run["diagnostics_ok"], d["failures"]


def recovery_table(idata, truth) -> pd.DataFrame:
    rows = []
    for name in MAIN:
        draws = idata.posterior[name].stack(s=("chain", "draw")).transpose("s", ...).values
        true = np.asarray(truth[name]).reshape(draws.shape[1:])
        low, high = np.quantile(draws, [0.025, 0.975], axis=0)
        for idx in np.ndindex(true.shape):
            rows.append(
                {
                    "parameter": f"{name}[{','.join(map(str, idx))}]" if idx else name,
                    "truth": true[idx],
                    "mean": draws[(slice(None), *idx)].mean(),
                    "low": low[idx],
                    "high": high[idx],
                    "covered": bool(low[idx] <= true[idx] <= high[idx]),
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_parameter_recovery_on_the_twin(full_fit):
    """At least 90% of the main parameters inside their 95% intervals.

    With ~110 parameters and nominal 95% coverage, the number missed is about Binomial(110,
    0.05): mean 5.5; missing more than 11 (10%) has probability below 1%.
    """
    idata, _, truth = full_fit
    table = recovery_table(idata, truth)
    with pd.option_context("display.max_rows", 500, "display.width", 160):
        print(table.round(3).to_string(index=False))
    missed = table[~table["covered"]]
    coverage = table["covered"].mean()
    assert coverage >= 0.90, f"coverage {coverage:.2f}; missed: {list(missed['parameter'])}"
