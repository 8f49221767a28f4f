"""The speed targets of `full`, each measured beside the figure it replaces (`make bench-targets`).

Every target is measured as a user meets it: the gradient in this process, the cold compile
in a child process with empty caches, the cached fit as a child `scsurvey fit` after a
`scsurvey warm`, the SBC study, the twins of 5,000 and 20,000 respondents, and a fresh
clone's `make run` and `make test`. The last five take from ten minutes to an hour each, so
they run only when named (``--targets all``). Figures replaced are the ones the targets were
set against (docs/performance.md keeps their history).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scsurvey.storage.files import write_json_atomic


@dataclass(frozen=True)
class Target:
    """A speed target: its goal and the figure it replaces, in ``unit``."""

    key: str
    label: str
    unit: str  # "us" or "s"
    target: float
    before: float  # the figure the target replaces
    before_note: str


TARGETS = (
    Target(
        "gradient",
        "gradient of `full` (log-density and gradient, Numba, one core)",
        "us",
        200,
        520,
        "graph likelihood",
    ),
    Target(
        "compile_cold",
        "cold compile of `full` (nutpie, Numba, empty caches)",
        "s",
        45,
        203.6,
        "graph likelihood",
    ),
    Target("fit_cached", "`scsurvey fit full`, compile cached", "s", 60, 94, "graph likelihood"),
    Target("sbc", "`scsurvey sbc full` (200 surveys of 300)", "s", 720, 1776, "graph likelihood"),
    Target("twin_5000", "`full` on a 5,000-respondent twin, until clean", "s", 480, 1541, "graph likelihood"),
    Target(
        "twin_20000", "`full` on a 20,000-respondent twin, until clean", "s", 2700, 3036, "one unclean round"
    ),
    Target("run_fresh", "a fresh clone's `make run`", "s", 240, 655, "other work running"),
    Target(
        "test", "a fresh clone's `make test` (after `run_fresh` when both run)", "s", 300, 622, "425 tests"
    ),
)
QUICK = ("gradient", "compile_cold", "fit_cached")
_COLD_COMPILE = """
import json, sys, time
from scsurvey.inference.rounds import compile_nutpie
from scsurvey.model.graph import build
from scsurvey.model.spec import load_inputs, load_spec
spec = load_spec(sys.argv[1] + "/models/full.toml")
model = build(spec, load_inputs(spec, sys.argv[1])).model
t = time.perf_counter()
compile_nutpie(model, "numba", swappable=True)
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def _scratch_root(root: Path, tmp: Path) -> Path:
    """A project root holding the spec of `full` and the project's data: what a run writes
    (posteriors, SBC results) lands here, not in the project."""
    (tmp / "models").mkdir(parents=True)
    shutil.copy(root / "models" / "full.toml", tmp / "models" / "full.toml")
    (tmp / "data").symlink_to((root / "data").resolve())
    return tmp


def _run(cmd, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run ``cmd``, its output captured; a failure raises with the output's end."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stdout[-3000:] + done.stderr[-2000:]).strip()
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{tail}")
    return done


def _timed(cmd, cwd, env=None) -> float:
    """Wall seconds of ``cmd``."""
    t = time.perf_counter()
    _run(cmd, cwd, env)
    return time.perf_counter() - t


def _measure(key: str, root: Path, tmp: Path) -> dict:
    py = [sys.executable, "-m", "scsurvey"]
    tmp.mkdir(parents=True, exist_ok=True)
    if key == "gradient":
        from scsurvey.model.graph import build
        from scsurvey.model.spec import load_inputs, load_spec
        from scsurvey.workflows.benchmark import gradient_time

        spec = load_spec(root / "models" / "full.toml")
        _, us = gradient_time(build(spec, load_inputs(spec, root)).model, "NUMBA", evals=1000)
        return {"value": us}
    if key == "compile_cold":
        env = {
            **os.environ,
            "PYTENSOR_FLAGS": f"base_compiledir={tmp}/pytensor",
            "NUMBA_CACHE_DIR": f"{tmp}/numba",
        }
        out = _run([sys.executable, "-c", _COLD_COMPILE, str(root)], env=env)
        return {"value": json.loads(out.stdout.strip().splitlines()[-1])["seconds"]}
    if key in ("fit_cached", "sbc"):
        scratch = _scratch_root(root, tmp / "project")
        if key == "sbc":
            seconds = _timed([*py, "--root", str(scratch), "sbc", "full"], root)
            return {"value": seconds, **sbc_verdict(scratch / "models" / "full" / "sbc")}
        _timed([*py, "--root", str(scratch), "warm", "full"], root)
        return {"value": _timed([*py, "--root", str(scratch), "fit", "full"], root)}
    if key.startswith("twin_"):
        return _twin(root, int(key.split("_")[1]), tmp)
    clone = tmp / "clone"
    if not clone.exists():
        _run(["git", "clone", "-q", str(root), str(clone)])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTENSOR_FLAGS", "VIRTUAL_ENV", "MAKEFLAGS")}
    return {"value": _timed(["make", "run" if key == "run_fresh" else "test"], clone, env)}


def sbc_verdict(studies: Path) -> dict:
    """The verdict of the one SBC study under ``studies``: a study that runs fast but does not
    calibrate does not meet its target.

    Returns
    -------
    dict
        ``clean`` (every ranked quantity passes, on all fits and on the converged ones),
        ``failed`` (the quantities that do not), ``converged`` and ``sims``.
    """
    from scsurvey.workflows.sbc import study_summary

    folders = [p for p in studies.iterdir() if p.is_dir()]
    if len(folders) != 1:
        raise RuntimeError(f"{studies}: expected one SBC study, found {len(folders)}")
    summary, _, diag = study_summary(folders[0])
    bad = (summary["verdict"] != "pass") | (summary["verdict_converged"] != "pass")
    return {
        "clean": not bool(bad.any()),
        "failed": sorted(map(str, summary.index[bad])),
        "converged": int(diag["converged"].sum()),
        "sims": len(diag),
    }


def _twin(root: Path, n: int, tmp: Path) -> dict:
    """A fit of `full` on a twin of ``n`` in a process of its own, rounds until clean."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from scsurvey.workflows.benchmark import fit_size

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        r = pool.submit(fit_size, str(root), "full", n, "nutpie", str(tmp)).result()
    return {"value": r["wall_s"], "clean": r["clean"], "max_rhat": r["max_rhat"], "rounds": r["rounds"]}


def _named(failed) -> str:
    return f": {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}" if failed else ""


def run_targets(root: Path | str = ".", keys=None) -> dict:
    """Measure the targets ``keys`` (None: :data:`QUICK`; "all": every one), print each
    beside the figure it replaces and its target as ratios, and record them in
    ``reports/bench/targets.json`` (beside the targets of earlier runs not measured in this one).

    Returns
    -------
    dict
        Per target of this run: the measured value, the figure replaced, the target, whether
        it is met, and when it was measured.
    """
    root = Path(root).resolve()
    known = {t.key: t for t in TARGETS}
    keys = QUICK if not keys else tuple(known) if tuple(keys) == ("all",) else tuple(keys)
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise ValueError(f"bench targets {unknown}: expected some of {sorted(known)} or 'all'")
    path = root / "reports" / "bench" / "targets.json"
    # earlier runs' other targets stay in the file, each with the time it was measured
    stored = json.loads(path.read_text()) if path.exists() else {}
    results = {}
    print(f"{'target':<66} {'before':>9} {'now':>9} {'now/before':>10} {'goal':>7} {'now/goal':>8}")
    with tempfile.TemporaryDirectory() as scratch:
        for key in keys:
            t = known[key]
            r = _measure(key, root, Path(scratch) / key)
            met = r["value"] <= t.target and r.get("clean", True)
            results[key] = {
                **r,
                "before": t.before,
                "before_note": t.before_note,
                "target": t.target,
                "unit": t.unit,
                "met": met,
                "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            print(
                f"{t.label:<66} {t.before:>7.0f}{t.unit:<2} {r['value']:>7.0f}{t.unit:<2} "
                f"{r['value'] / t.before:>10.2f} {t.target:>5.0f}{t.unit:<2} {r['value'] / t.target:>8.2f}"
                + ("" if r.get("clean", True) else "  (not clean" + _named(r.get("failed")) + ")"),
                flush=True,
            )
            write_json_atomic({**stored, **results}, path)  # after each: a stopped run keeps what it measured
    print(f"-> {path}")
    return results
