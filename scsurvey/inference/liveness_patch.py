"""Numba's liveness analysis visiting blocks in the order that converges.

PyTensor's Numba backend compiles a model's log-density as generated Python functions with
thousands of basic blocks. Numba's ``compute_live_map`` solves its two data-flow problems
by sweeping every block in label order until nothing changes. Variable definitions flow
forwards along the edges and liveness flows backwards, so the backward sweep in forward
order moves liveness one block per sweep: on `full` the analysis alone took most of the
cold compile (docs/performance.md). Numba fixed this upstream (numba/numba#10616, sweeping
in topological and reverse topological order), but the PyTensor releases that PyMC 5 runs
on cap Numba below that release.

:func:`install` replaces ``numba.core.analysis.compute_live_map`` with the same sweeps in
those orders. Both sweeps are monotone fix points started from the same sets, so any
visiting order reaches the same least fix point: the live map, the generated code and the
posterior are unchanged; only the number of sweeps falls.
"""

from __future__ import annotations

import os
from collections import defaultdict

_ORIGINAL = None


def _topological(cfg, labels) -> list:
    """Block labels in topological order (back edges ignored), unreachable blocks last."""
    known = set(labels)
    topo = [b for b in cfg.topo_order() if b in known]
    seen = set(topo)
    topo += [b for b in labels if b not in seen]
    return topo


def compute_live_map(cfg, blocks, var_use_map, var_def_map):
    """Variables that must be alive at the entry of each block.

    Same contract and result as ``numba.core.analysis.compute_live_map``.
    """
    forward = _topological(cfg, list(var_def_map))
    preds = {b: [p for p, _ in cfg.predecessors(b)] for b in blocks}
    succs = {b: [s for s, _ in cfg.successors(b)] for b in var_def_map}

    def_reach = defaultdict(set)
    changed = True
    while changed:  # definitions (and uses) reachable at each block's entry, pushed forwards
        changed = False
        for b in forward:
            reach = def_reach[b]
            before = len(reach)
            reach |= var_def_map[b] | var_use_map[b]
            changed |= len(reach) != before
            for s in succs[b]:
                out = def_reach[s]
                n = len(out)
                out |= reach
                changed |= len(out) != n

    live_map = {b: set(var_use_map[b]) for b in blocks}
    backward = _topological(cfg, list(blocks))[::-1]
    changed = True
    while changed:  # uses pushed backwards into predecessors that reach a definition
        changed = False
        for b in backward:
            live = live_map[b]
            for p in preds[b]:
                into = live_map[p]
                n = len(into)
                into |= (live & def_reach[p]) - var_def_map[p]
                changed |= len(into) != n
    return live_map


def install() -> bool:
    """Use :func:`compute_live_map` in Numba's analysis; idempotent.

    Returns
    -------
    bool
        Whether Numba's function is replaced: False when Numba has no such function or the
        environment sets ``SCSURVEY_NUMBA_LIVENESS=0`` (Numba's own analysis, for comparison).
    """
    global _ORIGINAL
    if os.environ.get("SCSURVEY_NUMBA_LIVENESS", "1") == "0":
        return False
    try:
        from numba.core import analysis
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    current = getattr(analysis, "compute_live_map", None)
    if current is None:
        return False
    if current is not compute_live_map:
        _ORIGINAL = current
        analysis.compute_live_map = compute_live_map
    return True


def original():
    """Numba's own ``compute_live_map`` (for comparison in tests)."""
    if _ORIGINAL is None:
        from numba.core import analysis

        return analysis.compute_live_map
    return _ORIGINAL
