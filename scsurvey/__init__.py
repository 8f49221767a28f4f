"""scsurvey: hierarchical ordinal models of survey batteries, stored as ArviZ InferenceData.

>>> import scsurvey as ss
>>> m = ss.SurveyModel(frame, "codebook.toml", groups=["province"])  # doctest: +SKIP
>>> idata = m.fit()  # doctest: +SKIP
>>> ss.summaries.support_table(idata)  # doctest: +SKIP

The public surface is ``__all__``: the model object and loading, codebooks and specs, the
checks, summaries and plots modules, diagnostics. Names are imported on first use, so that
``import scsurvey`` (and the command line's light commands) does not load PyMC.
"""

from importlib import import_module

__version__ = "0.1.0"

_WHERE = {
    "SurveyModel": "api",
    "load": "api",
    "ModelMismatchError": "api",
    "Codebook": "codebook",
    "CodebookError": "codebook",
    "load_codebook": "codebook",
    "parse_codebook": "codebook",
    "Diagnostics": "diagnostics",
    "diagnose": "diagnostics",
    "DataError": "survey",
    "SurveyData": "survey",
    "load_survey": "survey",
    "StalePosteriorError": "project",
    "load_posterior": "project",
    "SpecError": "spec",
    "default_model_config": "spec",
    "default_sampler_config": "spec",
    "load_spec": "spec",
    "LockedError": "storage",
    "StorageError": "storage",
}
_MODULES = ("checks", "fitstats", "mrp", "plots", "summaries")

__all__ = sorted([*_WHERE, *_MODULES, "__version__"])


def __getattr__(name: str):
    if name in _MODULES:
        return import_module(f".{name}", __name__)
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'scsurvey' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
