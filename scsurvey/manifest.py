"""Which source files each product depends on: read by Make (``python -m scsurvey sources``)
and by the posterior's code hash. Plain data, importable without the scientific stack."""

# a change to any of these makes a stored posterior stale
MODEL_SOURCES = (
    "codebook.py",
    "survey.py",
    "likelihood.py",
    "priors.py",
    "spec.py",
    "model.py",
    "centering.py",
    "sampling.py",
    "predictive.py",
    "fit.py",
    "integrated.py",
    "fitstats.py",
    "draws.py",
    "dims.py",
    "tomlfile.py",
)
# the synthetic twin is simulated from the model
DATA_SOURCES = (*MODEL_SOURCES, "simulate.py")
# a report is redrawn when these change
REPORT_SOURCES = (
    "checks.py",
    "summaries.py",
    "plots.py",
    "report.py",
    "templates/report.html.j2",
    "templates/index.html.j2",
)
