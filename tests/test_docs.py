"""The numpydoc Examples of public functions run as written (doctest)."""

import doctest
import importlib

import pytest

# modules whose Examples need no stored posterior or data file
MODULES = ["core.tomlfile", "model.spec", "inputs.codebook", "model.likelihood", "inference.diagnostics"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_in_docstrings_run(name):
    module = importlib.import_module(f"scsurvey.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"scsurvey.{name} has no Examples"
    assert result.failed == 0
