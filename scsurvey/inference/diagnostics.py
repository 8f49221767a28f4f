"""Convergence diagnostics: what a fit is judged by (thresholds in :mod:`scsurvey.core.defaults`)."""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import numpy as np
import xarray as xr

from scsurvey.core.defaults import THRESHOLDS
from scsurvey.inference import rank_diagnostics

# A reported fit: stored but flagged when it misses any of these (Vehtari et al. 2021).
RHAT_MAX = THRESHOLDS.rhat_max
ESS_MIN = THRESHOLDS.ess_min
BFMI_MIN = THRESHOLDS.bfmi_min
# An SBC fit is short (2 chains), so its convergence flag uses a looser R-hat; it is
# recorded per simulation, never used to drop one silently.
SBC_RHAT_MAX = THRESHOLDS.sbc_rhat_max


@dataclass
class Diagnostics:
    """The worst value of each diagnostic over every posterior variable, and what failed."""

    max_rhat: float
    max_rhat_var: str
    min_ess_bulk: float
    min_ess_bulk_var: str
    min_ess_tail: float
    min_ess_tail_var: str
    divergences: int
    min_bfmi: float
    mean_tree_depth: float | None
    mean_step_size: float | None
    mean_leapfrog_steps: float | None
    failures: list[str]
    # an approximate posterior (scsurvey.inference.approximate) is judged by PSIS instead of R-hat/ESS
    psis_khat: float | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


def _extreme(ds: xr.Dataset, fn) -> tuple[float, str]:
    best_val, best_var = None, ""
    for name, da in ds.data_vars.items():
        vals = da.values[np.isfinite(da.values)]
        if vals.size == 0:
            continue
        v = float(fn(vals))
        if best_val is None or fn([v, best_val]) == v:
            best_val, best_var = v, name
    return (best_val if best_val is not None else float("nan")), best_var


def diagnose(idata: az.InferenceData) -> Diagnostics:
    """Convergence diagnostics over every posterior variable, naming the worst ones.

    Parameters
    ----------
    idata : arviz.InferenceData
        With a ``posterior`` group and, for divergences, BFMI and tree depth, ``sample_stats``.

    Returns
    -------
    Diagnostics
        ``failures`` lists, in words, every threshold missed (empty when clean).

    Examples
    --------
    >>> import arviz as az, numpy as np
    >>> idata = az.from_dict(posterior={"mu": np.random.default_rng(0).normal(size=(4, 500))})
    >>> diagnose(idata).ok
    True
    """
    post = idata.posterior
    if is_approximate(idata):
        return _diagnose_approximate(float(post.attrs["psis_khat"]))
    # ArviZ's estimators, vectorised (scsurvey.inference.rank_diagnostics); constant entries (a correlation
    # matrix's diagonal) have an undefined R-hat and are skipped by _extreme
    # the sampler's unconstrained copies (``sigma_log__``, ``z_zerosum__``) are dropped before a
    # posterior is stored: judging by them would name a worst quantity no file holds
    found = rank_diagnostics.diagnostics(post[[v for v in post.data_vars if not str(v).endswith("__")]])
    rhat, bulk, tail = found["rhat"], found["ess_bulk"], found["ess_tail"]
    max_rhat, rhat_var = _extreme(rhat, np.max)
    min_bulk, bulk_var = _extreme(bulk, np.min)
    min_tail, tail_var = _extreme(tail, np.min)
    stats = idata.sample_stats if "sample_stats" in idata.groups() else xr.Dataset()
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    try:
        bfmi = float(np.min(az.bfmi(idata)))
    except (KeyError, AttributeError, ValueError):
        bfmi = float("nan")

    def mean_of(*names):
        for n in names:
            if n in stats:
                return float(stats[n].mean())
        return None

    failures = []
    if not max_rhat <= RHAT_MAX:
        failures.append(f"max R-hat {max_rhat:.3f} > {RHAT_MAX} ({rhat_var})")
    if not min_bulk >= ESS_MIN:
        failures.append(f"min bulk ESS {min_bulk:.0f} < {ESS_MIN} ({bulk_var})")
    if not min_tail >= ESS_MIN:
        failures.append(f"min tail ESS {min_tail:.0f} < {ESS_MIN} ({tail_var})")
    if divergences:
        failures.append(f"{divergences} divergent transitions")
    if np.isfinite(bfmi) and bfmi < BFMI_MIN:
        failures.append(f"min BFMI {bfmi:.2f} < {BFMI_MIN}")
    return Diagnostics(
        max_rhat=max_rhat,
        max_rhat_var=rhat_var,
        min_ess_bulk=min_bulk,
        min_ess_bulk_var=bulk_var,
        min_ess_tail=min_tail,
        min_ess_tail_var=tail_var,
        divergences=divergences,
        min_bfmi=bfmi,
        mean_tree_depth=mean_of("depth", "tree_depth"),
        mean_step_size=mean_of("step_size", "step_size_bar"),
        mean_leapfrog_steps=mean_of("n_steps"),
        failures=failures,
    )


def is_approximate(idata: az.InferenceData) -> bool:
    """Whether a posterior came from an approximation (scsurvey.inference.approximate) rather than MCMC."""
    return "psis_khat" in idata.posterior.attrs


def _diagnose_approximate(khat: float) -> Diagnostics:
    """An approximate posterior: usable when the Pareto k of its importance ratios is <= 0.7."""
    from scsurvey.inference.approximate import LABEL, PSIS_K_MAX

    failures = []
    if not khat <= PSIS_K_MAX:
        failures.append(
            f"approximate posterior ({LABEL}): PSIS k-hat {khat:.2f} > {PSIS_K_MAX}: not close "
            "enough to the posterior for its draws to be trusted; fit with NUTS"
        )
    nan = float("nan")
    return Diagnostics(nan, "", nan, "", nan, "", 0, nan, None, None, None, failures, psis_khat=khat)


def sbc_converged(max_rhat: float, divergences: int) -> bool:
    """The convergence flag of one SBC fit (looser R-hat than a reported fit; no divergences)."""
    return bool(np.isfinite(max_rhat) and max_rhat <= SBC_RHAT_MAX and divergences == 0)
