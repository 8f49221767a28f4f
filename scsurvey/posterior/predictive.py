"""Predictive draws, log-likelihood and the data groups that make a posterior self-contained."""

from __future__ import annotations

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from scsurvey.core import dims
from scsurvey.core.defaults import DRAWS
from scsurvey.core.dims import CHOICE, OBSERVED
from scsurvey.inputs.survey import SurveyData
from scsurvey.model.choices import layout
from scsurvey.model.dif import contrasts
from scsurvey.model.graph import BuiltModel
from scsurvey.model.likelihood import ordinal_random
from scsurvey.model.spec import ModelSpec
from scsurvey.model.styles import ITEM_KEY, KAPPA, NONRESPONSE, PROPENSITY, item_key, nonresponse_indicator
from scsurvey.posterior.choices import on_cells, replicate_choices
from scsurvey.posterior.draws import thin
from scsurvey.posterior.integrated_likelihood import Population, conditional, population


def respondent_log_likelihood(idata: az.InferenceData, model: pm.Model) -> xr.Dataset:
    """Log-likelihood per respondent (summed over items) for leave-one-respondent-out LOO,
    by PyMC from ``model``'s graph (what :func:`replicate` computes directly is tested
    against it)."""
    cell = pm.compute_log_likelihood(
        idata, model=model, var_names=[OBSERVED], extend_inferencedata=False, progressbar=False
    )
    return xr.Dataset({OBSERVED: cell[OBSERVED].sum(dims.ITEM)})


def _as_int8(ds: xr.Dataset) -> xr.Dataset:
    return ds.assign({k: ds[k].astype(np.int8) for k in (OBSERVED, CHOICE, NONRESPONSE) if k in ds})


def replicate_nonresponse(idata, seed: int) -> xr.Dataset:
    """Posterior predictive non-answers of an informative non-response fit: ``nonresponse``
    (chain, draw, respondent, item) as int8, at the draws of ``idata``."""
    kappa = idata.posterior[KAPPA]  # (chain, draw, item)
    propensity = idata.posterior.get(PROPENSITY)
    if propensity is None:
        propensity = idata[dims.RESPONDENT_DRAWS][PROPENSITY].sel(
            chain=kappa["chain"].values, draw=kappa["draw"].values
        )
    logit = kappa.values[:, :, None, :] + propensity.values[..., None]
    rng = np.random.default_rng(seed)
    rep = (rng.random(logit.shape) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    return xr.Dataset(
        {NONRESPONSE: (("chain", "draw", dims.RESPONDENT, dims.ITEM), rep)},
        coords={
            "chain": kappa["chain"].values,
            "draw": kappa["draw"].values,
            dims.RESPONDENT: propensity[dims.RESPONDENT].values,
            dims.ITEM: kappa[dims.ITEM].values,
        },
    )


def traits(idata: az.InferenceData, pop: Population | None = None) -> xr.DataArray:
    """Each respondent's traits ``theta`` at every draw of ``idata``'s posterior, dims
    (chain, draw, respondent, battery): the posterior's own, or for a model without a
    residual (whose sampler saw only the distinct respondents) the population part, which
    is then the whole of them. ``pop`` is :func:`~scsurvey.posterior.integrated_likelihood.population` of
    ``idata`` when the caller has it."""
    post = idata.posterior
    if "theta" in post:
        return post["theta"].transpose("chain", "draw", dims.RESPONDENT, dims.BATTERY)
    mean = (pop or population(idata)).mean
    const = idata.constant_data
    return xr.DataArray(
        mean.reshape(post.sizes["chain"], post.sizes["draw"], *mean.shape[1:]),
        dims=("chain", "draw", dims.RESPONDENT, dims.BATTERY),
        coords={
            "chain": post["chain"].values,
            "draw": post["draw"].values,
            dims.RESPONDENT: const[dims.RESPONDENT].values,
            dims.BATTERY: post[dims.BATTERY].values,
        },
        name="theta",
    )


def replicate(
    idata: az.InferenceData, theta: xr.DataArray, seed: int, pop: Population | None = None
) -> tuple[xr.Dataset, xr.Dataset]:
    """Posterior predictive answers and the conditional log-likelihood per respondent.

    Computed from the posterior's population-level draws and the traits directly (the
    graded-response model of :mod:`scsurvey.model.likelihood`), without compiling the model's
    graph: PyMC's predictive and pointwise log-likelihood functions cost tens of seconds of
    C compilation on a first fit.

    Parameters
    ----------
    idata : arviz.InferenceData
        Posterior (thinned to the draws wanted) with ``observed_data`` and ``constant_data``.
    theta : xarray.DataArray
        :func:`traits` of ``idata``.
    seed : int
        Seeds the replicates.
    pop : Population, optional
        :func:`~scsurvey.posterior.integrated_likelihood.population` of ``idata``, when the caller has it.

    Returns
    -------
    posterior_predictive, log_likelihood : xarray.Dataset
        ``y`` (chain, draw, respondent, item) as int8 categories; ``y`` (chain, draw,
        respondent), each respondent's answered items summed.
    """
    pop = pop or population(idata)
    t = theta.values.reshape(-1, *theta.shape[2:])  # (sample, respondent, battery)
    y = idata.observed_data[OBSERVED].values
    loglik, _, _ = conditional(pop, t, y)
    rng = np.random.default_rng(seed)
    rep = np.empty((t.shape[0], *y.shape), dtype=np.int8)
    for s in range(t.shape[0]):  # a draw at a time bounds memory on large surveys
        one = slice(s, s + 1)
        rep[s] = ordinal_random(pop.eta(t[one], one)[0], pop.answer_cuts(one)[0], pop.link, rng)
    sizes = (theta.sizes["chain"], theta.sizes["draw"])
    coords = {
        "chain": theta["chain"].values,
        "draw": theta["draw"].values,
        dims.RESPONDENT: idata.observed_data[dims.RESPONDENT].values,
        dims.ITEM: idata.observed_data[dims.ITEM].values,
    }
    predictive = xr.Dataset(
        {OBSERVED: (("chain", "draw", dims.RESPONDENT, dims.ITEM), rep.reshape(*sizes, *y.shape))},
        coords=coords,
    )
    log_lik = xr.Dataset(
        {OBSERVED: (("chain", "draw", dims.RESPONDENT), loglik.reshape(*sizes, y.shape[0]))},
        coords={k: v for k, v in coords.items() if k != dims.ITEM},
    )
    return predictive, log_lik


# Prior draws run PyTensor's Python implementations: they are one function called a few hundred
# times, and compiling it to C costs far more than it saves (docs/performance.md); the draws
# are the same.
PRIOR_COMPILE = {"mode": "FAST_COMPILE"}

# Posterior predictive replicates and the conditional log-likelihood are stored for at most
# DRAWS.predictive draws (every k-th of each chain): the checks read no more, and every draw's
# replicates would be most of a file. Beyond DRAWS.answer_budget replicated answers the draws
# shrink, down to DRAWS.min_predictive: predictive checks of shares on a large survey are
# limited by the survey, not by a few hundred draws.


def predictive_draws(n_answers: int) -> int:
    """How many posterior draws the predictive groups keep for a survey of ``n_answers``
    cells (respondents x items)."""
    return int(np.clip(DRAWS.answer_budget // max(n_answers, 1), DRAWS.min_predictive, DRAWS.predictive))


def prior_draws(built: BuiltModel, data: SurveyData, spec: ModelSpec) -> az.InferenceData:
    """Prior and prior-predictive draws of ``built``'s model: what :func:`add_predictive`
    stores, computed from the model, the data and the seed alone (no posterior), so that
    they can be drawn while the sampler runs."""
    n_draws = predictive_draws(data.responses.size)
    return pm.sample_prior_predictive(
        draws=min(spec.sampler.prior_draws, n_draws),
        model=built.model,
        random_seed=spec.sampler.seed + 1,
        compile_kwargs=PRIOR_COMPILE,
    )


def add_predictive(
    idata, built: BuiltModel, data: SurveyData, spec: ModelSpec, prior: az.InferenceData | None = None
):
    """Add prior, prior predictive, posterior predictive, log-likelihood and data groups.

    The posterior predictive and the conditional log-likelihood use at most
    :func:`predictive_draws` draws, evenly thinned within each chain. A posterior without
    respondent-level draws (a model without residual, sampled on its distinct respondents)
    gets every respondent's traits at those draws in the group ``posterior_respondents``.
    ``prior`` is :func:`prior_draws`'s result when the caller has drawn it already.
    """
    for name in ("observed_data", "constant_data"):  # nutpie and PyMC write their own
        if name in idata.groups():
            del idata[name]
    constants = survey_constants(data)
    dif = contrasts(spec, data)
    if dif is not None:
        constants = constants.assign(dif.constants()).assign_coords({dims.DIF_LEVEL: dif.names})
    observed = observed_dataset(data)
    if spec.components.nonresponse == "informative":
        observed = observed.assign(
            {
                NONRESPONSE: (
                    (dims.RESPONDENT, dims.ITEM),
                    nonresponse_indicator(data.responses).astype(np.int8),
                )
            }
        )
    choices = layout(spec, data)
    if choices is not None:
        constants = constants.assign(choices.constants()).assign_coords({dims.OPTION: choices.options})
        observed = observed.assign({CHOICE: ((dims.RESPONDENT, dims.OPTION), choices.codes)})
        observed = observed.assign_coords({dims.OPTION: choices.options})
    idata.add_groups(observed_data=observed, constant_data=constants)
    seed = spec.sampler.seed
    thinned = thin(idata, predictive_draws(data.responses.size))
    prior = prior if prior is not None else prior_draws(built, data, spec)
    pop = population(thinned)
    theta = traits(thinned, pop)
    post_pred, log_lik = replicate(thinned, theta, seed + 2, pop)
    if choices is not None:
        post_pred = post_pred.assign(replicate_choices(thinned, theta, seed + 3))
    if KAPPA in thinned.posterior:
        post_pred = post_pred.assign(replicate_nonresponse(thinned, seed + 4))
    prior_predictive = prior.prior_predictive
    if choices is not None:  # the model's answers, one per answered cell, back on their cells
        prior_predictive = prior_predictive.assign(
            {CHOICE: on_cells(prior_predictive[CHOICE], choices, observed[dims.RESPONDENT].values)}
        ).drop_dims(dims.CHOICE_ANSWER)
    idata.add_groups(
        prior=prior.prior,
        prior_predictive=_as_int8(prior_predictive),
        posterior_predictive=post_pred,
        log_likelihood=log_lik,
    )
    if "theta" not in idata.posterior:
        idata.add_groups({dims.RESPONDENT_DRAWS: theta.to_dataset()})
    return idata


def observed_dataset(data: SurveyData, responses: np.ndarray | None = None) -> xr.Dataset:
    """The ``observed_data`` group: ``data``'s answers, or other answers on its respondents
    and items (a simulated survey)."""
    coords = data.coords()
    return xr.Dataset(
        {OBSERVED: ((dims.RESPONDENT, dims.ITEM), data.responses if responses is None else responses)},
        coords={dims.RESPONDENT: coords[dims.RESPONDENT], dims.ITEM: coords[dims.ITEM]},
    )


def survey_constants(data: SurveyData) -> xr.Dataset:
    """What checks and summaries need to read a posterior without the codebook or data.

    Covariates (standardised, with their centres and scales), group indices with their
    level labels as coordinates, the battery of each item and the support categories.
    """
    cb = data.codebook
    coords = data.coords()
    constant = {
        "X": ((dims.RESPONDENT, dims.ALL_COVARIATES), data.X),
        "covariate_center": ((dims.ALL_COVARIATES,), data.covariate_center),
        "covariate_scale": ((dims.ALL_COVARIATES,), data.covariate_scale),
        "battery_of_item": ((dims.ITEM,), np.array([i.battery for i in cb.items])),
        ITEM_KEY: ((dims.ITEM,), item_key(cb)),
        "support": ((dims.CATEGORY,), np.array(cb.scale.support_mask)),
        "category_code": ((dims.CATEGORY,), np.asarray(cb.scale.codes)),
    }
    out_coords = {
        dims.RESPONDENT: coords[dims.RESPONDENT],
        dims.ITEM: coords[dims.ITEM],
        dims.CATEGORY: coords[dims.CATEGORY],
        dims.ALL_COVARIATES: data.covariate_names,
    }
    for g in cb.groups:
        constant[f"index_{g.id}"] = ((dims.RESPONDENT,), data.groups[g.id])
        out_coords[g.id] = list(g.levels)
    return xr.Dataset(constant, coords=out_coords)
