"""The posterior predictive replicates and the conditional log-likelihood, computed without
compiling the model's graph, against what PyMC computes from the graph."""

from __future__ import annotations

import arviz as az
import numpy as np
import pymc as pm
import pytest
from conftest import generic_codebook, generic_frame

from scsurvey.core import dims
from scsurvey.inputs.codebook import parse_codebook
from scsurvey.inputs.survey import prepare
from scsurvey.model.graph import build
from scsurvey.model.likelihood import category_probs
from scsurvey.model.spec import parse_spec
from scsurvey.posterior.predictive import (
    observed_dataset,
    replicate,
    respondent_log_likelihood,
    survey_constants,
    traits,
)

FULL = {"covariates": True, "groups": ["site"], "item_covariates": ["x1"], "correlated": True}


def _prior_as_posterior(link: str, draws: int = 40):
    """Prior draws of a model with every component standing in for a posterior."""
    raw = generic_codebook()
    data = prepare(generic_frame(raw, n=80, seed=5), parse_codebook(raw), "generic")
    spec = parse_spec({"components": FULL, "link": link}, "t")
    built = build(spec, data)
    with built.model:
        prior = pm.sample_prior_predictive(draws=draws, random_seed=21)
    post = prior.prior
    post.attrs.update(link=link, residual=1)
    idata = az.InferenceData(
        posterior=post, observed_data=observed_dataset(data), constant_data=survey_constants(data)
    )
    return built, data, idata


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_the_log_likelihood_is_pymcs_pointwise_one(link):
    """Same draws, same answers (5% missing): the direct computation equals PyMC's
    ``compute_log_likelihood`` of the model's graph summed over items, to 1e-9 relative
    plus 1e-6 absolute. Both are float64 but write the ordinal log-probability differently:
    the probit ones differ by up to 2e-7 (PyTensor's erfcx-based normal log-CDF against
    ``math.erfc``), far below the Monte Carlo error of any LOO comparison; a wrong draw,
    item or threshold moves a respondent's log-likelihood by whole units."""
    built, _, idata = _prior_as_posterior(link)
    _, ours = replicate(idata, traits(idata), seed=0)
    pymc = respondent_log_likelihood(idata, built.model)[dims.OBSERVED]
    assert ours[dims.OBSERVED].dims == pymc.dims
    np.testing.assert_allclose(ours[dims.OBSERVED].values, pymc.values, rtol=1e-9, atol=1e-6)


def test_replicates_follow_the_category_probabilities_at_each_draw():
    """Each draw's replicates come from that draw's parameters and traits. Sums of the
    replicated categories are standardised by their mean and variance under the model's
    probabilities at the draw: per (draw, item) over the 80 respondents, and per (draw,
    respondent) over the 7 items. A standardised sum of independent answers has mean square
    exactly 1; over 280 and 3,200 of them the sds of the mean square are about 0.09 and
    0.04, so the bounds 1.5 and 1.2 sit 5 or more sds away (no |z| over 80 respondents
    should pass 5.5). Replicates at the traits of other draws give 1.6 and 4.4."""
    _, data, idata = _prior_as_posterior("logit")
    theta = traits(idata)
    rep, _ = replicate(idata, theta, seed=3)
    y = rep[dims.OBSERVED].values.reshape(-1, *data.responses.shape)  # (sample, respondent, item)
    post = idata.posterior.stack(s=("chain", "draw"))
    lam = post["lambda"].transpose("s", ...).values
    cuts = post["cuts"].transpose("s", ...).values
    offset = np.einsum("ip,spj->sij", data.X[:, [0]], post["delta"].transpose("s", ...).values)
    col = [list(post[dims.BATTERY].values).index(b) for b in idata.constant_data["battery_of_item"].values]
    t = theta.values.reshape(-1, *theta.shape[2:])
    eta = lam[:, None, :] * t[:, :, col] + offset
    probs = category_probs(eta, cuts[:, None], "logit")  # (sample, respondent, item, K)
    k = np.arange(probs.shape[-1])
    mean = (probs * k).sum(-1)
    var = (probs * k**2).sum(-1) - mean**2
    z = (y.sum(1) - mean.sum(1)) / np.sqrt(var.sum(1))  # (sample, item)
    assert (z**2).mean() < 1.5 and np.abs(z).max() < 5.5, ((z**2).mean(), np.abs(z).max())
    answered = data.responses >= 0  # the replicates fill missing cells too; compare answered
    zr = ((y - mean) * answered).sum(2) / np.sqrt((var * answered).sum(2))  # (sample, respondent)
    assert (zr**2).mean() < 1.2, (zr**2).mean()
    assert rep[dims.OBSERVED].dtype == np.int8


def test_replicates_are_reproducible_from_the_seed():
    _, _, idata = _prior_as_posterior("logit", draws=5)
    theta = traits(idata)
    a, _ = replicate(idata, theta, seed=7)
    b, _ = replicate(idata, theta, seed=7)
    c, _ = replicate(idata, theta, seed=8)
    np.testing.assert_array_equal(a[dims.OBSERVED].values, b[dims.OBSERVED].values)
    assert (a[dims.OBSERVED].values != c[dims.OBSERVED].values).any()
