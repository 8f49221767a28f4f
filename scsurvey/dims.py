"""Dimension names, defined once and used by the model, InferenceData, checks and plots.

Grouping factors add one dim each, named after the factor's id (``region``, ...).
"""

RESPONDENT = "respondent"
ITEM = "item"
BATTERY = "battery"
BATTERY_OTHER = "battery_other"  # second axis of the battery correlation matrix
CATEGORY = "category"
THRESHOLD = "threshold"
COVARIATE = "covariate"
ITEM_COVARIATE = "item_covariate"  # covariates with item-specific deviations
GAP = "gap"  # threshold increments: thresholds 2..K-1

SAMPLE = ("chain", "draw")  # the sample dims of InferenceData groups
