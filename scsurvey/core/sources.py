"""Which source files each product depends on: read by Make (``python -m scsurvey sources``)
and by the posterior's code hash. Plain data and the standard library, importable without
the scientific stack."""

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent

# a change to any of these makes a stored posterior stale: the packages that define the
# data, the model and how it is fitted, and the posterior modules a fit writes
MODEL_SOURCES = (
    "core/dims.py",
    "core/defaults.py",
    "core/tomlfile.py",
    "inputs/codebook.py",
    "inputs/messages.py",
    "inputs/choices.py",
    "inputs/survey.py",
    "model/likelihood.py",
    "model/fused_likelihood.py",
    "model/priors.py",
    "model/spec.py",
    "model/graph.py",
    "model/dif.py",
    "model/choices.py",
    "model/styles.py",
    "model/parameterisation.py",
    "model/predictor.py",
    "inference/rounds.py",
    "posterior/predictive.py",
    "posterior/choices.py",  # the replicated reasons a fit stores
    "posterior/assemble.py",
    "posterior/stamp.py",
    "posterior/integrated_likelihood.py",
    "posterior/item_person_fit.py",
    "posterior/draws.py",
)
# the synthetic twin is simulated from the model
DATA_SOURCES = (*MODEL_SOURCES, "workflows/twin.py", "workflows/twin_choices.py")
# a report is redrawn when these change
REPORT_SOURCES = (
    "posterior/checks.py",
    "posterior/summaries.py",
    "posterior/dif.py",
    "posterior/styles.py",
    "report/plots.py",
    "report/html.py",
    "report/templates/report.html.j2",
    "report/templates/index.html.j2",
)


def code_hash() -> str:
    """SHA-256 of the modules that define the model and its data (:data:`MODEL_SOURCES`)."""
    digest = hashlib.sha256()
    for name in MODEL_SOURCES:
        digest.update((PACKAGE / name).read_bytes())
    return digest.hexdigest()
