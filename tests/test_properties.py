"""Property-based tests of the codebook and survey-file readers (hypothesis).

Random codebooks and random tables, written in each file format, with wrong types, gaps,
text in number columns, booleans, huge and non-finite numbers, stray bytes: whatever the
input, the readers either return validated data or fail with a DataError or CodebookError
(which the command line turns into one line and exit 2), never another exception.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import generic_codebook, generic_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scsurvey.inputs.codebook import CodebookError, parse_codebook
from scsurvey.inputs.survey import DataError, load_survey, prepare

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)


@st.composite
def codebooks(draw):
    """The generic codebook with some of its entries replaced by arbitrary values."""
    n_cat = draw(st.integers(2, 7))
    raw = generic_codebook(n_categories=n_cat, groups=draw(st.booleans()))
    for _ in range(draw(st.integers(0, 3))):
        table = draw(st.sampled_from(["survey", "scale", "batteries", "items", "covariates"]))
        target = raw[table]
        if isinstance(target, list):
            if not target:
                continue
            target = target[draw(st.integers(0, len(target) - 1))]
        key = draw(st.sampled_from([*sorted(target), "unknown_key"]))
        target[key] = draw(st.one_of(scalars, st.lists(scalars, max_size=4)))
    return raw


@given(raw=codebooks())
@SETTINGS
def test_any_codebook_parses_or_fails_with_a_codebook_error(raw):
    try:
        parse_codebook(copy.deepcopy(raw), "random.toml")
    except CodebookError as err:
        assert "random.toml" in str(err)


@st.composite
def tables(draw):
    """A table in the generic codebook's shape with arbitrary cells and columns spoiled."""
    raw = generic_codebook(groups=True)
    frame = generic_frame(raw, n=draw(st.integers(1, 25)), seed=draw(st.integers(0, 100)))
    for _ in range(draw(st.integers(0, 6))):
        column = draw(st.sampled_from(list(frame.columns)))
        row = draw(st.integers(0, len(frame) - 1))
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = draw(scalars)
    if draw(st.booleans()):
        frame = frame.drop(columns=[draw(st.sampled_from(list(frame.columns)))])
    return raw, frame


@given(case=tables())
@SETTINGS
def test_any_table_loads_or_fails_with_a_data_error(case):
    raw, frame = case
    codebook = parse_codebook(raw, "generic.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow noise before an error
        try:
            data = prepare(frame, codebook, source="random.csv")
        except DataError as err:
            assert "random.csv" in str(err)
            return
    assert np.isfinite(data.X).all()
    assert set(np.unique(data.responses)) <= {-1, *range(codebook.scale.n_categories)}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".dta", ".sav"])
@given(case=tables(), junk=st.binary(max_size=64), spoil=st.booleans())
@SETTINGS
def test_any_file_loads_or_fails_with_a_data_error(tmp_path_factory, suffix, case, junk, spoil):
    raw, frame = case
    path = tmp_path_factory.mktemp("files") / f"survey{suffix}"
    try:
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:  # the binary formats hold typed columns: text where the mix is unwritable
            typed = frame.apply(lambda c: c if pd.api.types.is_numeric_dtype(c) else c.astype(str))
            from scsurvey.inputs.survey import write_table

            write_table(typed, path)
    except Exception:
        path.write_bytes(junk)
    if spoil:  # a stray tail, as a truncated copy or a concatenated download leaves
        path.write_bytes(path.read_bytes()[: max(1, len(path.read_bytes()) // 2)] + junk)
    try:
        load_survey(path, parse_codebook(raw, "generic.toml"))
    except DataError as err:
        assert path.name in str(err)
