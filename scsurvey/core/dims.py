"""Dimension and variable names, defined once and used by the model, InferenceData, checks
and plots.

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
DIF_LEVEL = "dif_level"  # DIF contrasts: a binary covariate, or a grouping factor's level
QUESTION = "question"  # multiple-response questions the model fits
OPTION = "option"  # their options, question by question
CHOICE_ANSWER = "choice_answer"  # one answered (respondent, option) cell of them, in the model
ALL_COVARIATES = "covariate_all"  # every codebook covariate column (the model may use fewer)

SAMPLE = ("chain", "draw")  # the sample dims of InferenceData groups
STACKED = "sample"  # the two sample dims stacked into one

# a grouping factor may not take one of these names
STANDARD = (
    RESPONDENT,
    ITEM,
    BATTERY,
    BATTERY_OTHER,
    CATEGORY,
    THRESHOLD,
    COVARIATE,
    ITEM_COVARIATE,
    GAP,
    DIF_LEVEL,
    QUESTION,
    OPTION,
    CHOICE_ANSWER,
)

# respondent-level draws (``theta``) stored apart, at the posterior predictive's thinned draws
RESPONDENT_DRAWS = "posterior_respondents"

OBSERVED = "y"  # the observed answers, in the model and in InferenceData
OBSERVED_DATA = "y_obs"  # the pm.Data container holding them (swapped by SBC)
CHOICE = "choice"  # the multiple-response answers (respondent, option), in the model and InferenceData
CHOICE_DATA = "choice_obs"  # the pm.Data container holding them
