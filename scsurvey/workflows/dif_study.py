"""Does the DIF component find DIF where there is some, and only there? A simulation study.

Surveys of one battery are simulated outside the model's graph (NumPy, the graded-response
model written out), for a binary group that splits the respondents in two::

    theta_i = latent_difference * x_i + z_i,   z_i ~ N(0, 1)
    eta_ij  = lambda_j theta_i + dif_j x_i

with ``dif_j = dif_size`` for the planted items and 0 elsewhere, item discriminations and
thresholds drawn afresh for every survey. Two conditions: ``null`` (no DIF) and ``planted``.
Each survey is fitted twice, with the DIF component and without it (the plain model), and
the study records per item the posterior probability of DIF beyond the practical size
(:data:`scsurvey.posterior.dif.ROPE`), whether the item is flagged, and the latent
difference's interval under both models.

One JSON file per survey and condition under ``models/dif_study/<key>/`` makes an
interrupted study resume where it stopped; the two models are compiled once per process and
each survey's answers are swapped in.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from scsurvey.core import dims
from scsurvey.inference.rank_diagnostics import diagnostics
from scsurvey.inference.rounds import (
    Judgement,
    compile_nutpie,
    round_seed,
    sample_in_rounds,
    sample_nutpie,
    swap_data,
)
from scsurvey.inputs.codebook import parse_codebook
from scsurvey.inputs.survey import prepare
from scsurvey.model.graph import answer_data, build, centering_data
from scsurvey.model.parameterisation import resolve
from scsurvey.model.spec import spec_from_configs
from scsurvey.posterior import dif as dif_summary
from scsurvey.storage.files import write_json_atomic
from scsurvey.workflows.sbc import ConvergedRule

CONDITIONS = ("null", "planted")
ROPES = (0.1, 0.15, 0.2, 0.25, 0.3)  # practical sizes at which each item's probability is kept
MODELS = ("dif", "plain")
GROUP = "group"
CATEGORIES = 5


@dataclass(frozen=True)
class StudySettings:
    """What defines a study; changing any of it (but ``n_surveys``) starts a new one."""

    n_surveys: int = 20
    n_respondents: int = 1000
    n_items: int = 8
    planted: tuple[int, ...] = (0, 1)  # items given DIF in the planted condition
    dif_size: float = 0.5  # logits of the linear predictor
    latent_difference: float = 0.4  # the group's true effect on the latent trait
    group_share: float = 0.5
    draws: int = 1000
    tune: int = 500
    chains: int = 4
    # the horseshoe's funnels diverge now and then at 0.9 (measured: 2 of 3 first rounds)
    target_accept: float = 0.95
    seed: int = 3401
    rounds: int = 3

    def key(self) -> str:
        content = json.dumps({**asdict(self), "n_surveys": None}, sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()[:12]


def codebook_dict(n_items: int) -> dict:
    """The study's codebook: one battery of ``n_items`` five-point items and the group."""
    levels = list(range(1, CATEGORIES + 1))
    return {
        "survey": {"name": "dif_study", "respondent_id": "id"},
        "scale": {"levels": levels, "labels": [f"L{v}" for v in levels], "support": [4, 5], "missing": [9]},
        "batteries": [{"id": "battery"}],
        "items": [{"id": f"i{j + 1}", "battery": "battery", "column": f"q{j + 1}"} for j in range(n_items)],
        "covariates": [
            {"id": GROUP, "column": GROUP, "type": "binary", "levels": [0, 1], "standardize": "center"}
        ],
    }


def design(settings: StudySettings) -> np.ndarray:
    """The group indicator, the same in every survey: the first ``group_share`` are 1."""
    x = np.zeros(settings.n_respondents)
    x[: round(settings.group_share * settings.n_respondents)] = 1.0
    return x


def simulate(settings: StudySettings, condition: str, survey: int) -> tuple[pd.DataFrame, dict]:
    """One survey of ``condition`` and its truth.

    Returns
    -------
    frame : pandas.DataFrame
        The wide file a user would have (answers coded 1..5).
    truth : dict
        ``latent_difference``, ``dif`` (per item), ``lambda``.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"condition {condition!r}: expected one of {CONDITIONS}")
    rng = np.random.default_rng([settings.seed, CONDITIONS.index(condition), survey])
    n, n_j = settings.n_respondents, settings.n_items
    x = design(settings)
    lam = np.exp(rng.normal(0.2, 0.25, n_j))
    first = rng.normal(-2.0, 0.5, n_j)
    gaps = np.exp(rng.normal(0.2, 0.2, (n_j, CATEGORIES - 2)))
    cuts = np.column_stack([first, first[:, None] + np.cumsum(gaps, axis=1)])
    cuts = cuts - cuts.mean(axis=1, keepdims=True) + rng.normal(0.0, 0.5, n_j)[:, None]
    dif = np.zeros(n_j)
    if condition == "planted":
        dif[list(settings.planted)] = settings.dif_size
    theta = settings.latent_difference * x + rng.normal(size=n)
    eta = lam * theta[:, None] + dif * x[:, None]
    u = rng.random((n, n_j))
    p_le = 1.0 / (1.0 + np.exp(-(cuts[None] - eta[:, :, None])))  # (n, j, K-1)
    answers = 1 + (u[:, :, None] > p_le).sum(axis=2)
    frame = pd.DataFrame({"id": np.arange(1, n + 1), GROUP: x.astype(int)})
    for j in range(n_j):
        frame[f"q{j + 1}"] = answers[:, j]
    truth = {"latent_difference": settings.latent_difference, "dif": dif.tolist(), "lambda": lam.tolist()}
    return frame, truth


def specs(settings: StudySettings) -> dict:
    """The two models fitted to each survey."""
    sampler = {"draws": settings.draws, "tune": settings.tune, "chains": settings.chains, "cores": 2}
    base = {"covariates": [GROUP]}
    return {
        "dif": spec_from_configs(
            "dif_study_dif", {**base, "dif": [GROUP]}, {**sampler, "target_accept": settings.target_accept}
        ),
        "plain": spec_from_configs("dif_study_plain", base, sampler),
    }


_COMPILED: dict = {}


def _compiled(settings: StudySettings, model: str, data):
    """The model compiled once per process (the design and sizes are the same in every survey)."""
    key = (settings.key(), model)
    if key not in _COMPILED:
        spec = specs(settings)[model]
        built = build(spec, data)
        _COMPILED[key] = (spec, built, compile_nutpie(built.model, "numba", swappable=True))
    return _COMPILED[key]


def fit(settings: StudySettings, model: str, data, seed: int):
    """Fit one model to one survey's answers: sampling rounds until converged (R-hat of the
    latent difference and every DIF at most 1.01, no divergence)."""
    spec, built, compiled = _compiled(settings, model, data)
    cb = data.codebook
    swap = answer_data(data.responses, cb, built.model)
    centering = resolve(
        spec.centering, data.responses, cb.item_battery_index, cb.scale.n_categories, spec.priors
    )
    swap.update(centering_data(centering, cb, built.model))
    compiled = swap_data(compiled, swap)
    sampler = replace(spec.sampler, draws=settings.draws, tune=settings.tune, chains=settings.chains)
    return sample_in_rounds(
        lambda s, target_accept, draws: sample_nutpie(
            compiled, replace(sampler, target_accept=target_accept, draws=draws), progress=False, seed=s
        ),
        _StudyRule(ranked=[]),
        chains=sampler.chains,
        draws=sampler.draws,
        tune=sampler.tune,
        target_accept=sampler.target_accept,
        seed_of=lambda k: round_seed(seed, k),
        max_rounds=settings.rounds,
    )


class _StudyRule(ConvergedRule):
    """Converged: R-hat at most 1.01 over the quantities the study reads, no divergence;
    the next round planned as an SBC simulation's (:class:`sbc.ConvergedRule`)."""

    RHAT_MAX = 1.01

    def judge(self, idata):
        found = diagnostics(idata.posterior[[v for v in ("beta", "dif") if v in idata.posterior]])
        rhat = max(float(found["rhat"][v].max()) for v in found["rhat"].data_vars)
        divergences = int(idata.sample_stats["diverging"].sum())
        settled = rhat <= self.RHAT_MAX and divergences == 0
        verdict = "converged" if settled else f"max R-hat {rhat:.3f}, {divergences} divergences"
        return Judgement(settled, verdict, {"max_rhat": rhat}, None, divergences)


def survey_record(settings: StudySettings, condition: str, survey: int) -> dict:
    """Simulate one survey, fit both models, and summarise what each found."""
    frame, truth = simulate(settings, condition, survey)
    codebook = parse_codebook(codebook_dict(settings.n_items))
    data = prepare(frame, codebook, source=f"{condition} survey {survey}")
    record = {"condition": condition, "survey": survey, "truth": truth}
    for k, model in enumerate(MODELS):
        t0 = time.perf_counter()
        seed = settings.seed * 1009 + 97 * survey + 31 * k + CONDITIONS.index(condition)
        result = fit(settings, model, data, seed=seed)
        post = result.idata.posterior
        beta = post["beta"].sel({dims.COVARIATE: GROUP}).isel({dims.BATTERY: 0}).values.ravel()
        lo, hi = np.quantile(beta, [0.05, 0.95])
        entry = {
            "latent_difference": {"mean": float(beta.mean()), "q05": float(lo), "q95": float(hi)},
            "max_rhat": result.last.record["max_rhat"],
            "divergences": result.last.divergences,
            "converged": result.last.settled,
            "rounds": len(result.rounds),
            "seconds": time.perf_counter() - t0,
        }
        if model == "dif":
            table = dif_summary.item_table(result.idata)
            entry["dif_mean"] = table["mean"].tolist()
            entry["dif_low"] = table["low"].tolist()
            entry["dif_high"] = table["high"].tolist()
            # at several sizes, so that the flagging rule can be studied without refitting
            beyond = dif_summary.p_beyond(result.idata, ROPES)  # the draws read once
            entry["p_beyond"] = {str(r): beyond.sel(rope=r).values.ravel().tolist() for r in ROPES}
        record[model] = entry
    return record


def study_dir(settings: StudySettings, root: Path | str) -> Path:
    return Path(root) / "models" / "dif_study" / settings.key()


def run(settings: StudySettings, root: Path | str = ".", log=print) -> list[dict]:
    """Run (or resume) the study; returns every survey's record (:func:`survey_record`)."""
    folder = study_dir(settings, root)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(asdict(settings), folder / "settings.json")
    for condition in CONDITIONS:
        for s in range(settings.n_surveys):
            path = folder / f"{condition}_{s:03d}.json"
            if path.exists():
                continue
            record = survey_record(settings, condition, s)
            write_json_atomic(record, path)
            flagged = flags(record)
            log(
                f"{condition} survey {s + 1}/{settings.n_surveys}: flagged items "
                f"{[j + 1 for j, f in enumerate(flagged) if f]}, latent difference "
                f"{record['dif']['latent_difference']['mean']:.3f} (DIF model) "
                f"{record['plain']['latent_difference']['mean']:.3f} (plain), "
                f"{record['dif']['seconds'] + record['plain']['seconds']:.0f} s"
            )
    records = load_results(folder)
    write_json_atomic(summarize(records, settings), folder / "summary.json")
    return records


def load_results(folder: Path | str) -> list[dict]:
    """Every finished survey record of a study folder."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*_[0-9][0-9][0-9].json"))]


def flags(
    record: dict, rope: float = dif_summary.ROPE, flag: float = dif_summary.FLAG_PROBABILITY
) -> list[bool]:
    """Which items a survey's DIF fit flags under the rule (``rope``, ``flag``)."""
    return [p >= flag for p in record["dif"]["p_beyond"][str(rope)]]


def summarize(
    records: list[dict],
    settings: StudySettings,
    rope: float = dif_summary.ROPE,
    flag: float = dif_summary.FLAG_PROBABILITY,
) -> dict:
    """The study's figures and its verdicts against the targets.

    Targets: items flagged in at most 5% of null surveys; the planted items flagged in at
    least 80% of planted surveys; the DIF model's 90% interval of the latent difference
    covering the truth in at least 85% of planted surveys. The plain model's bias on the
    planted surveys is reported.
    """
    by = {c: [r for r in records if r["condition"] == c] for c in CONDITIONS}
    planted = list(settings.planted)
    null_flags = np.array([flags(r, rope, flag) for r in by["null"]], dtype=bool)
    planted_flags = np.array([flags(r, rope, flag) for r in by["planted"]], dtype=bool)
    out = {"n_null": len(by["null"]), "n_planted": len(by["planted"])}
    if len(null_flags):
        out["null_flag_rate"] = float(null_flags.mean())
        out["null_surveys_with_a_flag"] = float(null_flags.any(axis=1).mean())
    if len(planted_flags):
        others = [j for j in range(settings.n_items) if j not in planted]
        out["planted_flag_rate"] = float(planted_flags[:, planted].mean())
        out["planted_other_flag_rate"] = float(planted_flags[:, others].mean())
    for model in MODELS:
        for c in CONDITIONS:
            rows = by[c]
            if not rows:
                continue
            est = np.array([r[model]["latent_difference"]["mean"] for r in rows])
            cover = [
                r[model]["latent_difference"]["q05"]
                <= r["truth"]["latent_difference"]
                <= r[model]["latent_difference"]["q95"]
                for r in rows
            ]
            out[f"{model}_{c}_bias"] = float(est.mean() - settings.latent_difference)
            se = est.std(ddof=1) / np.sqrt(len(est)) if len(est) > 1 else np.nan
            out[f"{model}_{c}_bias_se"] = float(se)
            out[f"{model}_{c}_coverage90"] = float(np.mean(cover))
            out[f"{model}_{c}_converged"] = float(np.mean([r[model]["converged"] for r in rows]))
    out["passes"] = {
        "null_flag_rate <= 0.05": out.get("null_flag_rate", 1.0) <= 0.05,
        "planted_flag_rate >= 0.80": out.get("planted_flag_rate", 0.0) >= 0.80,
        "dif_planted_coverage90 >= 0.85": out.get("dif_planted_coverage90", 0.0) >= 0.85,
    }
    return out


QUANTITIES = ("bias", "bias_se", "coverage90", "converged")


def format_summary(summary: dict, settings: StudySettings) -> str:
    """The study's figures as lines of text, each target with its verdict."""
    lines = [
        f"DIF study: {summary['n_null']} null and {summary['n_planted']} planted surveys of "
        f"{settings.n_respondents} respondents x {settings.n_items} items; planted DIF "
        f"{settings.dif_size} logits in items {[j + 1 for j in settings.planted]}; latent difference "
        f"{settings.latent_difference}; flagged when P(|DIF| > {dif_summary.ROPE}) >= "
        f"{dif_summary.FLAG_PROBABILITY}",
    ]
    for key in (
        "null_flag_rate",
        "null_surveys_with_a_flag",
        "planted_flag_rate",
        "planted_other_flag_rate",
        *(f"{m}_{c}_{q}" for c in CONDITIONS for m in MODELS for q in QUANTITIES),
    ):
        if key in summary:
            lines.append(f"  {key:32s} {summary[key]:.3f}")
    lines += [f"  {'PASS' if ok else 'FAIL'}  {target}" for target, ok in summary["passes"].items()]
    return "\n".join(lines)
