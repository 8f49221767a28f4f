"""Default priors, as data: one entry per model parameter, merged as defaults | overrides.

All scales refer to the latent support scale, whose respondent residual has unit variance
(logit link: on the logistic latent scale), and to standardised covariates.
"""

from __future__ import annotations

import copy

import numpy as np

DEFAULT_PRIORS: dict[str, dict[str, float]] = {
    # first threshold of each item: alpha_j ~ Normal(mu_alpha[b], sigma_alpha[b])
    "mu_alpha": {"mu": -2.0, "sigma": 1.5},
    # the sds of pooled blocks are Gamma(shape, rate): zero density at zero, so a posterior
    # reaching towards no spread meets a soft floor instead of a funnel's neck (docs/design.md)
    "sigma_alpha": {"shape": 2.0, "rate": 2.5},
    # log threshold increments: g_jk ~ Normal(gbar[b, k], sigma_g[b])
    "gbar": {"mu": 0.0, "sigma": 0.75},
    "sigma_g": {"shape": 2.0, "rate": 5.0},
    # log discrimination: a_j ~ Normal(0, sigma)
    "a": {"sigma": 0.5},
    # covariate effects per battery and covariate: Normal(0, sigma)
    "beta": {"sigma": 0.5},
    # sd of each grouping factor's zero-sum intercepts, per battery: Gamma(shape, rate)
    "sigma_group": {"shape": 2.0, "rate": 5.0},
    # correlation of the latent traits across batteries: LKJ(eta)
    "corr": {"eta": 2.0},
    # sd of item-specific covariate deviations within a battery: HalfNormal(sigma)
    "tau_item": {"sigma": 0.25},
    # DIF (scsurvey.model.dif): regularised horseshoe per contrast; `expected` items with DIF
    # set the global scale, the slab (Student-t, df and scale in logits) bounds the large ones
    "dif": {"expected": 1.0, "slab_df": 4.0, "slab_scale": 1.0},
    # multiple-response options (scsurvey.model.choices), pooled toward their question's
    # mean with a fixed spread (a question's handful of options cannot inform a learned
    # one): intercept_k ~ Normal(mu[q], option_intercept.sigma) on the log-odds of choosing,
    # slope_k ~ Normal(mu[q], option_slope.sigma) per unit of latent support
    "mu_option_intercept": {"mu": 0.0, "sigma": 1.5},
    "option_intercept": {"sigma": 1.0},
    "mu_option_slope": {"mu": 0.0, "sigma": 1.0},
    "option_slope": {"sigma": 0.5},
    # response styles (scsurvey.model.styles), per respondent: the log of the factor that
    # spreads the thresholds around each item's centre, Normal(0, style_sd); a shift towards
    # agreeing, Normal(0, acquiescence_sd), on the latent scale. Gamma priors keep the sds
    # off zero, where a style the data do not show would make a funnel
    "style_sd": {"shape": 2.0, "rate": 8.0},
    "acquiescence_sd": {"shape": 2.0, "rate": 8.0},
    # informative non-response: logit P(no answer) = kappa_j + gamma_b theta_b + nu, with
    # kappa_j ~ Normal(mu_kappa, sigma_kappa), gamma ~ Normal(0, sigma) per battery and a
    # propensity of the respondent's own nu ~ Normal(0, propensity_sd)
    "mu_kappa": {"mu": -3.0, "sigma": 1.5},
    "sigma_kappa": {"shape": 2.0, "rate": 4.0},
    "nonresponse_slope": {"sigma": 1.0},
    "propensity_sd": {"shape": 2.0, "rate": 2.0},
}
# the priors of the multiple-response component: out of the hash of a spec that does not use it
CHOICE_PRIORS = ("mu_option_intercept", "option_intercept", "mu_option_slope", "option_slope")
STYLE_PRIORS = ("style_sd", "acquiescence_sd")
NONRESPONSE_PRIORS = ("mu_kappa", "sigma_kappa", "nonresponse_slope", "propensity_sd")


def merge_priors(overrides: dict | None, source: str = "<spec>") -> dict[str, dict[str, float]]:
    """Defaults updated by ``overrides``; unknown parameters or fields are an error.

    Parameters
    ----------
    overrides : dict or None
        ``{parameter: {field: value}}``.
    source : str
        Where the overrides come from, for error messages.

    Returns
    -------
    dict
    """
    merged = copy.deepcopy(DEFAULT_PRIORS)
    for name, fields in (overrides or {}).items():
        if name not in merged:
            raise KeyError(f"{source}: [priors].{name}: unknown parameter (known: {sorted(merged)})")
        if not isinstance(fields, dict):
            raise KeyError(f"{source}: [priors].{name}: expected a table of fields")
        for key, value in fields.items():
            if key == "sigma" and "shape" in merged[name]:
                raise KeyError(
                    f"{source}: [priors].{name}.sigma: the sds of pooled blocks have Gamma(shape, "
                    f"rate) priors, not half-normal ones (defaults {merged[name]}); a posterior "
                    "fitted with the half-normal prior needs a refit (`make fit`)"
                )
            if key not in merged[name]:
                raise KeyError(
                    f"{source}: [priors].{name}.{key}: unknown field (known: {sorted(merged[name])})"
                )
            if not isinstance(value, int | float) or (key != "mu" and value <= 0):
                raise KeyError(f"{source}: [priors].{name}.{key}: bad value {value!r}")
            merged[name][key] = float(value)
    return merged


def sd_rms(prior: dict[str, float]) -> float:
    """Root mean square of a hierarchical sd under its prior, ``sqrt(E[sigma^2])``.

    Parameters
    ----------
    prior : dict
        ``{"shape": a, "rate": b}`` of a Gamma prior.

    Returns
    -------
    float
        ``sqrt(a (a + 1)) / b``.
    """
    return float(np.sqrt(prior["shape"] * (prior["shape"] + 1.0)) / prior["rate"])
