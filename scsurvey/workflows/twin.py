"""The calibrated synthetic twin: a survey drawn from the model the project fits.

Covariates come from a Gaussian copula described in a twin file
(``data/codebook/<survey>.twin.toml``). Answers come from the fitted model's own graph
(:func:`scsurvey.model.graph.build`) with every parameter replaced by its true value, so the
twin is drawn from exactly the generative model that is fitted. Item locations are solved
so that expected top-two-box shares in a large population match the published shares.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import norm

from scsurvey.core.tomlfile import read_toml
from scsurvey.inputs.codebook import Codebook, load_codebook
from scsurvey.inputs.survey import MISSING, prepare
from scsurvey.model.graph import PARTIAL_CORR, build, nesting_projection
from scsurvey.model.likelihood import category_probs, ordinal_random
from scsurvey.model.parameterisation import non_centred
from scsurvey.model.predictor import evaluate_graph
from scsurvey.model.spec import ModelSpec, load_spec
from scsurvey.workflows.twin_choices import (
    TwinChoiceError,
    option_settings,
    simulate_choices,
    solve_intercepts,
)


class TwinError(ValueError):
    """A twin file is malformed; the message names the file and the key."""


@dataclass
class Twin:
    """A simulated survey, its true parameters and the calibration table."""

    frame: pd.DataFrame
    truth: dict[str, np.ndarray]
    calibration: pd.DataFrame
    config: dict


def load_twin_config(path: Path | str) -> dict:
    """Read a twin file; relative paths inside it are resolved against its folder."""
    path = Path(path)
    raw = read_toml(path, TwinError, "twin file")
    if "twin" not in raw:
        raise TwinError(f"twin file {path}: missing [twin] table")
    for key in ("codebook", "spec", "n", "seed", "population"):
        if key not in raw["twin"]:
            raise TwinError(f"twin file {path}: [twin].{key} is required")
    raw["_path"] = str(path)
    return raw


def _factor_names(config) -> list[str]:
    names = set()
    for entry in [*config.get("covariates", {}).values(), *config.get("groups", {}).values()]:
        names.update(entry.get("loadings", {}))
    return sorted(names)


def _latent(rng, n, loadings: dict, factors: dict[str, np.ndarray], where: str) -> np.ndarray:
    total = sum(v**2 for v in loadings.values())
    if total >= 1:
        raise TwinError(f"{where}: loadings {loadings} leave no residual variance")
    z = np.sqrt(1 - total) * rng.standard_normal(n)
    for name, weight in loadings.items():
        z += weight * factors[name]
    return z


def _categorical(u: np.ndarray, probs, levels, where):
    probs = np.asarray(probs, dtype=float)
    if len(probs) != len(levels) or not np.isclose(probs.sum(), 1.0, atol=1e-6):
        raise TwinError(
            f"{where}: {len(probs)} probs summing to {probs.sum():.4f}: need one "
            f"per level ({len(levels)}) summing to 1"
        )
    edges = np.cumsum(probs)[:-1]
    return np.asarray(levels, dtype=object)[np.searchsorted(edges, u, side="right")]


def _marginal(z: np.ndarray, spec: dict, levels, where: str):
    u = norm.cdf(z)
    kind = spec.get("kind")
    if kind == "categorical":
        return _categorical(u, spec["probs"], levels, where).astype(float)
    if kind == "bernoulli":
        return (u > 1 - spec["p"]).astype(float)
    if kind == "lognormal":
        x = spec["median"] * np.exp(spec["sigma"] * z)
        return np.maximum(np.round(x / spec["round"]) * spec["round"], spec["round"])
    if kind == "normal":
        x = np.clip(spec["mean"] + spec["sd"] * z, spec["min"], spec["max"])
        return np.round(x / spec["round"]) * spec["round"]
    raise TwinError(f"{where}: marginal kind {kind!r} is not categorical, bernoulli, lognormal or normal")


def simulate_respondents(codebook: Codebook, config: dict, n: int, rng) -> pd.DataFrame:
    """Covariates and group memberships of ``n`` respondents (no answers yet).

    Parameters
    ----------
    codebook : Codebook
    config : dict
        The twin file's content.
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        With the respondent id, covariate and group columns the codebook names, and the
        item columns empty.
    """
    src = config["_path"]
    factors = {f: rng.standard_normal(n) for f in _factor_names(config)}
    frame = {codebook.respondent_id: np.arange(1, n + 1)}
    cov_cfg = config.get("covariates", {})
    for cov in codebook.covariates:
        if cov.id not in cov_cfg:
            raise TwinError(f"twin file {src}: no [covariates.{cov.id}] for codebook covariate")
        c = cov_cfg[cov.id]
        where = f"twin file {src}: [covariates.{cov.id}]"
        z = _latent(rng, n, c.get("loadings", {}), factors, where)
        frame[cov.column] = _marginal(z, c["marginal"], cov.levels, where)
    group_cfg = config.get("groups", {})
    for group in codebook.groups:
        if group.breaks is not None or group.id not in group_cfg or "probs" not in group_cfg[group.id]:
            continue  # cut from a covariate, or derived from the group it nests
        g = group_cfg[group.id]
        where = f"twin file {src}: [groups.{group.id}]"
        z = _latent(rng, n, g.get("loadings", {}), factors, where)
        frame[group.column] = _categorical(norm.cdf(z), g["probs"], group.levels, where)
    for group in codebook.groups:  # parents follow their nested factor
        if group.nested_in is not None:
            parent = codebook.group(group.nested_in)
            lookup = dict(zip(group.levels, group.parents, strict=False))
            frame[parent.column] = [lookup[v] for v in frame[group.column]]
    missing = [g.column for g in codebook.groups if g.column not in frame]
    if missing:
        raise TwinError(f"twin file {src}: no way to simulate group columns {missing}")
    for item in codebook.items:
        frame[item.column] = np.nan
    for q in codebook.multiple_response:
        for option in q.options:
            frame[option.column] = np.nan
    return pd.DataFrame(frame)


def partials_from_corr(corr: np.ndarray) -> np.ndarray:
    """C-vine partial correlations of a correlation matrix (inverse of the model's map)."""
    chol = np.linalg.cholesky(corr)
    out = []
    for i in range(1, len(corr)):
        ssq = 0.0
        for j in range(i):
            out.append(chol[i, j] / np.sqrt(1.0 - ssq))
            ssq += chol[i, j] ** 2
    return np.array(out)


def _zero_sum(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=-1, keepdims=True)


def true_parameters(spec: ModelSpec, codebook: Codebook, config: dict, covariate_names, rng):
    """True values of every parameter except the thresholds (which are calibrated).

    Returns
    -------
    dict
        Parameter name (as in the model) -> array.
    """
    src = config["_path"]
    tw = config["twin"]
    batteries = codebook.battery_ids
    n_items = len(codebook.items)
    truth: dict[str, np.ndarray] = {}
    truth["a"] = rng.normal(0.0, tw["discrimination_sd"], n_items)
    comp = spec.components
    cov_cfg = config.get("covariates", {})
    if comp.covariates is not False:
        beta = np.zeros((len(batteries), len(covariate_names)))
        for p, name in enumerate(covariate_names):
            effect = cov_cfg[name.split("[")[0]].get("effect", {})
            beta[:, p] = [effect.get(b, 0.0) for b in batteries]
        truth["beta"] = beta
    group_cfg = config.get("groups", {})
    for gid in comp.groups:
        group = codebook.group(gid)
        g = group_cfg.get(gid, {})
        if "effects" in g:
            u = _zero_sum(np.array([g["effects"][b] for b in batteries], dtype=float))
            sigma = u.std(axis=1, ddof=1)
        elif "sigma" in g:
            sigma = np.array([g["sigma"][b] for b in batteries], dtype=float)
            raw = rng.standard_normal((len(batteries), len(group.levels)))
            if group.nested_in in comp.groups:  # zero-sum within each parent, as in the model
                truth[f"z_{gid}_raw"] = raw
                u = sigma[:, None] * (raw @ nesting_projection(group, codebook.group(group.nested_in)))
            else:
                u = sigma[:, None] * _zero_sum(raw)
        else:
            raise TwinError(f"twin file {src}: [groups.{gid}] needs `effects` or `sigma`")
        truth[f"sigma_{gid}"] = sigma
        truth[f"z_{gid}"] = u / sigma[:, None]
    if comp.correlated and len(batteries) > 1:
        n = len(batteries)
        corr = np.full((n, n), float(tw["correlation"]))
        np.fill_diagonal(corr, 1.0)
        truth[PARTIAL_CORR] = (partials_from_corr(corr) + 1.0) / 2.0
    if comp.item_covariates:
        dev = [n for n in covariate_names if n.split("[")[0] in comp.item_covariates]
        tau = np.full((len(batteries), len(dev)), float(tw["item_deviation_sd"]))
        truth["tau_item"] = tau
        for b, battery in enumerate(batteries):
            n_b = sum(i.battery == battery for i in codebook.items)
            if n_b > 1:
                raw = _zero_sum(rng.standard_normal((len(dev), n_b)))
                truth[f"delta_{battery}_raw"] = raw
                truth[f"delta_{battery}"] = tau[b][:, None] * raw
    return truth


def _gaps(codebook, config, rng) -> np.ndarray:
    """Log threshold increments before the spacing scale: (item, K-2)."""
    k = codebook.scale.n_categories
    base = np.asarray(config["twin"]["base_gaps"], dtype=float)
    if len(base) != k - 2:
        raise TwinError(f"twin file {config['_path']}: base_gaps needs {k - 2} values")
    return np.log(base)[None, :] + rng.normal(0.0, config["twin"]["gap_sd"], (len(codebook.items), k - 2))


def _thresholds(alpha, g):
    return np.concatenate([alpha[:, None], alpha[:, None] + np.cumsum(np.exp(g), axis=1)], axis=1)


def _solve_locations(eta, g, targets, support, link):
    """First thresholds so that the population top-box shares equal ``targets``."""
    first_support = int(np.argmax(support))  # support levels are the top ones
    alpha = np.empty(eta.shape[1])
    for j in range(eta.shape[1]):
        offs = np.concatenate([[0.0], np.cumsum(np.exp(g[j]))])

        def excess(a, j=j, offs=offs):
            cut = a + offs[first_support - 1]
            p = category_probs(eta[:, j], np.array([cut]), link)[..., 1]
            return p.mean() - targets[j]

        alpha[j] = brentq(excess, -200, 200, xtol=1e-10)
    return alpha


def _expected_mean(eta, cuts, levels, link):
    probs = category_probs(eta, cuts, link)  # (n, item, K)
    return (probs * np.asarray(levels, dtype=float)).sum(-1).mean(axis=0)


def _calibrate(codebook, config, eta, g0, link):
    """Item locations and the spacing scale (see the twin file)."""
    tw = config["twin"]
    support = np.array(codebook.scale.support_mask)
    if not support[-1] or support.sum() != support[np.argmax(support) :].size:
        raise TwinError(
            f"twin file {config['_path']}: calibration needs the support "
            "levels to be the top levels of the scale"
        )
    items = codebook.items
    targets = np.array([i.published_support if i.published_support is not None else 0.5 for i in items])
    target_battery = tw.get("calibrate_spacing")
    in_battery = np.array([i.battery == target_battery for i in items])

    def solve(log_scale):
        g = g0 + log_scale
        alpha = _solve_locations(eta, g, targets, support, link)
        return alpha, g

    if target_battery is None:
        return (*solve(0.0), 0.0)

    def index_gap(log_scale):
        alpha, g = solve(log_scale)
        means = _expected_mean(
            eta[:, in_battery], _thresholds(alpha, g)[in_battery], codebook.scale.levels, link
        )
        return means.mean() - tw["index_mean_target"]

    # The index mean is not monotone in the spacing scale: bracket the first crossing.
    grid = np.linspace(-1.5, 1.5, 13)
    values = [index_gap(x) for x in grid]
    crossing = [k for k in range(len(grid) - 1) if values[k] * values[k + 1] <= 0]
    if not crossing:
        raise TwinError(
            f"twin file {config['_path']}: no spacing scale in [{grid[0]}, {grid[-1]}] gives "
            f"{target_battery} index mean {tw['index_mean_target']} with base_gaps "
            f"{tw['base_gaps']} (reached {min(values):+.3f}..{max(values):+.3f} around it)"
        )
    k = crossing[0]
    log_scale = brentq(index_gap, grid[k], grid[k + 1], xtol=1e-6)
    return (*solve(log_scale), log_scale)


def _threshold_hyper(codebook, alpha, g) -> dict[str, np.ndarray]:
    """Hyperparameters set to the moments of the item-level truth they pool."""
    b_of = np.array(codebook.item_battery_index)
    out = {"alpha": alpha, "g": g}
    out["mu_alpha"] = np.array([alpha[b_of == b].mean() for b in range(len(codebook.batteries))])
    out["sigma_alpha"] = np.array(
        [
            alpha[b_of == b].std(ddof=1) if (b_of == b).sum() > 1 else 0.5
            for b in range(len(codebook.batteries))
        ]
    )
    out["gbar"] = np.array([g[b_of == b].mean(axis=0) for b in range(len(codebook.batteries))])
    out["sigma_g"] = np.array(
        [
            (g[b_of == b] - out["gbar"][b]).std(ddof=1) if (b_of == b).sum() > 1 else 0.2
            for b in range(len(codebook.batteries))
        ]
    )
    out["g_raw"] = (g - out["gbar"][b_of]) / out["sigma_g"][b_of][:, None]
    sd = out["sigma_alpha"][b_of]  # zero for the all-zero starting locations of the calibration
    out["alpha_raw"] = np.divide(alpha - out["mu_alpha"][b_of], sd, out=np.zeros_like(alpha), where=sd > 0)
    return out


def _apply_missingness(cat: np.ndarray, codebook, config, rng, theta=None) -> np.ndarray:
    """Survey codes with blanks (NaN), don't-know and refused codes; nobody left empty.

    With ``[twin] nonresponse_slope`` (default 0: missing completely at random) the chance
    of each non-answer moves with the respondent's trait on the item's battery: its log-odds
    change by the slope per unit of latent support (from the trait's mean), the three kinds
    in their rates' proportions.
    """
    tw = config["twin"]
    levels = np.asarray(codebook.scale.levels, dtype=float)
    codes = levels[cat]
    u = rng.random(codes.shape)
    rates = np.array([tw["missing_rate"], tw["dont_know_rate"], tw["refused_rate"]])
    slope = float(tw.get("nonresponse_slope", 0.0))
    if slope and theta is not None:
        total = rates.sum()
        trait = theta[:, codebook.item_battery_index]
        logit = np.log(total / (1.0 - total)) + slope * (trait - trait.mean(axis=0))
        u = u * total * (1.0 + np.exp(-logit))  # u < p_ij total / total: the same cuts below
    blank = u < rates[0]
    dk = (u >= rates[0]) & (u < rates[0] + rates[1])
    refused = (u >= rates[0] + rates[1]) & (u < rates.sum())
    lost = blank | dk | refused
    # A respondent with no answer at all would be rejected by the loader; keep one answer.
    empty = lost.all(axis=1)
    lost[empty, 0] = blank[empty, 0] = dk[empty, 0] = refused[empty, 0] = False
    missing = list(codebook.scale.missing)
    codes[blank] = np.nan
    if missing:
        codes[dk] = missing[0]
        codes[refused] = missing[-1]
    else:
        codes[dk | refused] = np.nan
    return codes


def make_twin(twin_path: Path | str, root: Path | str = ".", overrides: dict | None = None) -> Twin:
    """Simulate the calibrated twin described by a twin file.

    Parameters
    ----------
    twin_path : Path or str
        The twin file (``data/codebook/<survey>.twin.toml``).
    root : Path or str
        Project root, against which the twin file's spec path is resolved.
    overrides : dict, optional
        Values replacing those of the file's ``[twin]`` table (e.g. ``n``, ``seed``).

    Returns
    -------
    Twin
    """
    config = load_twin_config(twin_path)
    config["twin"].update(overrides or {})
    tw = config["twin"]
    root = Path(root)
    codebook = load_codebook(Path(twin_path).parent / tw["codebook"])
    spec = load_spec(root / tw["spec"])
    seed = int(tw["seed"])
    # the fifth stream is the multiple-response questions': the first four, and so every
    # battery answer, are what they were before the twin had them
    rng_pop, rng_sample, rng_par, rng_answers, rng_choices = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )

    # the true values are written in non-centred form, whatever the spec fits with
    noncentred = non_centred(len(codebook.batteries))
    pop_frame = simulate_respondents(codebook, config, int(tw["population"]), rng_pop)
    pop = prepare(pop_frame, codebook, source="twin population", require_answers=False)
    truth = true_parameters(spec, codebook, config, pop.covariate_names, rng_par)
    g0 = _gaps(codebook, config, rng_par)

    pop_values = {
        **truth,
        "z_respondent": rng_pop.standard_normal((pop.n_respondents, len(codebook.batteries))),
    }
    pop_eta, _, pop_theta = evaluate_graph(
        build(spec, pop, noncentred), _placeholder_thresholds(pop_values, g0, codebook), ("theta",)
    )
    alpha, g, log_scale = _calibrate(codebook, config, pop_eta, g0, spec.link)
    truth.update(_threshold_hyper(codebook, alpha, g))

    frame = simulate_respondents(codebook, config, int(tw["n"]), rng_sample)
    sample = prepare(frame, codebook, source="twin sample", require_answers=False)
    truth["z_respondent"] = rng_sample.standard_normal((sample.n_respondents, len(codebook.batteries)))
    eta, cuts, theta = evaluate_graph(build(spec, sample, noncentred), truth, ("theta",))
    cat = ordinal_random(eta, cuts, link=spec.link, rng=rng_answers)
    codes = _apply_missingness(cat, codebook, config, rng_answers, theta)
    for j, item in enumerate(codebook.items):
        frame[item.column] = codes[:, j]

    pop_cuts = _thresholds(alpha, g)
    answered = prepare(frame, codebook, source="twin sample").responses  # as the loader reads it
    calibration, index = _calibration_tables(codebook, answered, pop_eta, pop_cuts, spec.link)
    config["_calibration"] = {"log_spacing_scale": float(log_scale), "index_mean": index}
    if codebook.multiple_response:
        pop_answers = ordinal_random(pop_eta, pop_cuts, link=spec.link, rng=rng_choices)
        population = (pop_theta, pop_answers, pop_frame)
        choices, table = _choices(codebook, config, population, theta, answered, frame, rng_choices)
        truth.update(choices)
        config["_calibration"]["multiple_response"] = table
    truth_out = {k: np.asarray(v) for k, v in truth.items()}
    return Twin(frame=frame, truth=truth_out, calibration=calibration, config=config)


def _choices(codebook, config, population, theta, answered, frame, rng):
    """The multiple-response columns (written into ``frame``), their true values, and per
    option the assumed population share, the sample's true and observed shares and how many
    were asked. ``answered`` are the sample's answers as the loader reads them (they route)."""
    try:
        settings = option_settings(codebook, config)
    except TwinChoiceError as err:
        raise TwinError(str(err)) from None
    pop_theta, pop_answers, pop_frame = population
    intercept = solve_intercepts(codebook, settings, pop_theta, pop_answers, pop_frame)
    columns, share, observed, asked = simulate_choices(
        codebook, intercept, settings["slope"], theta, answered, frame, rng
    )
    for column, codes in columns.items():
        frame[column] = codes
    names = [f"{q.id}.{o}" for q in codebook.multiple_response for o in q.option_ids]
    table = {
        name: {
            "population": float(settings["share"][k]),
            "sample_true": float(share[k]),
            "sample_observed": float(observed[k]),
            "asked": int(asked[k]),
        }
        for k, name in enumerate(names)
    }
    truth = {
        "option_intercept": intercept,
        "option_slope": settings["slope"],
        "option_share": share,
        "option_share_population": settings["share"],
    }
    return truth, table


def _calibration_tables(codebook, answered: np.ndarray, pop_eta, pop_cuts, link: str):
    """Per item the published, population and sample support shares; per battery the index
    mean in the population and in the sample (``answered``: as the loader reads the sample)."""
    support = np.array(codebook.scale.support_mask)
    pop_share = category_probs(pop_eta, pop_cuts, link)[..., support].sum(-1).mean(axis=0)
    ok = answered != MISSING
    sample_share = (support[np.clip(answered, 0, None)] & ok).sum(0) / ok.sum(0)
    calibration = pd.DataFrame(
        {
            "item": codebook.item_ids,
            "battery": [i.battery for i in codebook.items],
            "published": [i.published_support for i in codebook.items],
            "twin_population": pop_share,
            "twin_sample": sample_share,
        }
    )
    index = {}
    for battery in codebook.battery_ids:
        cols = [j for j, i in enumerate(codebook.items) if i.battery == battery]
        pop_mean = _expected_mean(pop_eta[:, cols], pop_cuts[cols], codebook.scale.levels, link).mean()
        sub = np.where(
            ok[:, cols],
            np.asarray(codebook.scale.levels)[np.clip(answered[:, cols], 0, None)],
            np.nan,
        )
        index[battery] = {
            "population": float(pop_mean),
            "sample": float(np.nanmean(np.nanmean(sub, axis=1))),
        }
    return calibration, index


def _placeholder_thresholds(values, g0, codebook):
    """Any valid thresholds: eta does not depend on them, but the graph asks for values."""
    return {**values, **_threshold_hyper(codebook, np.zeros(len(codebook.items)), g0)}


def write_twin(twin: Twin, csv_path: Path | str, truth_path: Path | str) -> None:
    """Write the twin's table (CSV) and every true value (JSON)."""
    csv_path, truth_path = Path(csv_path), Path(truth_path)
    for folder in {csv_path.parent, truth_path.parent}:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise TwinError(
                f"{folder}: cannot write the twin there: a file of that name is in the way"
            ) from None
    frame = twin.frame.copy()
    for col in frame.columns:  # integer codes stay integers, blanks stay blank, as in an export
        values = frame[col]
        if pd.api.types.is_float_dtype(values) and np.all(values.dropna() % 1 == 0):
            frame[col] = values.astype("Int64")
    # each file written beside its place and renamed: an interrupt leaves the old twin whole
    tmp_csv = csv_path.with_name(f".{csv_path.name}.tmp")
    frame.to_csv(tmp_csv, index=False)
    payload = {
        "about": "True parameter values of the synthetic twin; names and shapes as in the model.",
        "twin_file": twin.config["_path"],
        "seed": twin.config["twin"]["seed"],
        "calibration": twin.config["_calibration"],
        "parameters": {k: v.tolist() for k, v in twin.truth.items()},
    }
    tmp_truth = truth_path.with_name(f".{truth_path.name}.tmp")
    tmp_truth.write_text(json.dumps(payload, indent=1))
    os.replace(tmp_truth, truth_path)
    os.replace(tmp_csv, csv_path)


def read_truth(path: Path | str) -> dict[str, np.ndarray]:
    """True parameter values written by :func:`write_twin`."""
    payload = json.loads(Path(path).read_text())
    return {k: np.asarray(v) for k, v in payload["parameters"].items()}
