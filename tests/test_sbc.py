"""Simulation-based calibration: verdict logic (fast) and small real studies (-m sbc)."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_project

from scsurvey.workflows import sbc


def fake_study(ranks: dict, L=20, n=200):
    frame = pd.DataFrame(ranks)
    frame.attrs["L"] = L
    diag = pd.DataFrame({"converged": [True] * len(frame), "divergences": [0] * len(frame)})
    return frame, diag


def test_uniform_ranks_pass_and_skewed_ranks_fail():
    rng = np.random.default_rng(1)
    n, L = 200, 20
    ranks, diag = fake_study(
        {
            "uniform_a": rng.integers(0, L + 1, n),
            "uniform_b": rng.integers(0, L + 1, n),
            "too_wide_prior": np.where(
                rng.random(n) < 0.5, rng.integers(0, 2, n), rng.integers(L - 1, L + 1, n)
            ),
            "biased": np.clip(rng.binomial(L, 0.7, n), 0, L),
        },
        L,
    )
    table = sbc.summarize(ranks, diag)
    assert table.loc["uniform_a", "verdict"] == "pass"
    assert table.loc["uniform_b", "verdict"] == "pass"
    assert table.loc["too_wide_prior", "verdict"] == "fail"
    assert table.loc["biased", "verdict"] == "fail"


def test_false_alarm_rate_of_a_correct_study_is_small():
    """Under exact uniformity, a study with 40 quantities fails any in <= ~5% of studies."""
    rng = np.random.default_rng(7)
    fails = 0
    for _ in range(40):
        ranks, diag = fake_study({f"q{k}": rng.integers(0, 21, 100) for k in range(40)})
        fails += (sbc.summarize(ranks, diag)["verdict"] == "fail").any()
    # 40 studies at family-wise 5%: expected 2 failing; 8 or more has probability < 0.001
    assert fails < 8, fails


def test_converged_fits_are_judged_beside_all_fits():
    """Ranks uniform on 160 converged fits and piled at L on 40 unconverged ones: the
    all-fits verdict fails, the converged-only one passes, and both are reported."""
    rng = np.random.default_rng(3)
    L = 20
    q = np.concatenate([rng.integers(0, L + 1, 160), np.full(40, L)])
    ranks, diag = fake_study({"q": q}, L)
    diag["converged"] = [True] * 160 + [False] * 40
    diag["rounds"] = [1] * 150 + [2] * 10 + [3] * 40
    table = sbc.side_by_side(sbc.summarize(ranks, diag), ranks, diag)
    assert table.loc["q", "verdict"] == "fail" and table.loc["q", "verdict_converged"] == "pass"
    assert table.attrs["converged_sims"] == 160 and table.attrs["extra_round_sims"] == 50


def test_quantities_rank_small_variables_whole_and_ends_of_large_ones():
    q = sbc.quantities(
        {"s": np.array(1.0), "v": np.zeros(3), "m": np.zeros((10, 2)), "corr_matrix": np.eye(2)}
    )
    assert ("s", ()) in q and ("v", (2,)) in q
    assert ("m", (0, 0)) in q and ("m", (9, 1)) in q and ("m", (5, 0)) not in q
    assert not [x for x in q if x[0] == "corr_matrix"]
    assert not sbc.quantities({"g_raw": np.zeros(2)})  # its meaning moves with the centring


def test_rank_counts_draws_below_the_truth():
    rng = np.random.default_rng(0)
    assert sbc._rank(np.array([0.1, 0.2, 0.3]), 0.25, rng) == 2
    assert sbc._rank(np.array([0.1, 0.2, 0.3]), -1.0, rng) == 0
    assert sbc._rank(np.array([0.1, 0.2, 0.3]), 9.0, rng) == 3


# Numba, as `make sbc`: its one cold compile of the swappable model costs less than JAX's
# slower sampling over 50 surveys (docs/performance.md); the resume test below keeps the JAX
# path on workers covered
SMALL = {
    "n_sims": 30,
    "n_respondents": 100,
    "draws": 200,
    "tune": 300,
    "thin_to": 20,
    "workers": 2,
    "backend": "numba",
    "rounds": 1,  # CI time; unconverged fits stay in the ranks (the page shows both views)
}


@pytest.mark.sbc
def test_correct_model_passes_and_mismatched_prior_fails(tmp_path, root, small_twin):
    """S = 30 surveys of 100 respondents (baseline model), L = 20.

    The mismatched study simulates the sd of the item locations from Gamma(2, 0.5) (mean 4)
    where the fitting model says Gamma(2, 2.5) (mean 0.8): with seven items per battery the
    prior pulls the posterior below large true values, whose ranks pile up at L (measured
    with the half-normal priors used before, HalfNormal(4) against HalfNormal(1), and 16
    surveys: mean rank 0.88, p = 2e-5). A mismatch in mu_alpha's prior (sd 6 against
    1.5), used before, is not detectable once the fits mix: 100 respondents pin the
    locations' mean down whatever its prior. The correct study's converged fits must pass at
    the family-wise 5% level (a false alarm is expected in about 1 study in 20).
    """
    _, csv, _ = small_twin
    project = make_project(tmp_path, csv, spec="baseline")
    good = sbc.run_study("baseline", root=project, progress=False, **SMALL)
    assert good.attrs["n_sims"] == 30
    # judged on the converged fits: an unconverged fit's ranks carry its mixing error, not
    # the model's calibration (the study reports both side by side)
    assert (good["verdict_converged"] == "pass").all(), good[good["verdict_converged"] == "fail"]
    # the calibrated predictive check on these fits of surveys simulated from the model:
    # 30 x 13 item tests, rejecting at 5% (Bonferroni over three tests makes it a little
    # less; measured 2.8% over 38 surveys); binomial sd 1.1 pp, and answers of one survey
    # share a fit, so 0.5-10% is accepted
    assert good.attrs["pit_tests"] == 30 * 13
    assert 0.005 <= good.attrs["pit_reject_rate"] <= 0.10, good.attrs["pit_reject_rate"]
    bad = sbc.run_study(
        "baseline",
        root=project,
        progress=False,
        prior_overrides=(("sigma_alpha", "rate", 0.5),),
        **{**SMALL, "n_sims": 20},
    )
    failed = set(bad.index[bad["verdict"] == "fail"])
    assert {"sigma_alpha[0]", "sigma_alpha[1]"} & failed, bad.sort_values("p_chisq").head()
    page = project / "reports" / "baseline" / "sbc" / "index.html"
    assert page.exists() and (page.parent / "ranks.png").exists()
    assert "FAIL" in (project / "reports" / "baseline" / "sbc-mismatched" / "index.html").read_text()


def test_local_cluster_workers_keep_glibcs_adaptive_malloc(monkeypatch):
    # Dask's default MALLOC_TRIM_THRESHOLD_ made every SBC fit about 2.4x slower
    import os

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    client, cluster = sbc._client(None, 1)
    try:
        env = client.run(lambda: [os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")])
    finally:
        client.close()
        cluster.close()
    ((trim, omp),) = env.values()
    assert trim is None
    assert omp == "1"  # Dask's other worker settings are untouched


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.sbc
def test_an_interrupted_study_resumes_on_a_dask_scheduler_and_two_workers(tmp_path, small_twin):
    """A study stopped after two of six simulations resumes, keeping what it had, on `dask
    scheduler` and two `dask worker` processes on loopback, started as docs/design.md tells
    a user to start them on a cluster; each worker compiles the model once and reuses it."""
    import os
    import subprocess
    import sys
    import time

    from dask.distributed import Client

    _, csv, _ = small_twin
    project = make_project(tmp_path, csv, spec="baseline")
    settings = sbc.Settings(
        model="baseline", n_sims=6, n_respondents=60, draws=60, tune=60, thin_to=10, backend="jax", rounds=1
    )
    folder = sbc.run(settings, project, workers=1, progress=False)
    files = sorted(folder.glob("sim_*.json"))
    assert len(files) == 6
    kept = {f.name: f.stat().st_mtime_ns for f in files[:2]}
    for f in files[2:]:
        f.unlink()  # as if the study had been stopped after two simulations

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = [sys.executable, "-m", "dask"]
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    commands = [
        [*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        [*dask_cli, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
        [*dask_cli, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
    ]
    with open(tmp_path / "dask.log", "w") as log:
        procs = []
        try:
            for command in commands:
                procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
            with Client(address, timeout=60) as client:
                client.wait_for_workers(2, timeout=120)
                trim = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
            # without a nanny, glibc's adaptive malloc is kept (docs/design.md)
            assert list(trim.values()) == [None, None]
            t0 = time.perf_counter()
            sbc.run(settings, project, scheduler=address, progress=False)
            print(f"4 simulations on two dask workers: {time.perf_counter() - t0:.1f} s")
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(timeout=60)
    files = sorted(folder.glob("sim_*.json"))
    assert len(files) == 6
    assert {f.name: f.stat().st_mtime_ns for f in files[:2]} == kept
    resumed = [json.loads(f.read_text()) for f in files[2:]]
    assert {"ranks", "true", "max_rhat", "divergences", "converged"} <= set(resumed[0])
    by_worker = {}
    for r in resumed:
        by_worker.setdefault(r["worker"], []).append(r["compiled"])
    assert len(by_worker) == 2, by_worker  # both workers fitted simulations
    # one compile per worker process, every later simulation reused it
    assert all(sum(flags) == 1 for flags in by_worker.values()), by_worker
