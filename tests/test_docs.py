"""The docs: numpydoc Examples run as written (doctest), and every spec they name is shipped."""

import doctest
import importlib
import re

import pytest

# modules whose Examples need no stored posterior or data file
MODULES = [
    "core.tomlfile",
    "model.spec",
    "inputs.codebook",
    "model.likelihood",
    "inference.diagnostics",
    "inference.rounds",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_in_docstrings_run(name):
    module = importlib.import_module(f"scsurvey.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"scsurvey.{name} has no Examples"
    assert result.failed == 0


def _named_specs(text: str) -> set[str]:
    """Spec names a text passes to Make: ``MODEL=name``, and the specs listed as
    "(also `a`, `b`)" right after one."""
    text = " ".join(text.split())  # a name may follow a line break
    names = set()
    for found in re.finditer(r"MODEL=(\w+)`?(?: \(also ([^)]*)\))?", text):
        names.add(found.group(1))
        names.update(re.findall(r"`(\w+)`", found.group(2) or ""))
    return names - {"name", "all"}


def test_named_specs_finds_a_listed_name():
    text = "`make run\nMODEL=a_b` (also `c_d`, `e`) and `make fit MODEL=name`"
    assert _named_specs(text) == {"a_b", "c_d", "e"}


@pytest.mark.parametrize("doc", ["README.md", "docs/design.md", "docs/performance.md"])
def test_every_spec_the_docs_name_is_shipped(root, doc):
    named = _named_specs((root / doc).read_text())
    missing = sorted(n for n in named if not (root / "models" / f"{n}.toml").exists())
    assert not missing, f"{doc} names specs with no models/<name>.toml: {missing}"


@pytest.mark.parametrize("doc", ["README.md", "docs/design.md", "docs/performance.md"])
def test_every_make_target_the_docs_name_exists(root, doc):
    targets = set(re.findall(r"^([a-z][a-z-]*):", (root / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", (root / doc).read_text()))
    assert named, f"{doc} names no make target"
    assert not named - targets, f"{doc} names make targets the Makefile lacks: {sorted(named - targets)}"
