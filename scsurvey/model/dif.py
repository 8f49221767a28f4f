"""Differential item functioning (DIF): item-by-group deviations under a sparsity prior.

``[components] dif = ["ccp_member", "province"]`` names binary covariates or grouping
factors. Each becomes one or more *contrasts*: the centred indicator of a binary
covariate's second level, or of each level of a grouping factor beside its first (the
reference). For respondent i and item j::

    eta_ij = lambda_ij theta_{i, b(j)} + x_i' delta_j + d_i' dif_j
    lambda_ij = lambda_j exp(d_i' dif_discrimination_j)          (dif_kind = "nonuniform")

with d_i the respondent's contrasts. ``dif`` shifts the item's location for the group
(uniform DIF, in logits of the linear predictor); ``dif_discrimination`` scales its
discrimination (non-uniform DIF, log scale). Both have the regularised horseshoe of
Piironen and Vehtari (2017) per contrast: most items read alike, a few may not, and the
group's latent difference (its covariate effect or intercepts) stays identified by the items
that read alike. Items the codebook names as anchors (``dif_anchor = true``) have no DIF.
The model without the component is the special case of every ``dif`` at zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from scsurvey.core import dims
from scsurvey.model.spec import ModelSpec, SpecError

MIN_LEVEL_SIZE = 30  # respondents in each level a contrast compares
MIN_ITEMS = 3  # items per battery: below this DIF and the latent difference trade freely
# the pseudo-sd of one answer on the logit scale, in the global scale's guess
# (Piironen and Vehtari 2017, section 3.2: sigma / sqrt(n) per expected non-zero share)
PSEUDO_SD = 2.0
LOCATION = "dif"
DISCRIMINATION = "dif_discrimination"
DIF_DATA = "X_dif"  # pm.Data and constant_data: the contrasts (respondent, dif_level)
TAU0 = {LOCATION: "dif_tau0", DISCRIMINATION: "dif_discrimination_tau0"}  # pm.Data per contrast


@dataclass(frozen=True)
class Contrasts:
    """The DIF contrasts of a spec on a survey.

    Attributes
    ----------
    names : list of str
        The ``dif_level`` coordinate: a binary covariate's id, or ``"<group>[<level>]"``.
    factors : list of str
        The factor each contrast belongs to.
    X : ndarray, shape (respondent, contrast)
        Centred 0/1 indicators.
    free : ndarray of bool, shape (item,)
        Items that may have DIF (not anchors).
    center : ndarray, shape (contrast,)
        The indicators' means (the share of respondents in each compared level), subtracted
        in ``X``: a profile's contrast is its indicator minus this.
    """

    names: list[str]
    factors: list[str]
    X: np.ndarray
    free: np.ndarray
    center: np.ndarray

    def constants(self) -> dict:
        """What a stored posterior keeps of the contrasts (``constant_data``)."""
        return {
            DIF_DATA: ((dims.RESPONDENT, dims.DIF_LEVEL), self.X),
            "dif_center": ((dims.DIF_LEVEL,), self.center),
            "dif_factor": ((dims.DIF_LEVEL,), np.asarray(self.factors)),
        }

    def tau0(self, expected: float) -> np.ndarray:
        """Each contrast's global scale ``p0 / (J - p0) * sigma / sqrt(n var(d))``."""
        n_free = int(self.free.sum())
        p0 = min(expected, n_free - 0.5)
        n_var = np.maximum((self.X**2).sum(axis=0), 1.0)
        return p0 / (n_free - p0) * PSEUDO_SD / np.sqrt(n_var)


def _indicator(values: np.ndarray) -> np.ndarray:
    """A standardised binary covariate back as 0/1 (its second level as 1)."""
    return (values > (values.min() + values.max()) / 2).astype(float)


def contrasts(spec: ModelSpec, data) -> Contrasts | None:
    """The contrasts ``components.dif`` asks for, validated against the codebook and data.

    Parameters
    ----------
    spec : ModelSpec
    data : scsurvey.inputs.survey.SurveyData

    Returns
    -------
    Contrasts or None
        None when the spec has no DIF.

    Raises
    ------
    SpecError
        Naming ``components.dif``: a factor the codebook does not have, one the model does not
        estimate a latent difference for, one that is not binary or a grouping factor, a level
        with fewer than :data:`MIN_LEVEL_SIZE` respondents, a battery of fewer than
        :data:`MIN_ITEMS` items, or no item left free of an anchor.
    """
    comp = spec.components
    if not comp.dif:
        return None
    cb = data.codebook
    key = f"{spec.path or spec.name}: components.dif"
    small = [b for b in cb.battery_ids if sum(i.battery == b for i in cb.items) < MIN_ITEMS]
    if small:
        raise SpecError(
            f"{key} = {list(comp.dif)}: batteries {small} have fewer than {MIN_ITEMS} items; "
            "a group's DIF and its latent difference cannot be told apart there"
        )
    names, factors, columns = [], [], []
    for factor in comp.dif:
        named, cols, levels = _factor_columns(factor, spec, data, key)
        few = {label: int(ind.sum()) for label, ind in levels if ind.sum() < MIN_LEVEL_SIZE}
        if few:
            raise SpecError(
                f"{key}: {factor!r} has levels with fewer than {MIN_LEVEL_SIZE} respondents in "
                f"{data.source}: {few}; merge levels or drop the factor from DIF"
            )
        names += named
        columns += cols
        factors += [factor] * len(named)
    free = np.array([not i.dif_anchor for i in cb.items])
    for b in cb.battery_ids:
        in_b = np.array([i.battery == b for i in cb.items])
        if not (free & in_b).any():
            raise SpecError(f"{key}: every item of battery {b!r} is an anchor; no item is left to test")
    X = np.column_stack(columns)
    return Contrasts(names=names, factors=factors, X=X - X.mean(axis=0), free=free, center=X.mean(axis=0))


def _factor_columns(factor: str, spec: ModelSpec, data, key: str):
    """One DIF factor's contrast names and 0/1 columns, and every level's indicator (for the
    size check); a factor the model cannot use is a :class:`SpecError`."""
    comp, cb = spec.components, data.codebook
    covariates = {c.id: c for c in cb.covariates}
    groups = {g.id: g for g in cb.groups}
    if factor in covariates:
        cov = covariates[factor]
        if cov.type != "binary":
            raise SpecError(
                f"{key}: {factor!r} is a {cov.type} covariate; DIF needs a binary covariate "
                "or a grouping factor"
            )
        if comp.covariates is not True and factor not in comp.covariates:
            raise SpecError(
                f"{key}: {factor!r} is not in components.covariates; DIF is measured beside "
                "the group's latent difference, so the covariate must be in the model"
            )
        d = _indicator(data.X[:, data.covariate_names.index(factor)])
        return [factor], [d], [(f"{factor}={cov.levels[0]}", 1 - d), (f"{factor}={cov.levels[1]}", d)]
    if factor in groups:
        if factor not in comp.groups:
            raise SpecError(
                f"{key}: {factor!r} is not in components.groups; DIF is measured beside the "
                "group's latent difference, so the factor must be in the model"
            )
        index = data.groups[factor]
        levels = [(lv, (index == k).astype(float)) for k, lv in enumerate(groups[factor].levels)]
        names = [f"{factor}[{lv}]" for lv, _ in levels[1:]]
        return names, [ind for _, ind in levels[1:]], [(f"{factor}={lv}", ind) for lv, ind in levels]
    raise SpecError(
        f"{key}: {factor!r} is not a covariate or grouping factor of codebook {cb.path} "
        f"(covariates: {sorted(covariates)}, groups: {sorted(groups)})"
    )


def _horseshoe(name: str, tau0, prior: dict, free: np.ndarray):
    """A regularised horseshoe (level, item), zero at anchors, written non-centred.

    The half-Cauchy scales are products ``HalfNormal * sqrt(InverseGamma(1/2, 1/2))``, the
    form rstanarm's ``hs()`` samples in: the same distribution with lighter funnels.
    """
    shape = (dims.DIF_LEVEL, dims.ITEM)
    z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=shape)
    local = pm.HalfNormal(f"{name}_local", 1.0, dims=shape) * pt.sqrt(
        pm.InverseGamma(f"{name}_local_ig", 0.5, 0.5, dims=shape)
    )
    tau = pm.Deterministic(
        f"{name}_tau",
        tau0
        * pm.HalfNormal(f"{name}_tau_hn", 1.0, dims=dims.DIF_LEVEL)
        * pt.sqrt(pm.InverseGamma(f"{name}_tau_ig", 0.5, 0.5, dims=dims.DIF_LEVEL)),
        dims=dims.DIF_LEVEL,
    )
    nu, s = prior["slab_df"], prior["slab_scale"]
    slab2 = pm.InverseGamma(f"{name}_slab2", nu / 2, nu * s**2 / 2, dims=dims.DIF_LEVEL)
    t2 = (tau**2)[:, None]
    shrunk = pt.sqrt(slab2[:, None] * local**2 / (slab2[:, None] + t2 * local**2))
    return pm.Deterministic(name, z * pt.sqrt(t2) * shrunk * free.astype(float), dims=shape)


def dif_terms(model: pm.Model, spec: ModelSpec, c: Contrasts, data_fn):
    """Add the DIF variables to ``model``.

    Parameters
    ----------
    model : pymc.Model
    spec : ModelSpec
    c : Contrasts
    data_fn : callable
        ``data_fn(name, value, dims)``: the graph's data containers with static shapes.

    Returns
    -------
    offset : TensorVariable, shape (respondent, item)
        Each answer's shift of location.
    scale : TensorVariable or None, shape (respondent, item)
        Each answer's factor on its discrimination (``dif_kind = "nonuniform"``).
    """
    model.add_coord(dims.DIF_LEVEL, c.names)
    d = data_fn(DIF_DATA, c.X, (dims.RESPONDENT, dims.DIF_LEVEL))
    prior = spec.priors["dif"]
    tau0 = data_fn(TAU0[LOCATION], c.tau0(prior["expected"]), dims.DIF_LEVEL)
    offset = d @ _horseshoe(LOCATION, tau0, prior, c.free)
    scale = None
    if spec.components.dif_kind == "nonuniform":
        tau0_a = data_fn(TAU0[DISCRIMINATION], c.tau0(prior["expected"]), dims.DIF_LEVEL)
        scale = pt.exp(d @ _horseshoe(DISCRIMINATION, tau0_a, prior, c.free))
    return offset, scale
