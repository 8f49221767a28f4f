"""Loading: four file formats, recoding, and a clear error for every bad input."""

import numpy as np
import pandas as pd
import pytest
from conftest import generic_codebook, generic_frame

from scsurvey.inputs.codebook import parse_codebook
from scsurvey.inputs.survey import MISSING, DataError, load_survey, prepare, write_table


@pytest.fixture
def cb():
    return parse_codebook(generic_codebook(reverse=("a1",)), "generic.toml")


@pytest.fixture
def frame(cb):
    raw = generic_codebook(reverse=("a1",))
    return generic_frame(raw, n=50, seed=3)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".dta", ".sav"])
def test_round_trip_through_every_format(tmp_path, cb, frame, suffix):
    path = tmp_path / f"survey{suffix}"
    write_table(frame, path)
    data = load_survey(path, cb)
    expected = prepare(frame, cb)
    np.testing.assert_array_equal(data.responses, expected.responses)
    np.testing.assert_allclose(data.X, expected.X)
    np.testing.assert_array_equal(data.groups["site"], expected.groups["site"])
    assert list(data.respondent_ids) == [str(i) for i in frame["id"]]
    assert len(data.data_hash) == 64


def test_recoding_reverse_keys_and_missing_codes(cb, frame):
    frame = frame.copy()
    frame.loc[0, ["q_a0", "q_a1", "q_a2"]] = [5, 5, 99]
    frame.loc[1, ["q_a0", "q_a1", "q_a2"]] = [1, 2, 98]
    data = prepare(frame, cb)
    # a0 is plainly keyed: code 5 -> category 4; a1 is reverse-keyed: 5 -> 0, 2 -> 3
    assert data.responses[0, 0] == 4 and data.responses[0, 1] == 0
    assert data.responses[1, 0] == 0 and data.responses[1, 1] == 3
    assert data.responses[0, 2] == MISSING and data.responses[1, 2] == MISSING
    blank = frame["q_b0"].isna().to_numpy()
    assert (data.responses[blank, 4] == MISSING).all()


def test_covariates_standardised_and_binary_centred(cb, frame):
    data = prepare(frame, cb)
    x1 = data.X[:, data.covariate_names.index("x1")]
    sex = data.X[:, data.covariate_names.index("sex")]
    assert abs(x1.mean()) < 1e-12 and abs(x1.std() - 1) < 1e-12
    assert abs(sex.mean()) < 1e-12
    assert np.allclose(np.unique(sex), np.unique(frame["sex"]) - frame["sex"].mean())


def _error(frame, cb, tmp_path):
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load_survey(path, cb)
    message = str(info.value)
    assert "bad.csv" in message
    return message


def test_missing_column(cb, frame, tmp_path):
    msg = _error(frame.drop(columns=["q_b1", "x1"]), cb, tmp_path)
    assert "missing columns ['q_b1', 'x1']" in msg


def test_codes_outside_the_scale(cb, frame, tmp_path):
    frame = frame.copy()
    frame.loc[[3, 7], "q_a2"] = [7, 0]
    msg = _error(frame, cb, tmp_path)
    assert (
        "column 'q_a2'" in msg
        and "codes [0, 7] are outside the scale [1, 2, 3, 4, 5]" in msg
        and "respondents [4, 8]" in msg
    )


def test_non_numeric_answers(cb, frame, tmp_path):
    frame = frame.copy()
    frame["q_b2"] = frame["q_b2"].astype(object)
    frame.loc[5, "q_b2"] = "agree"
    msg = _error(frame, cb, tmp_path)
    assert "column 'q_b2'" in msg and "non-numeric values ['agree']" in msg and "[6]" in msg


def test_duplicate_respondent_ids(cb, frame, tmp_path):
    frame = frame.copy()
    frame.loc[[1, 2], "id"] = 77
    msg = _error(frame, cb, tmp_path)
    assert "column 'id'" in msg and "duplicate respondent ids [77]" in msg


def test_empty_file(cb, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        load_survey(path, cb)
    path.write_text("id,q_a0\n")
    with pytest.raises(DataError, match=r"empty\.csv: the file has no rows"):
        load_survey(path, cb)


def test_respondent_with_no_answers(cb, frame, tmp_path):
    frame = frame.copy()
    items = [c for c in frame.columns if c.startswith("q_")]
    frame.loc[4, items] = np.nan
    frame.loc[9, items] = 99
    msg = _error(frame, cb, tmp_path)
    assert "respondents [5, 10] answered no item at all" in msg


def test_covariate_without_variance(cb, frame, tmp_path):
    frame = frame.copy()
    frame["x1"] = 2.5
    msg = _error(frame, cb, tmp_path)
    assert "column 'x1'" in msg and "no variance" in msg and "2.5" in msg


def test_unknown_group_level(cb, frame, tmp_path):
    frame = frame.copy()
    frame.loc[[0, 11], "site"] = ["s9", "elsewhere"]
    msg = _error(frame, cb, tmp_path)
    assert "column 'site'" in msg and "unknown levels ['elsewhere', 's9']" in msg


def test_missing_covariate_values(cb, frame, tmp_path):
    frame = frame.copy()
    frame.loc[2, "x1"] = np.nan
    msg = _error(frame, cb, tmp_path)
    assert "column 'x1'" in msg and "missing values" in msg and "respondents [3]" in msg


def test_binary_covariate_outside_levels(cb, frame, tmp_path):
    frame = frame.copy()
    frame.loc[0, "sex"] = 2
    msg = _error(frame, cb, tmp_path)
    assert "column 'sex'" in msg and "values [2] are not among the levels [0, 1]" in msg


def test_unknown_file_type(cb, tmp_path):
    path = tmp_path / "survey.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match=r"survey.xlsx: unknown file type '.xlsx'"):
        load_survey(path, cb)


def test_group_cut_from_breaks_and_nesting(codebook, small_twin):
    _twin, csv, _ = small_twin
    data = load_survey(csv, codebook)
    ages = pd.read_csv(csv)["age"].to_numpy()
    cohort = data.groups["age_cohort"]
    assert (ages[cohort == 0] < 30).all() and (ages[cohort == 4] >= 60).all()
    frame = pd.read_csv(csv)
    frame.loc[0, "region"] = "West" if frame.loc[0, "region"] != "West" else "East"
    with pytest.raises(DataError, match=r"columns 'province'/'region': province levels not in"):
        prepare(frame, codebook, "nested.csv")


def test_real_twin_loads_with_expected_shapes(codebook, small_twin):
    _, csv, _ = small_twin
    data = load_survey(csv, codebook)
    assert data.responses.shape == (240, 13)
    assert data.X.shape == (240, 14)
    missing = (~data.mask).mean()
    assert 0.02 < missing < 0.08, f"twin missing share {missing:.3f} outside 2-8%"


def text_codebook(**survey):
    raw = generic_codebook(n_categories=3, batteries=(("a", 3),), groups=False)
    raw["scale"] = {"levels": ["no", "perhaps", "yes"], "support": ["yes"], "missing": ["dk"]}
    raw["covariates"][1]["levels"] = ["F", "M"]
    raw["survey"].update(survey)
    return raw


def long_frame():
    rows = [
        (1, "q_a0", "no", 0.5, "F"),
        (1, "q_a1", "yes", 0.5, "F"),
        (1, "q_a2", "dk", 0.5, "F"),
        (2, "q_a0", "perhaps", -1.0, "M"),
        (2, "q_a2", "yes", -1.0, "M"),
        (3, "q_a1", " yes ", 2.0, "F"),
    ]
    return pd.DataFrame(rows, columns=["id", "item", "answer", "x1", "sex"])


def test_long_file_with_text_answers_reads_like_the_wide_one():
    cb = parse_codebook(text_codebook(layout="long", item_column="item", answer_column="answer"), "long.toml")
    data = prepare(long_frame(), cb, "long.csv")
    expected = np.array([[0, 2, MISSING], [1, MISSING, 2], [MISSING, 2, MISSING]])
    np.testing.assert_array_equal(data.responses, expected)
    assert list(data.respondent_ids) == ["1", "2", "3"]
    # text levels of a binary covariate are coded 0, 1 in the codebook's order, then centred
    sex = data.X[:, data.covariate_names.index("sex")]
    np.testing.assert_allclose(sex, np.array([0, 1, 0]) - 1 / 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(item=f["item"].replace("q_a2", "q_zz")), r"column 'item': items \['q_zz'\]"),
        (lambda f: pd.concat([f, f.iloc[[0]]]), r"answered more than once: \[\(1, 'q_a0'\)\]"),
        (lambda f: f.assign(x1=[0.5, 0.7, 0.5, -1, -1, 2]), r"columns \['x1'\] vary within a respondent"),
        (lambda f: f.assign(answer=f["answer"].replace("perhaps", "maybe")), r"answers \['maybe'\]"),
        (lambda f: f.drop(columns="answer"), r"missing columns \['answer'\] named in \[survey\]"),
    ],
)
def test_long_file_errors_name_the_column_and_values(change, message):
    cb = parse_codebook(text_codebook(layout="long", item_column="item", answer_column="answer"), "long.toml")
    with pytest.raises(DataError, match=message):
        prepare(change(long_frame()), cb, "long.csv")


def test_incomplete_respondents_are_an_error_unless_the_codebook_says_drop(cb, frame):
    frame = frame.copy()
    frame.loc[[0, 1], "x1"] = np.nan
    frame.loc[2, ["q_a0", "q_a1", "q_a2", "q_a3", "q_b0", "q_b1", "q_b2"]] = np.nan
    with pytest.raises(DataError, match=r"respondents \[3\] answered no item at all"):
        prepare(frame, cb, "survey.csv")
    raw = generic_codebook(reverse=("a1",))
    raw["survey"]["incomplete"] = "drop"
    with pytest.warns(UserWarning, match=r"dropped 3 of 50 respondents.*no answer: 1, no 'x1': 2"):
        data = prepare(frame, parse_codebook(raw, "drop.toml"), "survey.csv")
    assert data.n_respondents == 47 and "1" not in data.respondent_ids


def test_a_directory_given_as_the_data_file_is_named(cb, tmp_path):
    with pytest.raises(DataError, match=r"is a directory; give the survey file"):
        load_survey(tmp_path, cb)


@pytest.mark.parametrize("sep", [";", "\t", ","])
def test_the_csv_delimiter_is_sniffed(cb, frame, tmp_path, sep):
    """Semicolon-delimited "CSV" (European spreadsheets) reads like the comma-delimited file;
    the x1 column has decimal points, so a wrong split would lose or garble it."""
    path = tmp_path / "survey.csv"
    frame.to_csv(path, sep=sep, index=False)
    data = load_survey(path, cb)
    reference = prepare(frame, cb)
    np.testing.assert_array_equal(data.responses, reference.responses)
    np.testing.assert_allclose(data.X, reference.X)


def test_content_hash_follows_the_answers_not_the_file(cb, frame, tmp_path):
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_csv(tmp_path / "b.csv", sep=";", index=False)
    a, b = load_survey(tmp_path / "a.csv", cb), load_survey(tmp_path / "b.csv", cb)
    assert a.data_hash != b.data_hash  # the files differ (staleness is per file)
    assert a.content_hash() == b.content_hash() == prepare(frame, cb).content_hash()
    changed = frame.copy()
    col = cb.items[0].column
    changed.loc[0, col] = 1 if changed.loc[0, col] != 1 else 2
    assert prepare(changed, cb).content_hash() != a.content_hash()
