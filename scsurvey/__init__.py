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
    "SurveyModel": "surveymodel",
    "load": "surveymodel",
    "ModelMismatchError": "surveymodel",
    "Codebook": "inputs.codebook",
    "CodebookError": "inputs.codebook",
    "load_codebook": "inputs.codebook",
    "parse_codebook": "inputs.codebook",
    "Diagnostics": "inference.diagnostics",
    "diagnose": "inference.diagnostics",
    "DataError": "inputs.survey",
    "SurveyData": "inputs.survey",
    "load_survey": "inputs.survey",
    "StalePosteriorError": "storage.reader",
    "load_posterior": "storage.reader",
    "SpecError": "model.spec",
    "default_model_config": "model.spec",
    "default_sampler_config": "model.spec",
    "load_spec": "model.spec",
    "LockedError": "storage.files",
    "StorageError": "storage.files",
}
# public modules: ``ss.checks`` and ``from scsurvey import checks`` reach them where they live
_MODULES = {
    "checks": "posterior.checks",
    "fitstats": "posterior.item_person_fit",
    "mrp": "workflows.mrp",
    "plots": "report.plots",
    "summaries": "posterior.summaries",
}

__all__ = sorted([*_WHERE, *_MODULES, "__version__"])


def __getattr__(name: str):
    if name in _MODULES:
        return import_module(f".{_MODULES[name]}", __name__)
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'scsurvey' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
