"""Multiple-response questions read from a survey file: who was asked, what each chose.

Each option is a column holding ``chosen`` or ``not_chosen`` for a respondent who was asked,
and nothing (a blank, or one of ``[scale].missing``) for one who was not. Who was asked
follows the codebook's routing rule (:class:`scsurvey.inputs.codebook.MultipleResponse`);
an answer from a respondent the rule did not ask is an error, never read as "not chosen".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scsurvey.inputs.codebook import Codebook, MultipleResponse
from scsurvey.inputs.messages import DataError, label, shown

CHOSEN, NOT_CHOSEN = 1, 0
NO_ANSWER = -1  # asked, and left blank or coded as a non-answer
NOT_ASKED = -2  # the routing rule did not put the question to the respondent


def route_columns(cb: Codebook) -> list[str]:
    """File columns that route a question (its ``route`` when that is not a battery)."""
    return [q.route for q in cb.multiple_response if q.route and q.route not in cb.battery_ids]


def option_columns(cb: Codebook) -> list[str]:
    """Every option's file column."""
    return [o.column for q in cb.multiple_response for o in q.options]


def _comparable(col: pd.Series, codes) -> tuple[pd.Series, list]:
    """A column and codes in one form: floats when both are numbers, text else (a code of
    1 and a value of 1.0 then both read "1")."""
    numeric = all(isinstance(c, int | float) and not isinstance(c, bool) for c in codes)
    if numeric:
        converted = pd.to_numeric(col, errors="coerce")
        if (converted.notna() | col.isna() | (col.astype(str).str.strip() == "")).all():
            return converted.astype(float), [float(c) for c in codes]
    text = col.map(lambda v: label(v).strip(), na_action="ignore")
    return text.where(text != ""), [label(c).strip() for c in codes]


def asked_mask(q: MultipleResponse, frame: pd.DataFrame, cb: Codebook, responses, source: str):
    """Which respondents ``q`` was put to, by its routing rule.

    Parameters
    ----------
    q : MultipleResponse
    frame : pandas.DataFrame
        The survey's wide table.
    cb : Codebook
    responses : ndarray of int, shape (respondent, item)
        The battery answers as 0-based categories (reverse-keyed items flipped), -1 missing.
    source : str
        The file, for error messages.

    Returns
    -------
    ndarray of bool, shape (respondent,)
    """
    n = len(frame)
    if q.asked == "everyone":
        return np.ones(n, dtype=bool)
    if q.route in cb.battery_ids:
        cols = [j for j, i in enumerate(cb.items) if i.battery == q.route]
        answers = np.asarray(responses)[:, cols].astype(float)
        answers[answers < 0] = np.nan
        answered = ~np.isnan(answers).all(axis=1)
        index = np.full(n, np.nan)
        index[answered] = np.nanmean(answers[answered], axis=1)
        middle = (cb.scale.n_categories - 1) / 2
        return index > middle if q.asked == "support" else index < middle
    if q.route not in frame.columns:
        raise DataError(
            f"{source}: column {q.route!r}, the route of multiple-response question {q.id!r} in "
            f"codebook {cb.path}, is not in the file and is not a battery ({cb.battery_ids}); "
            f"the file has {shown(list(frame.columns))}"
        )
    levels = list(cb.scale.levels)
    support = list(cb.scale.support) or levels[-1:]
    codes = support if q.asked == "support" else levels[: len(support)]
    values, codes = _comparable(frame[q.route], codes)
    return values.isin(codes).to_numpy()


def read_choices(frame: pd.DataFrame, cb: Codebook, responses, source: str) -> dict[str, np.ndarray]:
    """Each multiple-response question's choices, checked against its codebook entry.

    Returns
    -------
    dict
        Question id -> int8 array (respondent, option) of :data:`CHOSEN`,
        :data:`NOT_CHOSEN`, :data:`NO_ANSWER` or :data:`NOT_ASKED`.

    Raises
    ------
    DataError
        For codes that are neither chosen, not chosen nor a non-answer code, and for answers
        from respondents the routing rule did not ask, naming file, column and values.
    """
    out = {}
    ids = frame[cb.respondent_id] if cb.respondent_id in frame else pd.Series(range(len(frame)))
    for q in cb.multiple_response:
        asked = asked_mask(q, frame, cb, responses, source)
        codes = np.full((len(frame), len(q.options)), NO_ANSWER, dtype=np.int8)
        for k, option in enumerate(q.options):
            values, (chosen, not_chosen, *missing) = _comparable(
                frame[option.column], [q.chosen, q.not_chosen, *cb.scale.missing]
            )
            answered = values.isin([chosen, not_chosen]).to_numpy()
            bad = values.notna().to_numpy() & ~answered & ~values.isin(missing).to_numpy()
            if bad.any():
                raise DataError(
                    f"{source}: column {option.column!r} (option {option.id} of {q.id}): codes "
                    f"{shown(sorted(pd.unique(values[bad]), key=str))} are not chosen "
                    f"({q.chosen!r}), not chosen ({q.not_chosen!r}) or a non-answer code "
                    f"{list(cb.scale.missing)} (respondents {shown(ids[bad].tolist())})"
                )
            stray = answered & ~asked
            if stray.any():
                rule = f"those who {q.asked} on {q.route!r}"
                raise DataError(
                    f"{source}: column {option.column!r} (option {option.id} of {q.id}): "
                    f"respondents {shown(ids[stray].tolist())} answered it "
                    f"({shown(pd.unique(values[stray]))}) but the codebook's rule asks only "
                    f"{rule}; blank their answers, or correct the rule (asked, route) in {cb.path}"
                )
            codes[answered & (values == chosen).to_numpy(), k] = CHOSEN
            codes[answered & (values == not_chosen).to_numpy(), k] = NOT_CHOSEN
        codes[~asked] = NOT_ASKED
        out[q.id] = codes
    return out
