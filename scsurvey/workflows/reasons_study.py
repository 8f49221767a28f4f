"""Are the reasons recovered? Twins of the survey simulated afresh (other seeds) and fitted
with the reasons spec (``models/full_reasons.toml``).

Per twin and option the study records the true share (the mean of each asked respondent's
true probability of choosing it), the model's share with its 90% interval, and the
observed share; per published ordering pair the posterior probability that it holds. The
twin's assumed population shares respect every published ordering, so a "contradicts"
verdict is a false one. One JSON file per twin under ``models/reasons_study/`` makes an
interrupted study resume where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scsurvey.inputs.codebook import load_codebook
from scsurvey.model.spec import load_spec
from scsurvey.posterior import choices
from scsurvey.storage.files import write_json_atomic

SPEC = "models/full_reasons.toml"
FOLDER = "models/reasons_study"


# Shares need far fewer draws than the spec's margin on every quantity: 1,500 draws per
# chain, and a round is judged at R-hat 1.01 (no margin)
SAMPLER = {"draws": 1500, "rhat_target": 1.01}


def run_twin(seed: int, root: Path, population: int = 50_000) -> dict:
    """Simulate the twin with ``seed``, fit the reasons spec to it, record the comparison."""
    from scsurvey.surveymodel import SurveyModel
    from scsurvey.workflows.twin import make_twin

    root = Path(root)
    spec = load_spec(root / SPEC)
    twin = make_twin(root / spec.twin, root=root, overrides={"seed": seed, "population": population})
    codebook = load_codebook(root / spec.codebook)
    m = SurveyModel(
        twin.frame,
        codebook,
        model_config=spec.model_config(),
        sampler_config={**spec.sampler_config(), **SAMPLER},
    )
    t0 = time.perf_counter()
    m.fit(progress=False)
    draws = choices.share_draws(m.idata)
    shares = choices.option_shares(m.idata, codebook, draws)
    verdicts = choices.ordering_verdicts(m.idata, codebook, draws)
    return {
        "seed": seed,
        "seconds": time.perf_counter() - t0,
        "diagnostics_ok": bool(m.diagnostics.ok),
        "max_rhat": float(m.diagnostics.max_rhat),
        "options": shares.assign(truth=twin.truth["option_share"]).to_dict(orient="list"),
        "orderings": verdicts.to_dict(orient="list"),
    }


def run(twins: int = 8, first_seed: int = 3601, root: Path | str = ".", log=print) -> list[dict]:
    """Run (or resume) the study; returns every twin's record."""
    root = Path(root)
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for seed in range(first_seed, first_seed + twins):
        path = folder / f"twin_{seed}.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
            continue
        record = run_twin(seed, root)
        write_json_atomic(record, path)
        records.append(record)
        log(
            f"twin {seed}: {record['seconds']:.0f} s, "
            f"diagnostics {'ok' if record['diagnostics_ok'] else 'FAILED'}"
        )
    return records


def summarize(records: list[dict]) -> dict:
    """Coverage of the 90% intervals, bias and false contradictions over the twins."""
    options = pd.concat([pd.DataFrame(r["options"]).assign(seed=r["seed"]) for r in records])
    covered = (options["lower"] <= options["truth"]) & (options["truth"] <= options["upper"])
    orderings = pd.concat([pd.DataFrame(r["orderings"]).assign(seed=r["seed"]) for r in records])
    error = options["model"] - options["truth"]
    return {
        "twins": len(records),
        "clean": sum(r["diagnostics_ok"] for r in records),
        "intervals": len(options),
        "covered": int(covered.sum()),
        "coverage": float(covered.mean()),
        "per_option_coverage": covered.groupby(options["option"]).mean().round(2).to_dict(),
        "bias": float(error.mean()),
        "bias_se": float(error.std(ddof=1) / np.sqrt(len(error))),
        "rmse": float(np.sqrt((error**2).mean())),
        "pairs": len(orderings),
        "verdicts": orderings["verdict"].value_counts().to_dict(),
        "seconds_median": float(np.median([r["seconds"] for r in records])),
        # 90% intervals: 0.80 is about three binomial sds below 0.90 over 90 intervals; the
        # twins respect every published ordering, so any "contradicts" is a false one
        "passes": {
            "coverage >= 0.80": bool(covered.mean() >= 0.80),
            "no false contradiction": "contradicts" not in set(orderings["verdict"]),
        },
    }


def format_summary(s: dict) -> str:
    """The study in a few lines."""
    return "\n".join(
        [
            f"{s['twins']} twins ({s['clean']} clean), {s['intervals']} option shares",
            f"90% intervals covering the true share: {s['covered']} of {s['intervals']} "
            f"({100 * s['coverage']:.0f}%)",
            f"per option: {s['per_option_coverage']}",
            f"bias {s['bias']:+.4f} (MC SE {s['bias_se']:.4f}), RMSE {s['rmse']:.4f}",
            f"published ordering pairs: {s['pairs']}; verdicts {s['verdicts']} "
            "(the twins respect every ordering)",
            f"median seconds per twin (simulate and fit): {s['seconds_median']:.0f}",
            "targets: " + ", ".join(f"{k}: {'pass' if v else 'FAIL'}" for k, v in s["passes"].items()),
        ]
    )
