"""Shared fixtures: the project codebook, small generic codebooks, and small surveys."""

from __future__ import annotations

import copy
import logging
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CODEBOOK = ROOT / "data" / "codebook" / "scs2020.toml"
TWIN = ROOT / "data" / "codebook" / "scs2020.twin.toml"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test` runs two workers with ``--dist loadgroup``) keep what
    shares an expensive fixture on one worker: every test of the session's real fit
    (``tiny_fit``) together, every other test with its module (module-scoped fixtures)."""
    for item in items:
        group = "tiny_fit" if "tiny_fit" in item.fixturenames else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def codebook_raw() -> dict:
    return tomllib.loads(CODEBOOK.read_text())


@pytest.fixture
def raw(codebook_raw) -> dict:
    """A fresh, mutable copy of the scs2020 codebook content."""
    return copy.deepcopy(codebook_raw)


@pytest.fixture(scope="session")
def codebook():
    from scsurvey.inputs.codebook import load_codebook

    return load_codebook(CODEBOOK)


def generic_codebook(n_categories=5, batteries=(("a", 4), ("b", 3)), reverse=(), groups=True):
    """A small codebook of any shape, as a dict (TOML content)."""
    levels = list(range(1, n_categories + 1))
    raw = {
        "survey": {"name": "generic", "respondent_id": "id"},
        "scale": {
            "levels": levels,
            "labels": [f"L{v}" for v in levels],
            "support": levels[-(n_categories // 2) :],
            "missing": [98, 99],
        },
        "batteries": [{"id": b} for b, _ in batteries],
        "items": [
            {"id": f"{b}{j}", "battery": b, "column": f"q_{b}{j}", "reverse": f"{b}{j}" in reverse}
            for b, n in batteries
            for j in range(n)
        ],
        "covariates": [
            {"id": "x1", "column": "x1", "type": "continuous"},
            {
                "id": "sex",
                "column": "sex",
                "type": "binary",
                "levels": [0, 1],
                "standardize": "center",
            },
        ],
        "groups": [{"id": "site", "column": "site", "levels": ["s1", "s2", "s3"]}] if groups else [],
    }
    return raw


def generic_frame(raw: dict, n=60, seed=0, missing=0.05) -> pd.DataFrame:
    """Random answers and covariates matching a generic codebook."""
    rng = np.random.default_rng(seed)
    levels = raw["scale"]["levels"]
    frame = {"id": np.arange(1, n + 1), "x1": rng.normal(size=n), "sex": rng.integers(0, 2, n)}
    if raw["groups"]:
        frame["site"] = rng.choice(["s1", "s2", "s3"], n)
    for item in raw["items"]:
        col = rng.choice(levels, n).astype(float)
        col[rng.random(n) < missing] = np.nan
        frame[item["column"]] = col
    out = pd.DataFrame(frame)
    first = raw["items"][0]["column"]
    out.loc[out[[i["column"] for i in raw["items"]]].isna().all(axis=1), first] = levels[0]
    return out


# Two fits that plant a component and read it back (the styles, the choices) test the model,
# not the backend, on a few hundred respondents: they sample on nutpie's JAX backend, whose
# cold compile of such a model takes seconds where Numba's takes about a minute (the pair of
# style fits: 54 s against 146 s). Larger fits (the DIF and integrated-LOO ones) sample
# faster on Numba than they compile, and keep it; so do the session's shared fit
# (``tiny_fit``), the README's example and the backend tests.
PLANTED_BACKEND = {"nutpie_backend": "jax"}


def relative_error(a, b) -> float:
    """Largest elementwise ``|a - b| / |b|``, with ``|b|`` floored at 1e-12."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def density_function(model, names, mode):
    """One compiled function of a point: the model's log-density and its gradient with
    respect to the free variables ``names``, in that order (a model with frozen data lists
    its variables in another order). Both in one compile: a Numba or JAX compile of the
    density alone and another of its gradient would take about twice as long."""
    wrt = [model[name] for name in names]
    return model.compile_fn([model.logp(), model.dlogp(vars=wrt)], mode=mode)


@pytest.fixture(scope="session")
def small_twin(tmp_path_factory, root):
    """A small calibrated twin (n = 240, population 20,000) written to a temp folder."""
    from scsurvey.workflows.twin import make_twin, write_twin

    out = tmp_path_factory.mktemp("twin")
    twin = make_twin(TWIN, root=root, overrides={"n": 240, "population": 20000})
    write_twin(twin, out / "scs2020.csv", out / "scs2020.truth.json")
    return twin, out / "scs2020.csv", out / "scs2020.truth.json"


def make_project(tmp_path, csv, spec="full", sampler=None) -> Path:
    """A throwaway project root holding ``models/<spec>.toml`` pointed at ``csv``."""
    (tmp_path / "models").mkdir(exist_ok=True)
    text = (ROOT / "models" / f"{spec}.toml").read_text()
    text = text.replace('data = "data/synthetic/scs2020.csv"', f'data = "{csv}"')
    text = text.replace('codebook = "data/codebook/scs2020.toml"', f'codebook = "{CODEBOOK}"')
    if sampler:
        text = text.replace('name = "nutpie"', f'name = "{sampler}"')
    (tmp_path / "models" / f"{spec}.toml").write_text(text)
    return tmp_path


# two rounds: 2 x 100 draws cannot pass, so the second round (longer chains) always runs
TINY_SAMPLER = {"draws": 100, "tune": 150, "chains": 2, "rounds": 2}


@pytest.fixture(scope="session")
def tiny_fit(tmp_path_factory, root, small_twin):
    """One real nutpie fit of `full` on the 240-respondent twin, shared by the test session.

    Also returns what PyMC logged about the variables it drew for the predictive groups."""
    from scsurvey.workflows.named_models import fit

    _, csv, _ = small_twin
    project = make_project(tmp_path_factory.mktemp("project"), csv)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        idata, run = fit("full", root=project, progress=False, overrides=TINY_SAMPLER)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    run["_sampling_log"] = [line for line in lines if line.startswith("Sampling: ")]
    return project, idata, run
