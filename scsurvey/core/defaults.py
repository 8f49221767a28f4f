"""Every default the project runs on, in one place: the thresholds a fit is judged by, the
sampler settings a spec starts from, how many draws each purpose reads, and the presets of
the workflows (warm-up fits, SBC studies).

The sampler defaults are the settings the shipped specs have proven clean with margin
(docs/performance.md): a spec with no ``[sampler]`` table fits as ``full`` does. Everything
else reads these names; nothing repeats the numbers. Plain data, importable without the
scientific stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Thresholds:
    """What a fit is judged by."""

    rhat_max: float = 1.01
    ess_min: int = 400  # bulk and tail
    bfmi_min: float = 0.3
    # a clean fit above this R-hat gets another round while rounds and budget last: the margin
    # that keeps a fit clean on another CPU (docs/design.md)
    rhat_target: float = 1.005
    # an SBC simulation counts as converged below this R-hat with no divergence: looser than a
    # fit's, since the study judges calibration over many small fits, not one fit
    sbc_rhat_max: float = 1.05


THRESHOLDS = Thresholds()

# What a spec without a [sampler] table gets (fields of scsurvey.model.spec.Sampler). nutpie's
# Numba backend, nutpie's own tuning length and target_accept 0.9 are what every shipped spec
# samples with; 4 x 2,000 draws give the R-hat margin across seeds on the twin.
SAMPLER = MappingProxyType(
    {
        "name": "nutpie",
        "chains": 4,
        "draws": 2000,
        "tune": 300,
        "seed": 20200101,
        "target_accept": 0.9,
        "nutpie_backend": "numba",
        "low_rank": False,
        "cores": 2,
        "rounds": 3,
        "budget_s": 900.0,
        "rhat_target": THRESHOLDS.rhat_target,
        "device": "auto",
        "data_inputs": True,
        "prior_draws": 500,
        "vi_steps": 30000,
    }
)


@dataclass(frozen=True)
class Draws:
    """How many posterior draws each purpose reads at most (thinned evenly over the chains)."""

    predictive: int = 1000  # replicates and conditional log-likelihood stored with a fit
    min_predictive: int = 100  # the floor when a large survey shrinks the replicates
    answer_budget: int = 20_000_000  # replicated answers (draws x cells) a fit stores at most
    checks: int = 1000  # predictive checks, support shares and profiles
    battery_index: int = 500  # the battery means' predictive check
    fit_statistics: int = 400  # item and person fit
    integrated: int = 400  # the integrated (traits integrated out) likelihood
    sbc_pit: int = 200  # the calibrated check inside an SBC simulation


DRAWS = Draws()

# a warm-up fit (``scsurvey warm``): enough draws for every step after sampling to run
WARM_SAMPLER = MappingProxyType({"draws": 20, "tune": 20, "chains": 1, "rounds": 1, "prior_draws": 20})


@dataclass(frozen=True)
class SBCDefaults:
    """A simulation-based calibration study's size and sampler (``make sbc``)."""

    n_sims: int = 200
    n_respondents: int = 300
    draws: int = 500
    tune: int = 500
    chains: int = 2
    thin_to: int = 100  # L, the thinned draws each rank is taken over
    seed: int = 2718
    rounds: int = 3


SBC = SBCDefaults()
