"""How centred each pooled block of item parameters is written, chosen from the data.

A hierarchical parameter ``theta ~ Normal(mu, sigma)`` is written in partially centred form
(Papaspiliopoulos, Roberts and Sköld 2007; Gorinova, Moore and Hoffman 2020)::

    theta_raw ~ Normal(w * mu, sigma ** w),   theta = mu + sigma ** (1 - w) * (theta_raw - w * mu)

``w = 1`` is the centred form, ``w = 0`` the non-centred one; every ``w`` gives the same
distribution of ``theta``, so the posterior is unchanged and only its geometry moves. For a
normal likelihood with sampling variance ``s2`` per parameter and a population variance
``tau2`` the sampler sees independent coordinates at ``w = tau2 / (tau2 + s2)``: centred where
each item's own answers pin it down, non-centred where pooling does the work.

Three blocks are pooled across the items of a battery: the first thresholds (item
locations) ``alpha``, the log threshold gaps ``g`` and the item-specific covariate
deviations ``delta``. ``auto`` estimates ``s2`` and ``tau2`` for the locations and the gaps
from each item's category counts (pilots that need no fit); see :func:`location_pilot` and
:func:`gap_pilot`.
For the deviations no pilot is built: ``auto`` means non-centred, which is right when the
deviations are small against their sampling error (measured on the twin in docs/design.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from scsurvey.model.priors import sd_rms

AUTO = "auto"
BLOCKS = ("locations", "gaps", "item_deviations", "groups")
# Group intercepts default to non-centred: with the pilot's weights (0.5-0.7 for occupation
# on the twin, whose true sd is 0.08) `full` diverged where the non-centred form did not
# (docs/design.md); "auto" is there to opt in.
DEFAULTS = {"locations": AUTO, "gaps": AUTO, "item_deviations": AUTO, "groups": 0.0}
# Below this many answers per item and gap the pilot's delta-method variances are unreliable
# (empty categories); such a battery is written non-centred.
MIN_PILOT_ANSWERS = 20


@dataclass(frozen=True)
class Centering:
    """Per battery, the weight ``w`` of each pooled block (1 centred, 0 non-centred)."""

    gaps: tuple[float, ...]
    item_deviations: tuple[float, ...]
    groups: dict = field(default_factory=dict)  # grouping factor -> weight per battery
    locations: tuple[float, ...] = ()  # first thresholds (empty: non-centred)
    setting: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def non_centred(n_batteries: int) -> Centering:
    """Every block non-centred: the form in which the twin's true values are written."""
    zeros = (0.0,) * n_batteries
    return Centering(
        gaps=zeros, item_deviations=zeros, groups={}, locations=zeros, setting={b: 0.0 for b in BLOCKS}
    )


def group_weight(centering: Centering, gid: str, n_batteries: int) -> tuple[float, ...]:
    """The weights of one grouping factor's intercepts (0, non-centred, when not chosen)."""
    return tuple(centering.groups.get(gid, (0.0,) * n_batteries))


def parse_setting(value, source: str, key: str):
    """A spec's centring value: ``"auto"``, ``true``, ``false`` or a weight in [0, 1]."""
    if value == AUTO:
        return AUTO
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and 0.0 <= float(value) <= 1.0:
        return float(value)
    raise ValueError(f'{source}: {key} = {value!r}: expected "auto", true, false or a weight in [0, 1]')


def gap_pilot(responses: np.ndarray, battery_of_item, n_categories: int, prior_rms: float) -> list[dict]:
    """Sampling and between-item variances of the log threshold gaps, per battery.

    From each item's category counts (0.5 added to each), the cumulative logits
    ``L_k = logit P(y <= k)`` give empirical gaps ``d_k = L_{k+1} - L_k`` and their log.
    The delta method gives each log gap's sampling variance ``s2`` (multinomial counts,
    adjacent cumulative logits correlated). The between-item variance is the spread of the
    log gaps across a battery's items less the mean sampling variance (method of moments),
    ``tau2 = max(0, var_j(log d) - mean(s2))``. A battery with one item borrows ``tau2`` from
    the prior of the gap sd (``prior_rms ** 2``).

    The gaps of the model sit on the latent scale, the empirical ones on the marginal scale,
    which shrinks every gap of an item by the same factor; that factor's spread across items
    (from differing discriminations) counts into ``tau2`` and pushes toward centring.

    Parameters
    ----------
    responses : ndarray of int, shape (respondent, item)
        0-based categories, negative where missing.
    battery_of_item : sequence of int
    n_categories : int
    prior_rms : float
        Root mean square of the gap sd under its prior (``scsurvey.model.priors.sd_rms``).

    Returns
    -------
    list of dict
        Per battery: ``s2``, ``tau2``, ``w`` and the smallest count per item and gap.
    """
    battery_of_item = np.asarray(battery_of_item)
    k = n_categories
    out = []
    for b in range(int(battery_of_item.max()) + 1):
        cols = np.flatnonzero(battery_of_item == b)
        if k < 3:
            out.append({"s2": float("nan"), "tau2": float("nan"), "w": 0.0, "min_count": 0})
            continue
        log_gaps, s2, answers = [], [], []
        for j in cols:
            y = responses[:, j]
            y = y[y >= 0]
            counts = np.bincount(y, minlength=k).astype(float) + 0.5
            n = counts.sum()
            cum = np.cumsum(counts)[:-1] / n  # P(y <= k), k = 0..K-2
            logits = np.log(cum / (1 - cum))
            d = np.diff(logits)
            v = 1.0 / (n * cum * (1 - cum))
            c = 1.0 / (n * (1 - cum[:-1]) * cum[1:])
            var_d = v[:-1] + v[1:] - 2 * c
            log_gaps.append(np.log(d))
            s2.append(var_d / d**2)
            answers.append(counts[1:-1] - 0.5)  # a gap is the width of an inner category
        out.append(_pilot_weight(np.array(log_gaps), np.array(s2), np.array(answers), prior_rms))
    return out


def _pilot_weight(est: np.ndarray, s2: np.ndarray, answers: np.ndarray, prior_rms: float) -> dict:
    """``w = tau2 / (tau2 + s2)`` from per-item estimates (rows items, columns elements).

    Only elements resting on at least ``MIN_PILOT_ANSWERS`` answers count: the delta method
    fails on fewer, and one rare category used to send a whole battery non-centred (in the
    SBC study of `full`, with categories drawn from the prior, nearly every survey). When
    fewer than half the elements qualify, the pilot says nothing and ``w`` is 0.
    """
    ok = answers >= MIN_PILOT_ANSWERS
    min_count = int(answers.min())
    if ok.mean() < 0.5:
        return {"s2": float("nan"), "tau2": float("nan"), "w": 0.0, "min_count": min_count}
    mean_s2 = float(s2[ok].mean())
    spreads = [est[ok[:, e], e].var(ddof=1) for e in range(est.shape[1]) if ok[:, e].sum() > 1]
    tau2 = max(0.0, float(np.mean(spreads)) - mean_s2) if spreads else prior_rms**2
    w = tau2 / (tau2 + mean_s2)
    return {"s2": mean_s2, "tau2": tau2, "w": float(w), "min_count": min_count}


def location_pilot(responses, battery_of_item, prior_rms: float) -> list[dict]:
    """Sampling and between-item variances of the first thresholds, per battery.

    Each item's first cumulative logit ``L = logit P(y = lowest)`` (0.5 added to both
    counts) has sampling variance ``1 / n_low + 1 / n_rest``; the between-item variance is
    ``tau2 = max(0, var_j(L) - mean(s2))`` (method of moments), or the prior's scale for a
    one-item battery. As for the gaps, the marginal scale shrinks every item's location by
    a similar factor, so the ratio ``w = tau2 / (tau2 + s2)`` carries over to the latent one.
    Small surveys with similar items get ``w`` near 0 (non-centred: the locations move with
    their mean), large ones with distinct items near 1.

    Returns
    -------
    list of dict
        Per battery: ``s2``, ``tau2``, ``w`` and the smallest count of the lowest category
        or of the rest.
    """
    battery_of_item = np.asarray(battery_of_item)
    out = []
    for b in range(int(battery_of_item.max()) + 1):
        logits, s2, answers = [], [], []
        for j in np.flatnonzero(battery_of_item == b):
            y = responses[:, j]
            y = y[y >= 0]
            low, rest = float((y == 0).sum()), float((y > 0).sum())
            logits.append([np.log((low + 0.5) / (rest + 0.5))])
            s2.append([1.0 / (low + 0.5) + 1.0 / (rest + 0.5)])
            answers.append([min(low, rest)])
        out.append(_pilot_weight(np.array(logits), np.array(s2), np.array(answers), prior_rms))
    return out


def group_pilot(responses, battery_of_item, groups: dict, X=None) -> dict:
    """Sampling and between-level variances of each grouping factor's intercepts, per battery.

    Each respondent's battery score is the mean of their answers in the battery, every item
    standardised first; scores are residualised on the covariates ``X`` (least squares with
    an intercept), as the model's group effects are net of them. A one-way analysis of
    variance then gives, per factor and battery, the sampling variance of a typical level's
    mean ``s2`` (pooled within-level variance over the mean level size) and the
    between-level variance ``tau2`` (DerSimonian and Laird's estimator): the same ratio the
    model's intercepts face, on the score scale rather than the latent one.

    Parameters
    ----------
    responses : ndarray of int, shape (respondent, item)
        0-based categories, negative where missing.
    battery_of_item : sequence of int
    groups : dict
        Factor id -> level index per respondent.
    X : ndarray, optional
        The covariates the model uses, shape (respondent, covariate).

    Returns
    -------
    dict
        Factor id -> list over batteries of ``{"s2", "tau2", "w"}``.
    """
    responses = np.asarray(responses, dtype=float)
    observed = responses >= 0
    y = np.where(observed, responses, np.nan)
    z = (y - np.nanmean(y, axis=0)) / np.nanstd(y, axis=0)
    battery_of_item = np.asarray(battery_of_item)
    out = {gid: [] for gid in groups}
    for b in range(int(battery_of_item.max()) + 1):
        with np.errstate(invalid="ignore"):
            score = np.nanmean(z[:, battery_of_item == b], axis=1)
        ok = np.isfinite(score)
        design = np.column_stack([np.ones(ok.sum()), *([] if X is None else [np.asarray(X)[ok]])])
        resid = score[ok] - design @ np.linalg.lstsq(design, score[ok], rcond=None)[0]
        for gid, index in groups.items():
            level = np.asarray(index)[ok]
            sizes = np.bincount(level)
            present = sizes > 1
            means = np.bincount(level, weights=resid)[present] / sizes[present]
            within = (resid - (np.bincount(level, weights=resid) / np.maximum(sizes, 1))[level]) ** 2
            v = within.sum() / max(len(resid) - present.sum(), 1)
            # DerSimonian-Laird: the between-level variance from the precision-weighted spread
            # of the level means, efficient where level sizes differ
            prec = sizes[present] / v
            q = float(np.sum(prec * (means - np.sum(prec * means) / prec.sum()) ** 2))
            k = int(present.sum())
            denom = prec.sum() - np.sum(prec**2) / prec.sum()
            tau2 = max(0.0, (q - (k - 1)) / denom) if k > 1 and denom > 0 else 0.0
            # a level's sampling variance at the harmonic mean size: the small levels, whose
            # intercepts the data inform least, are where a centred form funnels
            s2 = float(v * np.mean(1.0 / sizes[present]))
            w = tau2 / (tau2 + s2) if s2 > 0 else 0.0
            out[gid].append({"s2": float(s2), "tau2": float(tau2), "w": float(w)})
    return out


def resolve(
    setting: dict,
    responses,
    battery_of_item,
    n_categories: int,
    priors: dict,
    groups: dict | None = None,
    X=None,
) -> Centering:
    """The weights a spec's ``[centering]`` setting gives on these answers.

    Parameters
    ----------
    setting : dict
        ``{"gaps": ..., "item_deviations": ..., "groups": ...}``, each ``"auto"`` or a
        weight in [0, 1].
    responses : ndarray or None
        The answers (0-based, negative missing); ``None`` when there are none yet (the
        twin simulator builds the model before it draws answers): ``auto`` is then 0.
    battery_of_item : sequence of int
    n_categories : int
    priors : dict
        Merged priors (the gap-sd prior scale is read from ``sigma_g``).
    groups : dict, optional
        Modelled grouping factors: id -> level index per respondent.
    X : ndarray, optional
        The covariates the model uses (the group pilot works net of them).

    Returns
    -------
    Centering
    """
    n_batteries = int(np.max(battery_of_item)) + 1
    setting = {**DEFAULTS, **(setting or {})}
    evidence: dict = {}
    weights = {}
    answered = responses is not None and (np.asarray(responses) >= 0).any()
    groups = groups or {}
    value = setting["groups"]
    if value != AUTO:
        group_weights = {gid: (float(value),) * n_batteries for gid in groups}
    elif answered and groups:
        pilot = group_pilot(responses, battery_of_item, groups, X)
        evidence["groups"] = pilot
        group_weights = {gid: tuple(round(p["w"], 3) for p in rows) for gid, rows in pilot.items()}
    else:
        group_weights = {gid: (0.0,) * n_batteries for gid in groups}
    pilots = {
        "locations": lambda: location_pilot(
            np.asarray(responses), battery_of_item, sd_rms(priors["sigma_alpha"])
        ),
        "gaps": lambda: gap_pilot(
            np.asarray(responses), battery_of_item, n_categories, sd_rms(priors["sigma_g"])
        ),
    }
    for block in ("locations", "gaps", "item_deviations"):
        value = setting[block]
        if value != AUTO:
            weights[block] = (float(value),) * n_batteries
        elif block in pilots and answered:
            pilot = pilots[block]()
            evidence[block] = pilot
            weights[block] = tuple(round(p["w"], 3) for p in pilot)
        else:
            weights[block] = (0.0,) * n_batteries
    return Centering(
        locations=weights["locations"],
        gaps=weights["gaps"],
        item_deviations=weights["item_deviations"],
        groups=group_weights,
        setting=setting,
        evidence=evidence,
    )
