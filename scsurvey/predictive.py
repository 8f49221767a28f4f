"""Predictive draws, log-likelihood and the data groups that make a posterior self-contained."""

from __future__ import annotations

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from . import dims
from .dims import OBSERVED
from .draws import thin
from .model import BuiltModel
from .spec import ModelSpec
from .survey import SurveyData


def respondent_log_likelihood(idata: az.InferenceData, model: pm.Model) -> xr.Dataset:
    """Log-likelihood per respondent (summed over items) for leave-one-respondent-out LOO."""
    cell = pm.compute_log_likelihood(
        idata, model=model, var_names=[OBSERVED], extend_inferencedata=False, progressbar=False
    )
    return xr.Dataset({OBSERVED: cell[OBSERVED].sum(dims.ITEM)})


def _as_int8(ds: xr.Dataset) -> xr.Dataset:
    return ds.assign({OBSERVED: ds[OBSERVED].astype(np.int8)})


def with_model_data(idata: az.InferenceData, model: pm.Model) -> az.InferenceData:
    """The posterior with the model's data containers as ``constant_data``.

    PyMC redraws from the prior every variable that depends on a data container missing
    from the trace's ``constant_data`` (it takes the data to have changed); the gaps' centring
    weight is such a container, so without this the posterior predictive would redraw them.
    """
    values = {v.name: np.asarray(v.get_value()) for v in model.data_vars}
    constant = xr.Dataset({k: ([f"{k}_dim_{i}" for i in range(v.ndim)], v) for k, v in values.items()})
    return az.InferenceData(posterior=idata.posterior, constant_data=constant)


# Posterior predictive replicates and the conditional log-likelihood are stored for at most
# this many draws (every k-th of each chain): the checks read at most 1,000 replicates, and
# 8,000 draws x 1,173 respondents x 13 items of replicates alone were 122 MB.
PREDICTIVE_DRAWS = 1000
# Beyond 20,000 answers (respondents x items) the draws shrink to keep about this many
# replicated answers, down to MIN_PREDICTIVE_DRAWS: predictive checks of shares on a large
# survey are limited by the survey, not by a few hundred draws.
ANSWER_DRAWS_BUDGET = 20_000_000
MIN_PREDICTIVE_DRAWS = 100


def predictive_draws(n_answers: int) -> int:
    """How many posterior draws the predictive groups keep for a survey of ``n_answers``
    cells (respondents x items)."""
    return int(np.clip(ANSWER_DRAWS_BUDGET // max(n_answers, 1), MIN_PREDICTIVE_DRAWS, PREDICTIVE_DRAWS))


def add_predictive(idata, built: BuiltModel, data: SurveyData, spec: ModelSpec, progress=True):
    """Add prior, prior predictive, posterior predictive, log-likelihood and data groups.

    The posterior predictive and the conditional log-likelihood use at most
    :func:`predictive_draws` draws, evenly thinned within each chain.
    """
    model = built.model
    seed = spec.sampler.seed
    n_draws = predictive_draws(data.responses.size)
    thinned = thin(idata, n_draws)
    with model:
        prior = pm.sample_prior_predictive(draws=min(spec.sampler.prior_draws, n_draws), random_seed=seed + 1)
        post_pred = pm.sample_posterior_predictive(
            with_model_data(thinned, model),
            var_names=[OBSERVED],
            random_seed=seed + 2,
            progressbar=progress,
            extend_inferencedata=False,
        )
    idata.add_groups(
        prior=prior.prior,
        prior_predictive=_as_int8(prior.prior_predictive),
        posterior_predictive=_as_int8(post_pred.posterior_predictive),
        log_likelihood=respondent_log_likelihood(thinned, model),
    )
    for name in ("observed_data", "constant_data"):  # nutpie and PyMC write their own
        if name in idata.groups():
            del idata[name]
    idata.add_groups(observed_data=observed_dataset(data), constant_data=survey_constants(data))
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
