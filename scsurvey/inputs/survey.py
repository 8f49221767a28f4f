"""Read a survey file described by a codebook and return a validated, model-ready table.

Reads CSV, Parquet, Stata (.dta) and SPSS (.sav). Nothing is dropped or coerced
silently: every violation raises :class:`DataError` naming the file, the column and the
offending values.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scsurvey.core import dims
from scsurvey.inputs.choices import option_columns, read_choices, route_columns
from scsurvey.inputs.codebook import Codebook, Covariate, Group
from scsurvey.inputs.messages import DataError
from scsurvey.inputs.messages import label as _label
from scsurvey.inputs.messages import shown as _shown

MISSING = -1  # code of a missing answer in the response array
# no covariate a survey measures (an income in any currency, an age, a count) comes near this;
# beyond it a value is a data-entry code or an overflow, and squaring it overflows a float
MAX_COVARIATE = 1e15


@dataclass
class SurveyData:
    """A validated survey: the wide table and the arrays a model needs.

    Attributes
    ----------
    responses : ndarray of int8, shape (respondent, item)
        0-based category (reverse-keyed items already flipped), ``MISSING`` (-1) where
        there is no answer.
    X : ndarray of float, shape (respondent, covariate)
        Standardised covariates (categorical ones expanded to centred dummies).
    groups : dict
        Grouping factor id -> int index array of shape (respondent,).
    choices : dict
        Multiple-response question id -> int8 array (respondent, option)
        (:func:`scsurvey.inputs.choices.read_choices`).
    """

    codebook: Codebook
    source: str
    table: pd.DataFrame
    respondent_ids: np.ndarray
    responses: np.ndarray
    X: np.ndarray
    covariate_names: list[str]
    covariate_center: np.ndarray
    covariate_scale: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    data_hash: str = ""
    choices: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        """True where an answer was observed."""
        return self.responses != MISSING

    @property
    def n_respondents(self) -> int:
        return self.responses.shape[0]

    def coords(self) -> dict[str, list]:
        """Coordinates of every standard dim, from the codebook."""
        cb = self.codebook
        k = cb.scale.n_categories
        out = {
            dims.RESPONDENT: [str(r) for r in self.respondent_ids],
            dims.ITEM: cb.item_ids,
            dims.BATTERY: cb.battery_ids,
            dims.BATTERY_OTHER: cb.battery_ids,
            dims.CATEGORY: list(cb.scale.labels),
            dims.THRESHOLD: [
                f"{a}|{b}" for a, b in zip(cb.scale.labels[:-1], cb.scale.labels[1:], strict=False)
            ],
            dims.GAP: [f"gap{j}" for j in range(2, k)],
            dims.COVARIATE: list(self.covariate_names),
        }
        for g in cb.groups:
            out[g.id] = list(g.levels)
        return out

    def content_hash(self) -> str:
        """SHA-256 of what the model sees: ids, answers, covariates, groups and the codebook.

        Unlike ``data_hash`` (the file's bytes, for staleness), it does not depend on how
        the table was stored, so a survey rebuilt from a posterior hashes the same.
        """
        digest = hashlib.sha256("\x1f".join(map(str, self.respondent_ids)).encode())
        for arr in (
            self.responses,
            self.X,
            *(self.groups[k] for k in sorted(self.groups)),
            *(self.choices[k] for k in sorted(self.choices)),
        ):
            digest.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        digest.update(codebook_hash(self.codebook).encode())
        return digest.hexdigest()

    def subset(self, rows: np.ndarray) -> SurveyData:
        """The same survey restricted to ``rows`` (standardisation kept as is)."""
        return SurveyData(
            codebook=self.codebook,
            source=f"{self.source}[subset of {len(rows)}]",
            table=self.table.iloc[rows].reset_index(drop=True),
            respondent_ids=self.respondent_ids[rows],
            responses=self.responses[rows],
            X=self.X[rows],
            covariate_names=self.covariate_names,
            covariate_center=self.covariate_center,
            covariate_scale=self.covariate_scale,
            groups={k: v[rows] for k, v in self.groups.items()},
            data_hash=f"{self.data_hash}:subset:{hashlib.sha256(rows.tobytes()).hexdigest()[:16]}",
            choices={k: v[rows] for k, v in self.choices.items()},
        )


# what survey exports that are not UTF-8 are written in: Western and Central European
# Windows and ISO code pages, Cyrillic, and the Chinese, Japanese and Korean national ones
# (a short file is guessed among these, not among every code page there is)
LEGACY_ENCODINGS = ["cp1252", "latin_1", "iso8859_2", "cp1251", "gb18030", "big5", "shift_jis", "euc_kr"]


def csv_encoding(path: Path, named: str = "") -> str:
    """The text encoding to read a CSV file with: the codebook's ``[survey].encoding`` when it
    names one, UTF-8 when the file decodes as UTF-8, else the one of :data:`LEGACY_ENCODINGS`
    that ``charset_normalizer`` finds most coherent (survey exports are often Windows-1252 or
    GB18030).

    Raises
    ------
    DataError
        When the named encoding does not decode the file, or no encoding is detected.
    """
    raw = path.read_bytes()
    if named:
        try:
            raw.decode(named)
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path}: not readable as {named} (the codebook's [survey].encoding): "
                f"byte {err.start} is {raw[err.start : err.start + 1]!r}"
            ) from None
        return named
    try:
        raw.decode("utf-8")
        return "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
    except UnicodeDecodeError as err:
        first_bad = err.start
    from charset_normalizer import from_bytes

    best = from_bytes(raw, cp_isolation=LEGACY_ENCODINGS).best()
    if best is None:
        raise DataError(
            f"{path}: not text in any encoding this reader knows (byte {first_bad} is not UTF-8); "
            'name the file\'s encoding in the codebook, [survey] encoding = "..."'
        )
    return best.encoding


def read_table(path: Path | str, encoding: str = "") -> pd.DataFrame:
    """Read a CSV, Parquet, Stata or SPSS file into a DataFrame, unchanged.

    Parameters
    ----------
    path : Path or str
    encoding : str
        Of a CSV file (:func:`csv_encoding`); empty: UTF-8, or detected.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        Naming the file, for a file that is missing, empty, ragged, or not of its type.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give the survey file (csv, parquet, dta or sav)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            encoding = csv_encoding(path, encoding)
            frame = pd.read_csv(path, sep=sniff_delimiter(path, encoding), encoding=encoding)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".dta", ".sav"):
            frame = _read_readstat(path, suffix)
        else:
            raise DataError(f"{path}: unknown file type {suffix!r} (csv, parquet, dta, sav)")
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: the file is empty") from err
    except pd.errors.ParserError as err:  # a ragged CSV: a row with more fields than the header
        raise DataError(f"{path}: not a regular table: {str(err).strip()}") from None
    except DataError:
        raise
    except (OSError, ValueError) as err:  # pyarrow, pyreadstat: not a file of its suffix's type
        kind = {".parquet": "Parquet", ".pq": "Parquet", ".dta": "Stata", ".sav": "SPSS"}.get(suffix, "CSV")
        raise DataError(
            f"{path}: not a readable {kind} file ({type(err).__name__}: {_first_line(err)})"
        ) from None
    if frame.shape[0] == 0:
        raise DataError(f"{path}: the file has no rows")
    return frame


def _read_readstat(path: Path, suffix: str) -> pd.DataFrame:
    """A Stata or SPSS file through pyreadstat, whose errors are its own classes."""
    import pyreadstat

    reader = pyreadstat.read_dta if suffix == ".dta" else pyreadstat.read_sav
    try:
        frame, _ = reader(path)
    except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError) as err:
        raise OSError(str(err)) from None
    return frame


def _first_line(err: Exception) -> str:
    """An error's message on one line, cut short: never the file's contents at length."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text[:200]


def sniff_delimiter(path: Path, encoding: str = "utf-8") -> str:
    """The field delimiter of a CSV file: comma, semicolon, tab or bar, from its first lines.

    Many European spreadsheets write semicolon-delimited "CSV". A file with none of these
    reads as one column, and the missing-columns error then shows that column's name.
    """
    with open(path, newline="", encoding=encoding, errors="replace") as handle:
        head = handle.read(65536)
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def write_table(frame: pd.DataFrame, path: Path | str) -> None:
    """Write a DataFrame in the format its suffix names (csv, parquet, dta, sav)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    elif suffix == ".dta":
        import pyreadstat

        pyreadstat.write_dta(frame, path)
    elif suffix == ".sav":
        import pyreadstat

        pyreadstat.write_sav(frame, path)
    else:
        raise DataError(f"{path}: unknown file type {suffix!r} (csv, parquet, dta, sav)")


def _rows(frame: pd.DataFrame, id_col: str, where: np.ndarray) -> str:
    ids = frame.loc[where, id_col].tolist() if id_col in frame else np.flatnonzero(where).tolist()
    return f"respondents {_shown(ids)}"


def _numeric(frame, column, source, id_col) -> pd.Series:
    """A column as floats; non-numeric entries are an error, blanks stay NaN."""
    col = frame[column]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.astype(float)
    converted = pd.to_numeric(col, errors="coerce")
    bad = col.notna() & converted.isna() & (col.astype(str).str.strip() != "")
    if bad.any():
        raise DataError(
            f"{source}: column {column!r}: non-numeric values "
            f"{_shown(pd.unique(col[bad]))} ({_rows(frame, id_col, bad.to_numpy())})"
        )
    return converted.astype(float)


def _answer_codes(frame, item, cb: Codebook, source) -> tuple[pd.Series, set]:
    """An item's column as comparable values (floats, or stripped text) and the missing codes."""
    scale = cb.scale
    if pd.api.types.is_bool_dtype(frame[item.column]):
        raise DataError(
            f"{source}: column {item.column!r} (item {item.id}) holds true/false values, which cannot "
            f"hold the codebook's levels {list(scale.levels)} or its non-answer codes {list(scale.missing)}"
        )
    if not scale.is_text:
        return _numeric(frame, item.column, source, cb.respondent_id), {float(v) for v in scale.missing}
    col = frame[item.column]
    text = col.where(col.isna(), col.astype(str).str.strip())
    return text.where(text != ""), set(scale.missing)


def _responses(frame, cb: Codebook, source) -> np.ndarray:
    scale = cb.scale
    code_to_cat = {(v if scale.is_text else float(v)): k for k, v in enumerate(scale.levels)}
    k_max = scale.n_categories - 1
    out = np.full((len(frame), len(cb.items)), MISSING, dtype=np.int8)
    for j, item in enumerate(cb.items):
        values, missing_codes = _answer_codes(frame, item, cb, source)
        observed = values.notna() & ~values.isin(missing_codes)
        bad = observed & ~values.isin(code_to_cat.keys())
        if bad.any():
            raise DataError(
                f"{source}: column {item.column!r} (item {item.id}): "
                f"{'answers' if scale.is_text else 'codes'} "
                f"{_shown(sorted(pd.unique(values[bad]), key=str))} are outside the scale "
                f"{list(scale.levels)} and not missing codes {list(scale.missing)} "
                f"({_rows(frame, cb.respondent_id, bad.to_numpy())})"
            )
        cat = values[observed].map(code_to_cat).to_numpy(dtype=np.int8)
        if item.reverse:
            cat = k_max - cat
        out[observed.to_numpy(), j] = cat
    return out


def _covariate(frame, cov: Covariate, source, id_col) -> np.ndarray:
    """Raw (untransformed, unstandardised) values of one covariate, validated."""
    if cov.type == "categorical":
        col = frame[cov.column]
        if col.isna().any():
            where = col.isna().to_numpy()
            raise DataError(
                f"{source}: column {cov.column!r} (covariate {cov.id}): missing values "
                f"({_rows(frame, id_col, where)}); impute or drop them before loading"
            )
        labels = col.map(_label)
        known = {_label(v) for v in cov.levels}
        bad = ~labels.isin(known)
        if bad.any():
            raise DataError(
                f"{source}: column {cov.column!r} (covariate {cov.id}): unknown levels "
                f"{_shown(sorted(pd.unique(labels[bad])))} (codebook levels "
                f"{list(cov.levels)}; {_rows(frame, id_col, bad.to_numpy())})"
            )
        return labels.to_numpy()
    if cov.levels is not None and all(isinstance(v, str) for v in cov.levels):
        # text levels of a binary or ordinal covariate: coded 0, 1, ... in the codebook's order
        labels = frame[cov.column].map(_label)
        bad = frame[cov.column].notna() & ~labels.isin(cov.levels)
        if bad.any():
            raise DataError(
                f"{source}: column {cov.column!r} (covariate {cov.id}): values "
                f"{_shown(sorted(pd.unique(labels[bad])))} are not among the levels "
                f"{list(cov.levels)} ({_rows(frame, id_col, bad.to_numpy())})"
            )
        frame = frame.assign(**{cov.column: labels.map({v: k for k, v in enumerate(cov.levels)})})
        cov = Covariate(**{**cov.__dict__, "levels": tuple(range(len(cov.levels)))})
    values = _numeric(frame, cov.column, source, id_col)
    if values.isna().any():
        where = values.isna().to_numpy()
        raise DataError(
            f"{source}: column {cov.column!r} (covariate {cov.id}): missing values "
            f"({_rows(frame, id_col, where)}); impute or drop them before loading"
        )
    huge = ~np.isfinite(values) | (values.abs() > MAX_COVARIATE)
    if huge.any():  # before any arithmetic: their squares overflow, their logs mean nothing
        raise DataError(
            f"{source}: column {cov.column!r} (covariate {cov.id}): values "
            f"{_shown(sorted(pd.unique(values[huge])))} are not plausible measurements (beyond "
            f"{MAX_COVARIATE:.0e} in size; {_rows(frame, id_col, huge.to_numpy())})"
        )
    if cov.levels is not None:
        bad = ~values.isin([float(v) for v in cov.levels])
        if bad.any():
            raise DataError(
                f"{source}: column {cov.column!r} (covariate {cov.id}): values "
                f"{_shown(sorted(pd.unique(values[bad])))} are not among the levels "
                f"{list(cov.levels)} ({_rows(frame, id_col, bad.to_numpy())})"
            )
    if cov.transform == "log":
        bad = values <= 0
        if bad.any():
            raise DataError(
                f"{source}: column {cov.column!r} (covariate {cov.id}): log transform of "
                f"non-positive values {_shown(sorted(pd.unique(values[bad])))} "
                f"({_rows(frame, id_col, bad.to_numpy())})"
            )
        values = np.log(values)
    return values.to_numpy(dtype=float)


def _design(frame, cb: Codebook, source):
    """Standardised covariate matrix, its column names, centres and scales."""
    columns, names, centers, scales = [], [], [], []
    for cov in cb.covariates:
        raw = _covariate(frame, cov, source, cb.respondent_id)
        if cov.type == "categorical":
            blocks = [
                ((raw == _label(level)).astype(float), f"{cov.id}[{_label(level)}]")
                for level in cov.levels[1:]
            ]
        else:
            blocks = [(raw, cov.id)]
        for x, name in blocks:
            sd = float(np.std(x))
            if not sd > 0:
                raise DataError(
                    f"{source}: column {cov.column!r} (covariate {name}): no variance "
                    f"(every respondent has {_shown(pd.unique(x))}); drop it from the "
                    "codebook or the model"
                )
            center = float(np.mean(x)) if cov.standardize != "none" else 0.0
            scale = sd if cov.standardize == "zscore" else 1.0
            columns.append((x - center) / scale)
            names.append(name)
            centers.append(center)
            scales.append(scale)
    X = np.column_stack(columns) if columns else np.zeros((len(frame), 0))
    return X, names, np.array(centers), np.array(scales)


def _group_values(frame, group: Group) -> pd.Series:
    """The factor's values as level labels; a combination of columns joins them with ':'."""
    if len(group.columns) == 1:
        return frame[group.column]
    parts = [frame[c] for c in group.columns]
    missing = np.logical_or.reduce([p.isna().to_numpy() for p in parts])
    rows = zip(*parts, strict=True)
    joined = pd.Series([":".join(_label(v) for v in row) for row in rows], index=frame.index)
    return joined.where(~missing)


def person_columns(cb: Codebook) -> list[str]:
    """The file columns holding one value per respondent: covariates and grouping factors."""
    return list(dict.fromkeys([c.column for c in cb.covariates] + [c for g in cb.groups for c in g.columns]))


def _group_index(frame, group: Group, source, id_col) -> np.ndarray:
    col = _group_values(frame, group)
    if group.breaks is not None:
        values = _numeric(frame, group.column, source, id_col)
        outside = values.isna() | (values < group.breaks[0]) | (values >= group.breaks[-1])
        if outside.any():
            raise DataError(
                f"{source}: column {group.column!r} (group {group.id}): values "
                f"{_shown(sorted(pd.unique(values[outside])))} fall outside the breaks "
                f"{list(group.breaks)} ({_rows(frame, id_col, outside.to_numpy())})"
            )
        return (np.searchsorted(group.breaks, values.to_numpy(), side="right") - 1).astype(int)
    if col.isna().any():
        where = col.isna().to_numpy()
        raise DataError(
            f"{source}: column {group.column!r} (group {group.id}): missing levels "
            f"({_rows(frame, id_col, where)})"
        )
    labels = col.map(_label) if len(group.columns) == 1 else col
    lookup = {lvl: k for k, lvl in enumerate(group.levels)}
    bad = ~labels.isin(lookup.keys())
    if bad.any():
        raise DataError(
            f"{source}: column {group.column!r} (group {group.id}): unknown levels "
            f"{_shown(sorted(pd.unique(labels[bad])))} (codebook levels: "
            f"{_shown(group.levels)}; {_rows(frame, id_col, bad.to_numpy())})"
        )
    return labels.map(lookup).to_numpy(dtype=int)


def _check_nesting(groups: dict, cb: Codebook, frame, source):
    for g in cb.groups:
        if g.nested_in is None:
            continue
        parent = cb.group(g.nested_in)
        expected = np.array([parent.levels.index(p) for p in g.parents])[groups[g.id]]
        bad = expected != groups[parent.id]
        if bad.any():
            pairs = sorted(
                {
                    (g.levels[a], parent.levels[b])
                    for a, b in zip(groups[g.id][bad], groups[parent.id][bad], strict=False)
                }
            )
            raise DataError(
                f"{source}: columns {g.column!r}/{parent.column!r}: {g.id} levels not in "
                f"their codebook {parent.id}: {_shown(pairs)} "
                f"({_rows(frame, cb.respondent_id, bad)})"
            )


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def codebook_hash(codebook: Codebook) -> str:
    """SHA-256 of what a codebook says (not its formatting or comments)."""
    content = (
        codebook.respondent_id,
        codebook.scale,
        codebook.batteries,
        codebook.items,
        codebook.covariates,
        codebook.groups,
    )
    anchors = [i.id for i in codebook.items if i.dif_anchor]
    if anchors:
        content += (("dif_anchor", *anchors),)
    if codebook.multiple_response:  # absent, the hash is what it was before they existed
        content += (("multiple_response", codebook.multiple_response),)
    return hashlib.sha256(repr(content).encode()).hexdigest()


def widen(frame: pd.DataFrame, cb: Codebook, source: str) -> pd.DataFrame:
    """A long file (one row per respondent and item) as the wide table the codebook describes.

    Respondent-level columns (covariates and groups) must hold one value per respondent.
    """
    id_col, item_col, answer_col = cb.respondent_id, cb.item_column, cb.answer_column
    absent = [c for c in (id_col, item_col, answer_col) if c not in frame.columns]
    if absent:
        raise DataError(
            f"{source}: missing columns {absent} named in [survey] of codebook {cb.path} "
            f"(the file has {_shown(frame.columns)})"
        )
    known = {i.column for i in cb.items}
    unknown = ~frame[item_col].isin(known)
    if unknown.any():
        names = sorted(pd.unique(frame[item_col][unknown]), key=str)
        raise DataError(
            f"{source}: column {item_col!r}: items {_shown(names)} "
            f"are not in codebook {cb.path} (add them as [[items]] with that `column`, or drop those rows)"
        )
    twice = frame.duplicated([id_col, item_col], keep=False)
    if twice.any():
        pairs = frame.loc[twice, [id_col, item_col]].drop_duplicates().itertuples(index=False)
        raise DataError(
            f"{source}: respondent/item pairs answered more than once: {_shown([tuple(p) for p in pairs])}"
        )
    wide = frame.pivot(index=id_col, columns=item_col, values=answer_col)
    wide = wide.reindex(columns=[i.column for i in cb.items])
    # a respondent's multiple-response answers and routing columns are respondent-level too
    person_cols = list(dict.fromkeys(person_columns(cb) + option_columns(cb) + route_columns(cb)))
    missing_cols = [c for c in person_cols if c not in frame.columns]
    if missing_cols:
        raise DataError(
            f"{source}: missing columns {missing_cols} required by codebook {cb.path} "
            f"(the file has {_shown(frame.columns)})"
        )
    if person_cols:
        varying = [c for c in person_cols if (frame.groupby(id_col)[c].nunique(dropna=False) > 1).any()]
        if varying:
            raise DataError(
                f"{source}: columns {varying} vary within a respondent; respondent-level columns "
                "of a long file need one value per respondent"
            )
        person = frame.groupby(id_col)[person_cols].first()
        wide = wide.join(person)
    return wide.reset_index()


def drop_incomplete(frame: pd.DataFrame, cb: Codebook, source: str) -> pd.DataFrame:
    """Rows kept when the codebook says ``incomplete = "drop"``, with a warning that counts.

    A row is incomplete when it answers no item or lacks a covariate or group value.
    """
    import warnings

    reasons = {}
    answered = np.zeros(len(frame), dtype=bool)
    for item in cb.items:
        if item.column in frame:
            values, missing_codes = _answer_codes(frame, item, cb, source)
            answered |= (values.notna() & ~values.isin(missing_codes)).to_numpy()
    reasons["no answer"] = ~answered
    for col in person_columns(cb):
        if col in frame:
            reasons[f"no {col!r}"] = frame[col].isna().to_numpy()
    drop = np.logical_or.reduce(list(reasons.values()))
    if drop.any():
        counts = ", ".join(f"{k}: {int(v.sum())}" for k, v in reasons.items() if v.any())
        warnings.warn(
            f"{source}: dropped {int(drop.sum())} of {len(frame)} respondents as codebook {cb.path} "
            f'asks (incomplete = "drop"); {counts}',
            stacklevel=3,
        )
    return frame.loc[~drop].reset_index(drop=True)


def prepare(
    frame: pd.DataFrame, codebook: Codebook, source: str = "<memory>", require_answers=True
) -> SurveyData:
    """Validate a wide table against a codebook and build the model arrays.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per respondent, columns as the codebook names them.
    codebook : Codebook
    source : str
        Name of the file it came from, for error messages.
    require_answers : bool
        Whether a respondent with no answer at all is an error (it is for real data; the
        simulator prepares covariates before any answer exists).

    Returns
    -------
    SurveyData
    """
    cb = codebook
    if len(frame) == 0:
        raise DataError(f"{source}: the file has no rows")
    if cb.layout == "long":
        frame = widen(frame, cb, source)
    if cb.incomplete == "drop" and require_answers:
        frame = drop_incomplete(frame, cb, source)
        if len(frame) == 0:
            raise DataError(f"{source}: no complete respondent is left")
    needed = [cb.respondent_id, *(i.column for i in cb.items)]
    needed += person_columns(cb) + option_columns(cb)
    absent = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if absent:
        raise DataError(
            f"{source}: missing columns {absent} required by codebook {cb.path} "
            f"(the file has {_shown(frame.columns)})"
        )
    ids = frame[cb.respondent_id]
    if ids.isna().any():
        raise DataError(
            f"{source}: column {cb.respondent_id!r}: missing respondent ids in rows "
            f"{_shown(np.flatnonzero(ids.isna().to_numpy()) + 1)}"
        )
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise DataError(
            f"{source}: column {cb.respondent_id!r}: duplicate respondent ids "
            f"{_shown(sorted(pd.unique(ids[dup])))}"
        )
    responses = _responses(frame, cb, source)
    if require_answers:
        none = (responses == MISSING).all(axis=1)
        if none.any():
            raise DataError(
                f"{source}: item columns {[i.column for i in cb.items]}: "
                f"{_rows(frame, cb.respondent_id, none)} answered no item at all"
            )
    choices = read_choices(frame, cb, responses, source)
    X, names, centers, scales = _design(frame, cb, source)
    groups = {g.id: _group_index(frame, g, source, cb.respondent_id) for g in cb.groups}
    _check_nesting(groups, cb, frame, source)
    data = SurveyData(
        codebook=cb,
        source=source,
        table=frame.reset_index(drop=True),
        respondent_ids=ids.map(_label).to_numpy(),
        responses=responses,
        X=X,
        covariate_names=names,
        covariate_center=centers,
        covariate_scale=scales,
        groups=groups,
        choices=choices,
    )
    data.data_hash = data.content_hash()  # a file's loader replaces it with the file's hash
    return data


def load_survey(path: Path | str, codebook: Codebook) -> SurveyData:
    """Read and validate a survey file.

    Parameters
    ----------
    path : Path or str
        CSV, Parquet, Stata (.dta) or SPSS (.sav) file, one row per respondent.
    codebook : Codebook

    Returns
    -------
    SurveyData
        With ``data_hash`` the SHA-256 of the file's bytes and the codebook's content.

    Raises
    ------
    DataError
        On any violation, naming the file, the column and the offending values.
    """
    path = Path(path)
    frame = read_table(path, codebook.encoding)
    data = prepare(frame, codebook, source=str(path))
    data.data_hash = hashlib.sha256((_file_hash(path) + codebook_hash(codebook)).encode()).hexdigest()
    return data
