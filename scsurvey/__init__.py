"""scsurvey: hierarchical ordinal models of survey batteries, stored as ArviZ InferenceData."""

__version__ = "0.1.0"
