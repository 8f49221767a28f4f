"""The liveness analysis installed into Numba gives Numba's own result, block for block."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core import analysis
from numba.core.controlflow import CFGraph

from scsurvey.inference import liveness_patch


def _random_cfg(rng, n_blocks, n_vars, back_edges):
    """A CFG over labels 0, 10, 20, ... (a forward DAG plus ``back_edges`` loops), with random
    use and def sets, in the shape Numba's analysis reads."""
    labels = [10 * i for i in range(n_blocks)]
    cfg = CFGraph()
    for b in labels:
        cfg.add_node(b)
    for i, b in enumerate(labels[:-1]):
        cfg.add_edge(b, labels[i + 1])  # every block reachable from the entry
        for j in rng.choice(np.arange(i + 1, n_blocks), size=min(2, n_blocks - i - 1), replace=False):
            if rng.random() < 0.4:
                cfg.add_edge(b, labels[j])
    for _ in range(back_edges):
        i, j = sorted(rng.choice(n_blocks, size=2, replace=False))
        cfg.add_edge(labels[j], labels[i])
    cfg.set_entry_point(labels[0])
    cfg.process()
    names = [f"v{k}" for k in range(n_vars)]
    use = {b: set(rng.choice(names, size=rng.integers(0, 6), replace=True)) for b in labels}
    defs = {b: set(rng.choice(names, size=rng.integers(0, 4), replace=True)) for b in labels}
    blocks = dict.fromkeys(labels)
    return cfg, blocks, use, defs


@pytest.mark.parametrize("seed", range(40))
def test_same_live_map_as_numba_on_random_control_flow(seed):
    rng = np.random.default_rng(seed)
    cfg, blocks, use, defs = _random_cfg(rng, int(rng.integers(2, 60)), 30, int(rng.integers(0, 8)))
    expected = liveness_patch.original()(cfg, blocks, use, defs)
    got = liveness_patch.compute_live_map(cfg, blocks, use, defs)
    assert got == expected
    assert list(got) == list(expected)


def test_differs_from_a_wrong_analysis():
    """The comparison above can fail: dropping the back edges' flow changes the live map."""
    rng = np.random.default_rng(3)
    cfg, blocks, use, defs = _random_cfg(rng, 40, 30, 6)
    expected = liveness_patch.original()(cfg, blocks, use, defs)
    local_only = {b: set(use[b]) for b in blocks}
    assert local_only != expected


def test_installed_analysis_matches_numba_on_compiled_code(monkeypatch):
    """Compiling a function with loops, branches and NumPy calls runs the analysis on many
    IR graphs (the function's and the inlined implementations'): every call must agree."""
    import numba

    original = liveness_patch.original()
    calls = []

    def both(cfg, blocks, use, defs):
        expected = original(cfg, blocks, use, defs)
        got = liveness_patch.compute_live_map(cfg, blocks, use, defs)
        calls.append(got == expected and list(got) == list(expected))
        return expected

    monkeypatch.setattr(analysis, "compute_live_map", both)

    def kernel(y, cuts):  # not cached on disk: Numba compiles it in every process
        total = 0.0
        for i in range(y.shape[0]):
            k = 0
            while k < cuts.shape[0] and y[i] > cuts[k]:
                k += 1
            if k == 0:
                continue
            for j in range(k):
                if cuts[j] < -1.0:
                    break
                total += np.log1p(np.exp(y[i] - cuts[j]))
        return total + np.sum(np.sort(y)[: cuts.shape[0]])

    value = numba.njit(kernel)(np.linspace(-2, 2, 50), np.array([-0.5, 0.0, 0.5]))
    assert np.isclose(value, kernel(np.linspace(-2, 2, 50), np.array([-0.5, 0.0, 0.5])))
    assert len(calls) > 5
    assert all(calls)


def test_install_is_idempotent_and_keeps_numbas_original():
    assert liveness_patch.install()
    assert liveness_patch.install()
    assert analysis.compute_live_map is liveness_patch.compute_live_map
    assert liveness_patch.original() is not liveness_patch.compute_live_map
