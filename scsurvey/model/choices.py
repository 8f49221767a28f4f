"""Multiple-response questions fitted jointly with the batteries.

Respondent i asked question q chooses its option k with probability::

    logit P(choice_ik = 1) = option_intercept_k + option_slope_k * theta_{i, b(q)}
    option_intercept_k ~ Normal(mu_option_intercept[q], 1)
    option_slope_k     ~ Normal(mu_option_slope[q], 0.5)

theta is the respondent's latent support on the question's battery (the same trait the
battery's items measure), so the choices and the answers inform each other. Options are
partially pooled toward their question's mean with a fixed spread (priors ``option_intercept``
and ``option_slope``). Only answers of respondents who were asked enter
the likelihood: who was asked follows the routing rule, a function of answers the model
already has (or of a column it conditions on), so it is ignorable (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from scsurvey.core import dims
from scsurvey.core.dims import CHOICE, CHOICE_DATA
from scsurvey.inputs.choices import NOT_ASKED
from scsurvey.inputs.survey import SurveyData
from scsurvey.model.spec import ModelSpec, SpecError


@dataclass(frozen=True)
class ChoiceLayout:
    """The questions a spec fits, flattened to options."""

    questions: list[str]
    options: list[str]
    question_of_option: np.ndarray  # (option,) position in ``questions``
    battery_of_option: np.ndarray  # (option,) position in the codebook's batteries
    codes: np.ndarray  # (respondent, option) int8, as scsurvey.inputs.choices reads them
    n_batteries: int

    @property
    def answered(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and option of each answered cell, row by row."""
        return np.nonzero(self.codes >= 0)

    def constants(self) -> dict:
        """What a posterior stores of the layout in ``constant_data``."""
        return {
            "option_question": ((dims.OPTION,), np.asarray(self.questions)[self.question_of_option]),
            "option_battery_index": ((dims.OPTION,), self.battery_of_option),
        }


def layout(spec: ModelSpec, data: SurveyData) -> ChoiceLayout | None:
    """The spec's multiple-response questions on ``data``, or None when it fits none.

    Raises
    ------
    SpecError
        When a question was asked of nobody in ``data``, or nobody asked answered it.
    """
    chosen = spec.components.multiple_response
    if not chosen:
        return None
    cb = data.codebook
    questions = [q for q in cb.multiple_response if chosen is True or q.id in chosen]
    for q in questions:
        codes = data.choices[q.id]
        if not (codes >= 0).any():
            asked = int((codes[:, 0] != NOT_ASKED).sum())
            raise SpecError(
                f"{spec.path}: components.multiple_response: question {q.id!r} has no answer in "
                f"{data.source} ({asked} respondents asked); drop it from the spec"
            )
    return ChoiceLayout(
        questions=[q.id for q in questions],
        options=[o for q in questions for o in q.option_ids],
        question_of_option=np.repeat(np.arange(len(questions)), [len(q.options) for q in questions]),
        battery_of_option=np.repeat(
            [cb.battery_ids.index(q.battery) for q in questions], [len(q.options) for q in questions]
        ),
        codes=np.concatenate([data.choices[q.id] for q in questions], axis=1),
        n_batteries=len(cb.batteries),
    )


def _pooled(name: str, priors: dict, q_of) -> pt.TensorVariable:
    """``option_<name>`` pooled toward its question's mean with the fixed spread
    ``priors["option_<name>"]["sigma"]``, centred (each option is informed by the answers of
    everyone asked).

    A spread learned from a question's four or five options mixed slowest of the model and
    funnelled however it was written (docs/design.md): for the slopes, non-centred, R-hat
    1.0075 in 8,000 draws and 1.014 with 12 divergences on another twin, centred, 60
    divergences; for the intercepts, centred, 395 divergences and R-hat 1.117 on one of the
    study's twins, divergences left at target_accept 0.975; non-centred, R-hat 1.014 and bulk
    ESS 164 in 8,000 draws.
    """
    location = priors[f"mu_option_{name}"]
    mu = pm.Normal(f"mu_option_{name}", location["mu"], location["sigma"], dims=dims.QUESTION)
    return pm.Normal(f"option_{name}", mu[q_of], priors[f"option_{name}"]["sigma"], dims=dims.OPTION)


def choice_logp(value, logit):
    """Bernoulli log-probability of each answer (1 chosen, 0 not) given its log-odds."""
    return pt.cast(value, "float64") * logit - pt.softplus(logit)


def choice_random(logit, rng=None, size=None):
    """Draw answers (1 chosen, 0 not) at the log-odds ``logit``."""
    rng = np.random.default_rng(rng)
    p = 1.0 / (1.0 + np.exp(-np.asarray(logit)))
    return (rng.random(size if size is not None else p.shape) < p).astype(np.int64)


def choice_terms(model: pm.Model, spec: ModelSpec, lay: ChoiceLayout, theta, data_fn) -> None:
    """Add the options' parameters and the observed choices to ``model``.

    The likelihood runs over the answered cells only, one entry per answer (dim
    ``choice_answer``): the cells of respondents not asked are most of the
    (respondent, option) array and contribute nothing.

    Parameters
    ----------
    model : pymc.Model
    spec : ModelSpec
    lay : ChoiceLayout
    theta : TensorVariable
        The latent support (respondent, battery).
    data_fn : callable
        Makes a data container (:func:`scsurvey.model.graph._data`).
    """
    model.add_coord(dims.QUESTION, lay.questions)
    model.add_coord(dims.OPTION, lay.options)
    rows, options = lay.answered
    model.add_coord(dims.CHOICE_ANSWER, np.arange(len(rows)))
    intercept = _pooled("intercept", spec.priors, lay.question_of_option)
    slope = _pooled("slope", spec.priors, lay.question_of_option)
    # gathers from vectors: their gradients are cheap scatter-adds (a 2-D advanced index's is not)
    n_batteries = lay.n_batteries
    where = data_fn(
        "choice_trait_index", rows * n_batteries + lay.battery_of_option[options], dims.CHOICE_ANSWER
    )
    option = data_fn("choice_option_index", options, dims.CHOICE_ANSWER)
    logit = intercept[option] + slope[option] * theta.ravel()[where]
    observed = data_fn(CHOICE_DATA, lay.codes[rows, options].astype(np.int64), dims=dims.CHOICE_ANSWER)
    pm.CustomDist(
        CHOICE,
        logit,
        logp=choice_logp,
        random=choice_random,
        signature="()->()",
        dtype="int64",
        observed=observed,
        dims=dims.CHOICE_ANSWER,
    )
