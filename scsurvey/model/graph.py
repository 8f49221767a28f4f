"""The PyMC graded-response model with explanatory and multilevel parts (DESIGN.md).

Respondent i, item j in battery b(j), answer y_ij in 0..K-1 (missing allowed)::

    theta_ib = x_i' beta_b + sum_g u^g_{g[i], b} + zeta_ib,   zeta_i ~ MVN(0, R)
    eta_ij   = lambda_j theta_{i, b(j)} + x_i' delta_j
    P(y_ij <= k) = F(c_jk - eta_ij)

With ``components.residual = false`` (one answer per respondent cannot separate zeta from the
answer's own noise): zeta = 0 and lambda = 1, a cumulative logit (probit) model with group
intercepts on the link's own scale.

Parameterisation (why, measured in docs/design.md): item discriminations are written
centred; the pooled item locations, threshold gaps and item deviations partially centred,
with a weight per battery chosen from the data (:mod:`scsurvey.model.parameterisation`); respondent- and
group-level effects, informed by few answers each, non-centred. Group effects are zero-sum
over levels (or, with ``components.group_mean = "respondents"``, over respondents) and
covariates centred, so the thresholds alone carry the location.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from scsurvey.core import dims
from scsurvey.core.dims import OBSERVED, OBSERVED_DATA
from scsurvey.inputs.survey import MISSING, SurveyData
from scsurvey.model.choices import choice_terms, layout
from scsurvey.model.dif import contrasts, dif_terms
from scsurvey.model.likelihood import answer_tables, ordinal_logp, ordinal_random
from scsurvey.model.parameterisation import Centering, group_weight, resolve
from scsurvey.model.priors import sd_rms
from scsurvey.model.spec import ModelSpec, SpecError, check_against_codebook
from scsurvey.model.styles import NONRESPONSE_DATA, nonresponse_indicator, nonresponse_terms, style_terms

PARTIAL_CORR = "partial_corr01"  # C-vine partial correlations of the batteries, on (0, 1)
CENTERING_GAPS = "centering_gaps"  # pm.Data: per item, the centring weight of its gaps
CENTERING_LOCATIONS = "centering_locations"  # pm.Data: per item, the weight of its location
CENTERING_ITEM_DEVIATIONS = "centering_item_deviations"  # pm.Data: per battery
# raw (partially centred) variable -> the parameter it gives; the raw one's meaning moves
# with the centring weight
RAW = {"alpha_raw": "alpha", "g_raw": "g"}
# Group effects reach respondents through a one-hot matmul up to this many levels, through an
# index gather beyond (a matrix of levels x respondents would otherwise fill the memory)
ONEHOT_MAX_LEVELS = 40


@dataclass
class BuiltModel:
    """A PyMC model plus handles on tensors that are too large to store per draw."""

    model: pm.Model
    eta: pt.TensorVariable  # (respondent, item) linear predictor
    cuts: pt.TensorVariable  # (item, threshold)
    covariate_columns: list[str]
    centering: Centering
    # The same posterior from one likelihood term per distinct respondent (model without a
    # residual, :func:`aggregate`): what NUTS samples; ``model`` serves everything else.
    sampling_model: pm.Model | None = None

    @property
    def sampled(self) -> pm.Model:
        """The model NUTS samples: ``sampling_model`` when there is one, else ``model``."""
        return self.model if self.sampling_model is None else self.sampling_model


def _data(name: str, value, dims):
    """A data container with its static shape: the sizes are part of the compiled model
    anyway (they fix the parameter vector), and knowing them lets PyTensor specialise."""
    value = np.asarray(value)
    return pm.Data(name, value, dims=dims, shape=value.shape)


def centering_group(gid: str) -> str:
    """Name of the pm.Data holding grouping factor ``gid``'s centring weights per battery.

    Every weight the data choose is a data container, not a constant, so that the compiled
    model depends on the model's structure only and a refit of new answers reuses it.
    """
    return f"centering_{gid}"


def centering_values(centering: Centering, codebook) -> dict[str, np.ndarray]:
    """Each centring-weight container's value for ``centering``: what :func:`build` stores
    and what a fit of new answers swaps in."""
    battery_of_item = np.asarray(codebook.item_battery_index)
    n_batteries = len(codebook.batteries)
    values = {
        CENTERING_LOCATIONS: np.asarray(centering.locations or (0.0,) * n_batteries, dtype=float)[
            battery_of_item
        ],
        CENTERING_ITEM_DEVIATIONS: np.asarray(centering.item_deviations, dtype=float),
        **{
            centering_group(g.id): np.asarray(group_weight(centering, g.id, n_batteries), dtype=float)
            for g in codebook.groups
        },
    }
    if centering.gaps:
        values[CENTERING_GAPS] = np.asarray(centering.gaps, dtype=float)[battery_of_item]
    return values


def centering_data(centering: Centering, codebook, model: pm.Model) -> dict[str, np.ndarray]:
    """The values of ``model``'s centring-weight containers for ``centering``.

    For ``compiled.with_data(**centering_data(...))``: a fit of new answers sets the weights
    those answers choose without recompiling.
    """
    return {k: v for k, v in centering_values(centering, codebook).items() if k in model.named_vars}


def answer_data(responses: np.ndarray, codebook, model: pm.Model) -> dict[str, np.ndarray]:
    """The model's answer containers for new answers of the same shape.

    For ``compiled.with_data(**answer_data(...))``: the answers and what the likelihood
    precomputes from them (:func:`scsurvey.model.likelihood.answer_tables`).
    """
    responses = np.asarray(responses, dtype=np.int64)
    tables = answer_tables(responses, codebook.scale.n_categories - 1)
    tables[NONRESPONSE_DATA] = nonresponse_indicator(responses)
    return {OBSERVED_DATA: responses, **{k: v for k, v in tables.items() if k in model.named_vars}}


def covariate_columns(spec: ModelSpec, data: SurveyData) -> list[int]:
    """Columns of ``data.X`` that the spec's covariate component uses."""
    chosen = spec.components.covariates
    if chosen is False:
        return []
    if chosen is True:
        return list(range(len(data.covariate_names)))
    return [
        k for k, name in enumerate(data.covariate_names) if name in chosen or name.split("[")[0] in chosen
    ]


def sd_prior(name: str, prior: dict[str, float], dims_) -> pt.TensorVariable:
    """A pooled block's sd with its Gamma(shape, rate) prior (scsurvey.model.priors).

    Parameters
    ----------
    name : str
        Variable name.
    prior : dict
        ``{"shape": a, "rate": b}``.
    dims_ : str or tuple of str
        Dims of the variable.

    Returns
    -------
    TensorVariable
    """
    return pm.Gamma(name, alpha=prior["shape"], beta=prior["rate"], dims=dims_)


def _partially_centred(name, mu, sd, w, dims_):
    """``name ~ Normal(mu, sd)`` written with centring weight ``w`` (scsurvey.model.parameterisation)."""
    raw = pm.Normal(f"{name}_raw", w * mu, sd**w, dims=dims_)
    return pm.Deterministic(name, mu + sd ** (1 - w) * (raw - w * mu), dims=dims_)


def _thresholds(priors, battery_of_item, n_thresholds, weights):
    p = priors
    if np.bincount(battery_of_item).max() == 1:
        return _unpooled_thresholds(p, n_thresholds)
    mu_alpha = pm.Normal("mu_alpha", p["mu_alpha"]["mu"], p["mu_alpha"]["sigma"], dims=dims.BATTERY)
    sigma_alpha = sd_prior("sigma_alpha", p["sigma_alpha"], dims.BATTERY)
    w_a = _data(CENTERING_LOCATIONS, weights[CENTERING_LOCATIONS], dims=dims.ITEM)
    alpha = _partially_centred(
        "alpha", mu_alpha[battery_of_item], sigma_alpha[battery_of_item], w_a, dims.ITEM
    )
    g = None
    if n_thresholds > 1:
        # Ordered by construction: c_1 = alpha, c_k = c_{k-1} + exp(g_k). A hierarchical
        # prior placed directly on ordered cutpoints would not be normalised (see DESIGN.md).
        gbar = pm.Normal("gbar", p["gbar"]["mu"], p["gbar"]["sigma"], dims=(dims.BATTERY, dims.GAP))
        sigma_g = sd_prior("sigma_g", p["sigma_g"], dims.BATTERY)
        # Partially centred, the weight per item from its battery (scsurvey.model.parameterisation): the
        # same prior for every weight, a different geometry for the sampler.
        w = _data(CENTERING_GAPS, weights[CENTERING_GAPS], dims=dims.ITEM)[:, None]
        sd = sigma_g[battery_of_item][:, None]
        g = _partially_centred("g", gbar[battery_of_item], sd, w, (dims.ITEM, dims.GAP))
    return _cuts(alpha, g, n_thresholds)


def _cuts(alpha, g, n_thresholds):
    """Thresholds from the first one and the log gaps: ordered by construction."""
    cuts = alpha[:, None]
    if g is not None:
        # the running sum of the gaps as a product with a triangle of ones: the same sums,
        # and no cumulative-sum Op, whose Numba code is slow to compile
        running = pt.exp(g) @ np.triu(np.ones((n_thresholds - 1, n_thresholds - 1)))
        cuts = pt.concatenate([cuts, alpha[:, None] + running], axis=1)
    return pm.Deterministic("cuts", cuts, dims=(dims.ITEM, dims.THRESHOLD))


def _unpooled_thresholds(p, n_thresholds):
    """Every battery has one item: nothing to pool, and a battery mean and sd informed by one
    item only make a funnel. The location and log gaps get normal priors with the mean and
    variance the pooled prior implies (mean mu, variance sigma_mu^2 + E[sigma^2])."""
    alpha = pm.Normal(
        "alpha",
        p["mu_alpha"]["mu"],
        np.hypot(p["mu_alpha"]["sigma"], sd_rms(p["sigma_alpha"])),
        dims=dims.ITEM,
    )
    g = None
    if n_thresholds > 1:
        sd = np.hypot(p["gbar"]["sigma"], sd_rms(p["sigma_g"]))
        g = pm.Normal("g", p["gbar"]["mu"], sd, dims=(dims.ITEM, dims.GAP))
    return _cuts(alpha, g, n_thresholds)


def lkj_partial_alphas(n: int, eta: float) -> np.ndarray:
    """Beta parameters of the C-vine partial correlations whose matrix is LKJ(eta).

    Pair (i, j), j < i, conditions on variables 0..j-1; its partial correlation is
    2 Beta(b_j, b_j) - 1 with b_j = eta + (n - 2 - j) / 2 (Lewandowski, Kurowicka and Joe
    2009). Listed row by row of the lower triangle.
    """
    return np.array([eta + (n - 2 - j) / 2 for i in range(1, n) for j in range(i)])


def cholesky_from_partials(partial, n: int):
    """Cholesky factor of a correlation matrix from its C-vine partial correlations."""
    rows, k = [], 0
    for i in range(n):
        row, ssq = [], 0.0
        for j in range(i):
            value = partial[k] if j == 0 else partial[k] * pt.sqrt(1.0 - ssq)
            row.append(value)
            ssq = ssq + value**2
            k += 1
        row.append(pt.sqrt(1.0 - ssq) if i else pt.constant(1.0))
        row += [pt.constant(0.0)] * (n - i - 1)
        rows.append(pt.stack(row))
    return pt.stack(rows)


def _residual(priors, n_batteries, correlated):
    z = pm.Normal("z_respondent", 0.0, 1.0, dims=(dims.RESPONDENT, dims.BATTERY))
    if not correlated or n_batteries < 2:
        return z
    # LKJ through its C-vine: exact, and with no positive-definiteness check or Cholesky
    # decomposition in the gradient (pm.LKJCorr's check drops Numba into object mode).
    b = lkj_partial_alphas(n_batteries, priors["corr"]["eta"])
    u = pm.Beta(PARTIAL_CORR, alpha=b, beta=b, shape=len(b))
    chol = cholesky_from_partials(2.0 * u - 1.0, n_batteries)
    pm.Deterministic("corr_matrix", chol @ chol.T, dims=(dims.BATTERY, dims.BATTERY_OTHER))
    return z @ chol.T


def level_shares(index: np.ndarray, n_levels: int) -> np.ndarray:
    """Each level's share of the respondents (``components.group_mean = "respondents"``).

    Parameters
    ----------
    index : ndarray of int, shape (respondent,)
        Each respondent's level.
    n_levels : int

    Returns
    -------
    ndarray of float, shape (n_levels,)
        Shares summing to one.
    """
    return np.bincount(index, minlength=n_levels) / len(index)


def nesting_projection(group, parent) -> np.ndarray:
    """Matrix P with z @ P = z minus the mean of z over each parent level's children."""
    parent_of = np.array([parent.levels.index(p) for p in group.parents])
    same = (parent_of[:, None] == parent_of[None, :]).astype(float)
    return np.eye(len(parent_of)) - same / same.sum(axis=0, keepdims=True)


def _nested_zero_sum(gid, group, parent, sd):
    """Effects of a factor nested in another that is also modelled, zero-sum within parents.

    Zero-sum over all levels alone leaves the children of one parent free to absorb the
    parent's effect, which then trades against the parent's own intercept (measured on the
    twin: R-hat 1.014 and bulk ESS 334 at sigma_province). Centring within each parent
    removes that direction; the centred draws have variance ``sd**2 (1 - 1/n_children)``.
    """
    raw = pm.Normal(f"z_{gid}_raw", 0.0, sd, dims=(dims.BATTERY, gid))
    return pm.Deterministic(f"z_{gid}", raw @ nesting_projection(group, parent), dims=(dims.BATTERY, gid))


def _item_deviations(model, priors, data, cols, item_cov_ids, codebook, w_dev):
    """Item-specific covariate deviations, zero-sum within each battery, partially centred."""
    names = [data.covariate_names[k] for k in cols]
    dev_cols = [k for k, name in zip(cols, names, strict=False) if name.split("[")[0] in item_cov_ids]
    dev_names = [data.covariate_names[k] for k in dev_cols]
    model.add_coord(dims.ITEM_COVARIATE, dev_names)
    tau = pm.HalfNormal("tau_item", priors["tau_item"]["sigma"], dims=(dims.BATTERY, dims.ITEM_COVARIATE))
    w_dev = _data(CENTERING_ITEM_DEVIATIONS, w_dev, dims=dims.BATTERY)
    blocks = []
    for b, battery in enumerate(codebook.battery_ids):
        items = [i.id for i in codebook.items if i.battery == battery]
        if len(items) < 2:  # a zero-sum deviation of a lone item is zero
            blocks.append(pt.zeros((len(dev_cols), 1)))
            continue
        dim = f"{dims.ITEM}_{battery}"
        model.add_coord(dim, items)
        # Non-centred by default (w = 0): with 6-7 items per battery and a small true tau
        # (0.10 in the twin), the centred form funnels (R-hat 1.052, bulk ESS 99 at tau_item).
        w = w_dev[b]
        sd = tau[b][:, None]
        raw = pm.ZeroSumNormal(f"delta_{battery}_raw", sigma=sd**w, dims=(dims.ITEM_COVARIATE, dim))
        blocks.append(sd ** (1 - w) * raw)
    delta = pm.Deterministic("delta", pt.concatenate(blocks, axis=1), dims=(dims.ITEM_COVARIATE, dims.ITEM))
    X_dev = _data("X_item", data.X[:, dev_cols], dims=(dims.RESPONDENT, dims.ITEM_COVARIATE))
    return X_dev @ delta


def check_identified(spec: ModelSpec, data: SurveyData) -> None:
    """Refuse, before compiling, a spec asking for what these data cannot identify.

    Raises
    ------
    SpecError
        Naming the spec key: item deviations or a respondent residual in a battery of one
        item, a grouping factor whose respondents all sit in one level, an item nobody answered.
    """
    cb = data.codebook
    comp = spec.components
    lone = [b for b in cb.battery_ids if sum(i.battery == b for i in cb.items) < 2]
    if comp.item_covariates and lone:
        raise SpecError(
            f"{spec.path}: components.item_covariates = {list(comp.item_covariates)}: batteries "
            f"{lone} have one item, whose deviation from its battery's effect is not identified; "
            "drop item_covariates or add items"
        )
    if comp.residual and lone:
        raise SpecError(
            f"{spec.path}: components.residual = true: batteries {lone} have one item, and one "
            "answer cannot separate a respondent's residual (with the item's discrimination) "
            "from the answer's own noise; set components.residual = false (a cumulative model "
            "with group intercepts) or add items"
        )
    for gid in comp.groups:
        used = np.unique(data.groups[gid])
        if len(used) < 2:
            level = cb.group(gid).levels[int(used[0])] if len(used) else None
            raise SpecError(
                f"{spec.path}: components.groups: {gid!r} has respondents in one level only "
                f"({level!r}) in {data.source}; its effects are not identified: remove it"
            )
    empty = [cb.items[j].id for j in np.flatnonzero((data.responses == MISSING).all(axis=0))]
    if empty and data.mask.any():
        raise SpecError(
            f"{spec.path}: items {empty} have no answer in {data.source}; drop them from the codebook"
        )


def aggregate(spec: ModelSpec, data: SurveyData) -> tuple[SurveyData, np.ndarray]:
    """The distinct respondents of a model without a residual, and how many share each.

    Without a residual two respondents with the same group levels, covariates the model uses
    and answers contribute the same likelihood term, so the log-likelihood is a weighted sum
    over the distinct ones: exact, not an approximation. The World Values Survey example's
    184,924 respondents are 560 distinct ones (140 country-waves x 4 answers).
    """
    key = np.column_stack(
        [data.groups[gid] for gid in spec.components.groups]
        + [data.X[:, covariate_columns(spec, data)], data.responses]
    )
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    order = np.argsort(first)
    return data.subset(first[order]), counts[order].astype(float)


def build(
    spec: ModelSpec,
    data: SurveyData,
    centering: Centering | None = None,
    counts: np.ndarray | None = None,
    fused: bool = True,
) -> BuiltModel:
    """Build the model of ``spec`` on ``data``, keeping handles on eta and the thresholds.

    Parameters
    ----------
    spec : ModelSpec
    data : SurveyData
    centering : Centering, optional
        Centring weights of the pooled item blocks; by default resolved from the spec's
        ``[centering]`` setting and the answers in ``data`` (:mod:`scsurvey.model.parameterisation`).
    counts : ndarray, optional
        How many respondents each row of ``data`` stands for (:func:`aggregate`); each row's
        log-likelihood is multiplied by it.
    fused : bool
        The logit likelihood as one operation with its own gradient
        (:mod:`scsurvey.model.fused_likelihood`); False builds the graph form, the reference.

    Returns
    -------
    BuiltModel
    """
    cb = data.codebook
    check_against_codebook(spec, cb)
    check_identified(spec, data)
    dif = contrasts(spec, data)
    choices = layout(spec, data)
    if centering is None:
        centering = _resolve_centering(spec, data)
    comp = spec.components
    battery_of_item = np.array(cb.item_battery_index)
    n_thresholds = cb.scale.n_categories - 1
    coords = {
        k: v
        for k, v in data.coords().items()
        if k not in (dims.COVARIATE, *(g.id for g in cb.groups), dims.GAP)
    }
    if n_thresholds > 1:
        coords[dims.GAP] = data.coords()[dims.GAP]
    cols = covariate_columns(spec, data)
    with pm.Model(coords=coords) as model:
        y_obs = _data(OBSERVED_DATA, data.responses.astype(np.int64), dims=(dims.RESPONDENT, dims.ITEM))
        tables = None
        if spec.link == "logit" and not fused:
            tables = {
                name: _data(name, value, dims=(dims.RESPONDENT, dims.ITEM))
                for name, value in answer_tables(data.responses, n_thresholds).items()
            }
        weights = centering_values(centering, cb)
        cuts = _thresholds(spec.priors, battery_of_item, n_thresholds, weights)
        eta = _linear_predictor(model, spec, data, cols, weights, dif)
        answer_eta, log_spread = style_terms(model, spec, data, eta, _data)
        shape = (len(cb.items), n_thresholds)
        _answers(spec, answer_eta, cuts, y_obs, tables, counts, shape, fused, log_spread)
        if choices is not None:
            choice_terms(model, spec, choices, model["theta"], _data)
        if comp.nonresponse == "informative":
            nonresponse_terms(model, spec, data, model["theta"], _data)
    sampling_model = None
    if not comp.residual and counts is None:
        distinct, n_same = aggregate(spec, data)
        if len(n_same) < data.n_respondents:
            sampling_model = build(spec, distinct, centering, counts=n_same, fused=fused).model
    return BuiltModel(
        model=model,
        eta=eta,
        cuts=cuts,
        covariate_columns=[data.covariate_names[k] for k in cols],
        centering=centering,
        sampling_model=sampling_model,
    )


def _linear_predictor(model, spec: ModelSpec, data: SurveyData, cols, weights, dif):
    """eta (respondent, item): discriminations times traits, item-covariate deviations, DIF."""
    cb = data.codebook
    battery_of_item = np.array(cb.item_battery_index)
    lam = _discriminations(spec, cb, battery_of_item)
    theta = _traits(model, spec, data, cols, weights)
    dif_offset, dif_scale = dif_terms(model, spec, dif, _data) if dif else (None, None)
    expand = np.equal.outer(np.arange(len(cb.batteries)), battery_of_item).astype(float)
    if dif_scale is not None:
        lam = lam * dif_scale  # (respondent, item): non-uniform DIF
    eta = lam * (theta @ expand)  # (respondent, battery) -> (respondent, item)
    if spec.components.item_covariates:
        eta = eta + _item_deviations(
            model,
            spec.priors,
            data,
            cols,
            spec.components.item_covariates,
            cb,
            weights[CENTERING_ITEM_DEVIATIONS],
        )
    return eta if dif_offset is None else eta + dif_offset


def _resolve_centering(spec: ModelSpec, data: SurveyData) -> Centering:
    """The centring weights the spec's ``[centering]`` setting gives on these answers."""
    cb = data.codebook
    return resolve(
        spec.centering,
        data.responses if data.mask.any() else None,
        cb.item_battery_index,
        cb.scale.n_categories,
        spec.priors,
        groups={gid: data.groups[gid] for gid in spec.components.groups},
        X=data.X[:, covariate_columns(spec, data)],
    )


def _discriminations(spec: ModelSpec, cb, battery_of_item):
    comp, priors = spec.components, spec.priors
    if not comp.residual:  # the logistic's scale: nothing left to set the discriminations against
        return pm.Deterministic("lambda", pt.ones(len(cb.items)), dims=dims.ITEM)
    if comp.discrimination:
        a = pm.Normal("a", 0.0, priors["a"]["sigma"], dims=dims.ITEM)
        return pm.Deterministic("lambda", pt.exp(a), dims=dims.ITEM)
    # equal discriminations within a battery (a Rasch-type graded model)
    a = pm.Normal("a_battery", 0.0, priors["a"]["sigma"], dims=dims.BATTERY)
    return pm.Deterministic("lambda", pt.exp(a)[battery_of_item], dims=dims.ITEM)


def _traits(model, spec: ModelSpec, data: SurveyData, cols, weights):
    """theta (respondent, battery): residual, covariate effects and group intercepts."""
    comp, priors, cb = spec.components, spec.priors, data.codebook
    n_batteries = len(cb.batteries)
    if comp.residual:
        theta = _residual(priors, n_batteries, comp.correlated)
    else:
        theta = pt.zeros((data.n_respondents, n_batteries))
    if cols:
        model.add_coord(dims.COVARIATE, [data.covariate_names[k] for k in cols])
        X = _data("X", data.X[:, cols], dims=(dims.RESPONDENT, dims.COVARIATE))
        beta = pm.Normal("beta", 0.0, priors["beta"]["sigma"], dims=(dims.BATTERY, dims.COVARIATE))
        theta = theta + X @ beta.T
    for gid in comp.groups:
        theta = theta + _group_part(model, spec, data, gid, weights)
    return pm.Deterministic("theta", theta, dims=(dims.RESPONDENT, dims.BATTERY))


def _group_part(model, spec: ModelSpec, data: SurveyData, gid: str, weights):
    """One grouping factor's intercepts ``u_<gid>``, gathered to the respondents."""
    comp, cb = spec.components, data.codebook
    group = cb.group(gid)
    model.add_coord(gid, list(group.levels))
    sigma = sd_prior(f"sigma_{gid}", spec.priors["sigma_group"], dims.BATTERY)
    # partially centred (scsurvey.model.parameterisation): z_g ~ ZSN(sigma^w), u = sigma^(1-w) z_g
    w = _data(centering_group(gid), weights[centering_group(gid)], dims=dims.BATTERY)[:, None]
    sd = sigma[:, None]
    if group.nested_in in comp.groups:
        z = _nested_zero_sum(gid, group, cb.group(group.nested_in), sd**w)
    else:
        z = pm.ZeroSumNormal(f"z_{gid}", sigma=sd**w, dims=(dims.BATTERY, gid))
    u = sd ** (1 - w) * z
    if comp.group_mean == "respondents":
        # zero at the respondents' average, as the centred covariates are: with levels of
        # very unequal sizes, zero-sum over levels moves the large level whenever the small
        # one moves, and the thresholds with it (docs/design.md)
        share = _data(f"share_{gid}", level_shares(data.groups[gid], len(group.levels)), dims=gid)
        u = u - (u @ share)[:, None]
    u = pm.Deterministic(f"u_{gid}", u, dims=(dims.BATTERY, gid))
    if len(group.levels) <= ONEHOT_MAX_LEVELS:
        # a one-hot matmul: its gradient is a matmul too, where a gather's is a scatter-add
        member = np.equal.outer(data.groups[gid], np.arange(len(group.levels))).astype(float)
        onehot = _data(f"member_{gid}", member, dims=(dims.RESPONDENT, gid))
        return onehot @ u.T
    # the matmul's cost grows with levels x respondents, the gather's does not
    index = _data(f"index_{gid}", data.groups[gid].astype(np.int64), dims=dims.RESPONDENT)
    return u.T[index]


def _answers(spec: ModelSpec, eta, cuts, y_obs, tables, counts, shape, fused: bool, log_spread=None) -> None:
    """The observed answers' graded-response likelihood (each row weighted by ``counts``;
    thresholds spread per respondent by ``log_spread``, an extreme response style)."""
    logp = partial(ordinal_logp, link=spec.link, shape=shape, tables=tables, fused=fused)
    if counts is not None:
        count = _data("answer_count", counts, dims=dims.RESPONDENT)[:, None]
        logp = partial(_weighted, logp=logp, weight=count)
    if log_spread is not None:
        pm.CustomDist(
            OBSERVED,
            eta,
            cuts,
            log_spread[:, None],
            logp=partial(_spread_logp, logp=logp),
            random=partial(_spread_random, link=spec.link),
            signature="(),(k),()->()",
            dtype="int64",
            observed=y_obs,
            dims=(dims.RESPONDENT, dims.ITEM),
        )
        return
    pm.CustomDist(
        OBSERVED,
        eta,
        cuts,
        logp=logp,
        random=partial(ordinal_random, link=spec.link),
        signature="(),(k)->()",
        dtype="int64",
        observed=y_obs,
        dims=(dims.RESPONDENT, dims.ITEM),
    )


def _weighted(value, eta, cuts, logp, weight):
    return logp(value, eta, cuts) * weight


def _spread_logp(value, eta, cuts, log_spread, logp):
    return logp(value, eta, cuts, log_spread=log_spread)


def _spread_random(eta, cuts, log_spread, link, rng=None, size=None):
    return ordinal_random(eta, cuts, link, rng=rng, size=size, log_spread=log_spread)


def build_model(spec: ModelSpec, data: SurveyData) -> pm.Model:
    """Build the PyMC model of ``spec`` on ``data``.

    Parameters
    ----------
    spec : ModelSpec
        Which components are on, the link and the priors.
    data : SurveyData
        Validated answers, covariates and group indices.

    Returns
    -------
    pymc.Model
        Observed variable ``y`` with dims (respondent, item); missing cells contribute 0.
    """
    return build(spec, data).model
