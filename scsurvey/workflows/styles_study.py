"""Are response styles and informative non-response recovered, and what does ignoring them cost?

Surveys are simulated from the model itself, on the twin's respondents and its thirteen items
in two batteries (a residual trait per battery, correlated; no covariates, so that a fit
takes seconds): the items' thresholds, discriminations and the batteries' correlation are
the twin's true ones, the planted component's size is fixed, and everything else (each
respondent's traits, style and propensity, the items' non-response rates) is drawn from
the model by the survey's seed.

- Condition ``style``: an extreme response style with sd :data:`STYLE_SD` on the log scale
  of the threshold spread. Each survey is fitted without the style (the plain model) and
  with it. Recorded: whether the calibrated check (the leave-one-answer-out PIT's
  dispersion test, Bonferroni over items) flags the survey under each, the correlation of
  each respondent's estimated style with the true one, and whether ``style_sd``'s 90%
  interval covers the planted value.
- Condition ``nonresponse``: non-answers on a propensity that falls with the trait (slope
  :data:`NONRESPONSE_SLOPE` per unit of latent support in every battery). Fitted with the
  ignorable model and the informative one; recorded per item, the true support share among
  all respondents (each one's probability of support at their true traits, averaged) and
  each model's estimate with its 90% interval.

One JSON file per survey and condition under ``models/styles_study/``: an interrupted study
resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scsurvey.model.likelihood import support_share
from scsurvey.storage.files import write_json_atomic

FOLDER = "models/styles_study"
CODEBOOK = "data/codebook/scs2020.toml"
DATA = "data/synthetic/scs2020.csv"
STYLE_SD = 0.5  # planted sd of the log threshold spread: a respondent 1 sd out spreads by 1.65 or 0.61
NONRESPONSE_SLOPE = -1.0  # log-odds of no answer per unit of latent support
NONRESPONSE_PLANT = {"mu_kappa": -2.75, "sigma_kappa": 0.3, "propensity_sd": 0.5}
CONDITIONS = ("style", "nonresponse")
FIRST_SEED = 3701
ALPHA = 0.05  # the check flags a survey when its Bonferroni-adjusted dispersion p is below this
SAMPLER = {"chains": 2, "draws": 1000, "tune": 300, "rhat_target": 1.01, "rounds": 2, "prior_draws": 50}
# surveys per condition: the non-response fits mix slowest (often two rounds, about twice the
# time of a style fit); 8 surveys of 13 items give 104 intervals
SURVEYS = {"style": 20, "nonresponse": 8}
BASE = {"residual": True, "correlated": True}


def spec_for(condition: str, rich: bool, seed: int):
    """The study's spec: plain, or with the condition's component."""
    from scsurvey.model.spec import parse_spec

    comp = dict(BASE)
    if rich and condition == "style":
        comp["response_style"] = ["extreme"]
    if rich and condition == "nonresponse":
        comp["nonresponse"] = "informative"
    return parse_spec(
        {"components": comp, "sampler": {**SAMPLER, "seed": seed}},
        f"{condition}_{'rich' if rich else 'plain'}",
    )


TRUTH = "data/synthetic/scs2020.truth.json"


def _planted(condition: str, root: Path) -> dict:
    """The fixed values: the twin's items and correlation, and the planted component."""
    true = json.loads((root / TRUTH).read_text())["parameters"]
    alpha, g = np.asarray(true["alpha"]), np.asarray(true["g"])
    items = {
        "cuts": np.concatenate([alpha[:, None], alpha[:, None] + np.cumsum(np.exp(g), axis=1)], axis=1),
        "lambda": np.exp(np.asarray(true["a"])),
        "partial_corr01": np.asarray(true["partial_corr01"]),
    }
    if condition == "style":
        return {**items, "style_sd": STYLE_SD}
    return {**items, **NONRESPONSE_PLANT, "nonresponse_slope": np.full(2, NONRESPONSE_SLOPE)}


def simulate(condition: str, seed: int, data, root: Path | str = "."):
    """A survey simulated from the condition's rich model, with its truth.

    Returns
    -------
    data : SurveyData
        ``data`` with the simulated answers (non-answers as missing).
    truth : dict
        ``support`` (item,) true support share among all respondents; ``style`` (respondent,)
        with the style; the planted values.
    """
    import pymc as pm

    from scsurvey.model.graph import build
    from scsurvey.model.styles import NONRESPONSE

    spec = spec_for(condition, True, seed)
    model = pm.do(build(spec, data).model, _planted(condition, Path(root)))
    names = ["y", "theta", "cuts", "lambda"]
    names += ["style"] if condition == "style" else [NONRESPONSE]
    draw = pm.sample_prior_predictive(draws=1, model=model, var_names=names, random_seed=seed)
    value = {
        n: (draw.prior_predictive if n in draw.prior_predictive else draw.prior)[n].values[0, 0]
        for n in names
    }
    y = value["y"].astype(np.int8)
    if condition == "nonresponse":
        y = np.where(value[NONRESPONSE] == 1, -1, y).astype(np.int8)
        empty = (y < 0).all(axis=1)  # the reader refuses a respondent with no answer
        y[empty, 0] = value["y"][empty, 0]
    col = np.asarray(data.codebook.item_battery_index)
    eta = value["lambda"][None, :] * value["theta"][:, col]
    support = support_share(eta, value["cuts"], data.codebook.scale.support_mask, spec.link).mean(0)
    truth = {"support": support, "rate": float((y < 0).mean())}
    if condition == "style":
        truth["style"] = value["style"]
    return dataclasses.replace(data, responses=y), truth


def _flagged(idata) -> tuple[bool, float]:
    """The calibrated check's verdict on the survey: the smallest dispersion p-value over
    items, Bonferroni-adjusted, below :data:`ALPHA`."""
    from scsurvey.posterior.checks import randomized_pit

    pit = randomized_pit(idata)
    p = float(min(1.0, len(pit) * pit["p_dispersion"].min()))
    return p < ALPHA, p


def run_survey(condition: str, seed: int, root: Path) -> dict:
    """Simulate one survey of ``condition`` and fit it plain and rich; its record."""
    from scsurvey.inputs.codebook import load_codebook
    from scsurvey.inputs.survey import load_survey
    from scsurvey.posterior import styles
    from scsurvey.posterior.assemble import fit_survey

    t0 = time.perf_counter()
    data = load_survey(root / DATA, load_codebook(root / CODEBOOK))
    data, truth = simulate(condition, seed, data, root)
    record = {"condition": condition, "seed": seed, "rate": truth["rate"], "fits": {}}
    for rich in (False, True):
        idata, run_record = fit_survey(
            spec_for(condition, rich, seed), data, progress=False, log=lambda _: None
        )
        fit = {
            "diagnostics_ok": bool(run_record["diagnostics_ok"]),
            "max_rhat": float(run_record["diagnostics"]["max_rhat"]),
            "seconds": float(run_record["wall_time_s"]),
        }
        if condition == "style":
            fit["flagged"], fit["p_dispersion"] = _flagged(idata)
            if rich:
                sd = idata.posterior["style_sd"].values.ravel()
                estimate = styles.respondent_styles(idata)["extreme"].values
                fit["style_sd"] = [float(np.quantile(sd, q)) for q in (0.05, 0.5, 0.95)]
                fit["style_corr"] = float(np.corrcoef(estimate, truth["style"])[0, 1])
        else:
            shares = styles.support_shares(idata)
            fit["support"] = (
                shares[["mean", "low", "high"]].assign(truth=truth["support"]).to_dict(orient="list")
            )
        record["fits"]["rich" if rich else "plain"] = fit
    record["seconds"] = time.perf_counter() - t0
    return record


def run(
    surveys: int | None = None,
    first_seed: int = FIRST_SEED,
    root: Path | str = ".",
    conditions=CONDITIONS,
    log=print,
):
    """Run (or resume) the study; returns every survey's record."""
    root = Path(root)
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for condition in conditions:
        for seed in range(first_seed, first_seed + (surveys or SURVEYS[condition])):
            path = folder / f"{condition}_{seed}.json"
            if path.exists():
                records.append(json.loads(path.read_text()))
                continue
            record = run_survey(condition, seed, root)
            write_json_atomic(record, path)
            records.append(record)
            log(f"{condition} {seed}: {record['seconds']:.0f} s")
    return records


def load(root: Path | str = ".") -> list[dict]:
    """Every stored survey record."""
    return [json.loads(p.read_text()) for p in sorted((Path(root) / FOLDER).glob("*.json"))]


def summarize(records: list[dict]) -> dict:
    """The study's numbers against the issue's targets."""
    out: dict = {}
    style = [r for r in records if r["condition"] == "style"]
    if style:
        covers = [
            r["fits"]["rich"]["style_sd"][0] <= STYLE_SD <= r["fits"]["rich"]["style_sd"][2] for r in style
        ]
        out["style"] = {
            "surveys": len(style),
            "clean": sum(r["fits"][k]["diagnostics_ok"] for r in style for k in ("plain", "rich")),
            "flagged_plain": float(np.mean([r["fits"]["plain"]["flagged"] for r in style])),
            "flagged_rich": float(np.mean([r["fits"]["rich"]["flagged"] for r in style])),
            "corr_median": float(np.median([r["fits"]["rich"]["style_corr"] for r in style])),
            "corr_min": float(np.min([r["fits"]["rich"]["style_corr"] for r in style])),
            "sd_coverage": float(np.mean(covers)),
            "sd_median": float(np.median([r["fits"]["rich"]["style_sd"][1] for r in style])),
        }
    nonresp = [r for r in records if r["condition"] == "nonresponse"]
    if nonresp:
        frames = {
            k: pd.concat([pd.DataFrame(r["fits"][k]["support"]).assign(seed=r["seed"]) for r in nonresp])
            for k in ("plain", "rich")
        }
        cov = {
            k: float(((f["low"] <= f["truth"]) & (f["truth"] <= f["high"])).mean()) for k, f in frames.items()
        }
        bias = {k: float((f["mean"] - f["truth"]).mean()) for k, f in frames.items()}
        out["nonresponse"] = {
            "surveys": len(nonresp),
            "clean": sum(r["fits"][k]["diagnostics_ok"] for r in nonresp for k in ("plain", "rich")),
            "rate": float(np.mean([r["rate"] for r in nonresp])),
            "coverage_plain": cov["plain"],
            "coverage_rich": cov["rich"],
            "bias_plain": bias["plain"],
            "bias_rich": bias["rich"],
            "bias_plain_se": float(
                (frames["plain"]["mean"] - frames["plain"]["truth"]).std() / np.sqrt(len(frames["plain"]))
            ),
        }
    passes = {}
    if "style" in out:
        s = out["style"]
        passes.update(
            {
                "style correlation >= 0.6 (median)": s["corr_median"] >= 0.6,
                "style_sd 90% interval covers in >= 85%": s["sd_coverage"] >= 0.85,
                "check flags the plain fit in >= 80%": s["flagged_plain"] >= 0.80,
                "check flags the style fit in <= 10%": s["flagged_rich"] <= 0.10,
            }
        )
    if "nonresponse" in out:
        passes["informative coverage >= 85%"] = out["nonresponse"]["coverage_rich"] >= 0.85
    out["passes"] = passes
    return out


def format_summary(s: dict) -> str:
    """The study in a few lines."""
    lines = []
    if "style" in s:
        t = s["style"]
        lines += [
            f"style: {t['surveys']} surveys (planted style_sd {STYLE_SD}), "
            f"{t['clean']} of {2 * t['surveys']} fits clean",
            f"  check flags: plain {100 * t['flagged_plain']:.0f}%, "
            f"with the style {100 * t['flagged_rich']:.0f}%",
            f"  style correlation estimated/true: median {t['corr_median']:.2f}, lowest {t['corr_min']:.2f}",
            f"  style_sd: median {t['sd_median']:.3f}, 90% interval covers {100 * t['sd_coverage']:.0f}%",
        ]
    if "nonresponse" in s:
        t = s["nonresponse"]
        lines += [
            f"nonresponse: {t['surveys']} surveys (slope {NONRESPONSE_SLOPE}, "
            f"{100 * t['rate']:.1f}% unanswered), "
            f"{t['clean']} of {2 * t['surveys']} fits clean",
            f"  support shares, bias: ignorable {t['bias_plain']:+.4f} (SE {t['bias_plain_se']:.4f}), "
            f"informative {t['bias_rich']:+.4f}",
            f"  90% intervals covering the truth: ignorable {100 * t['coverage_plain']:.0f}%, "
            f"informative {100 * t['coverage_rich']:.0f}%",
        ]
    lines.append("targets: " + ", ".join(f"{k}: {'pass' if v else 'FAIL'}" for k, v in s["passes"].items()))
    return "\n".join(lines)
