"""Fit a spec under several sampler seeds and tabulate its diagnostics: margin, not luck.

Floating point differs between CPUs, so a fit that passes at R-hat 1.009 on one machine fails
on the next. Different seeds stand in for different machines: a spec whose median max R-hat
over seeds sits well under the threshold has the margin to pass elsewhere. Results are
written seed by seed to ``models/<name>/seeds.json``, so an interrupted sweep resumes; no
posterior is stored.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from scsurvey.core.paths import model_paths
from scsurvey.core.sources import code_hash
from scsurvey.inference.diagnostics import diagnose
from scsurvey.inference.rounds import sample
from scsurvey.model.graph import build
from scsurvey.model.spec import load_inputs, load_spec
from scsurvey.storage.files import write_json_atomic

MEDIAN_RHAT_TARGET = 1.005  # the margin asked of a shipped spec: median over seeds of max R-hat


def sweep(name: str, seeds, root: Path | str = ".", progress: bool = False, log=print) -> pd.DataFrame:
    """Fit ``models/<name>.toml`` once per seed with its own settings (rounds included).

    Parameters
    ----------
    name : str
        Spec name.
    seeds : iterable of int
        Sampler seeds.
    root : Path or str
        Project root.
    progress : bool
        Show the sampler's progress bars.
    log : callable
        Receives one line per finished seed.

    Returns
    -------
    pandas.DataFrame
        One row per seed: rounds, chains, seconds, max R-hat, min bulk and tail ESS,
        divergences, whether clean, the worst variables.

    Examples
    --------
    >>> table = sweep("baseline", seeds=[1, 2])  # doctest: +SKIP
    >>> table["max_rhat"].median() <= MEDIAN_RHAT_TARGET  # doctest: +SKIP
    True
    """
    root = Path(root)
    spec = load_spec(model_paths(name, root)["spec"])
    out_file = model_paths(name, root)["dir"] / "seeds.json"
    done = json.loads(out_file.read_text()) if out_file.exists() else {}
    key = {"spec_hash": spec.hash(), "code_hash": code_hash()}
    if {k: done.get(k) for k in key} != key:  # another spec or model code: start afresh
        done = {**key, "runs": {}}
    data = load_inputs(spec, root)
    built = None
    for seed in seeds:
        if str(seed) in done["runs"]:
            continue
        seeded = spec.replace(sampler={"seed": int(seed)})
        built = built or build(seeded, data)
        t0 = time.perf_counter()
        sampled = sample(built.model, seeded, progress=progress, log=lambda _line: None)
        idata = sampled.idata
        d = sampled.diagnostics or diagnose(idata)
        row = {
            "seed": int(seed),
            "rounds": len(sampled.rounds),
            "chains": int(idata.posterior.sizes["chain"]),
            "compile_s": sampled.compile_s,
            "sample_s": sampled.sample_s,
            "wall_s": time.perf_counter() - t0,
            **{k: v for k, v in asdict(d).items() if k != "failures"},
            "clean": d.ok,
            "failures": "; ".join(d.failures),
        }
        done["runs"][str(seed)] = row
        write_json_atomic(done, out_file)
        log(
            f"{name} seed {seed}: {row['rounds']} round(s), sampling {row['sample_s']:.1f} s, max R-hat "
            f"{d.max_rhat:.4f} ({d.max_rhat_var}), min bulk ESS {d.min_ess_bulk:.0f}, min tail ESS "
            f"{d.min_ess_tail:.0f}, divergences {d.divergences}, {'clean' if d.ok else 'NOT clean'}"
        )
    rows = [done["runs"][str(s)] for s in seeds]
    return pd.DataFrame(rows).set_index("seed")


def verdict(table: pd.DataFrame) -> tuple[bool, str]:
    """Whether a sweep shows margin: every seed clean and the median max R-hat on target."""
    median = float(np.median(table["max_rhat"]))
    clean = int(table["clean"].sum())
    ok = clean == len(table) and median <= MEDIAN_RHAT_TARGET
    return ok, (
        f"{clean} of {len(table)} seeds clean; median max R-hat {median:.4f} "
        f"(target <= {MEDIAN_RHAT_TARGET}); max over seeds {table['max_rhat'].max():.4f}; "
        f"median sampling {table['sample_s'].median():.1f} s"
    )
