"""What a survey is: respondent id, response scale, batteries, items, covariates, groups.

A codebook is a TOML file (see ``data/codebook/scs2020.toml``). Parsing validates it and
fails with a :class:`CodebookError` that names the file and the offending entry.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from scsurvey.core import dims
from scsurvey.core.tomlfile import check_keys, read_toml

COVARIATE_TYPES = ("continuous", "ordinal", "binary", "categorical")
LAYOUTS = ("wide", "long")
INCOMPLETE = ("error", "drop")
STANDARDIZE = ("zscore", "center", "none")
TRANSFORMS = (None, "log")
ASKED = ("everyone", "support", "oppose")  # who a multiple-response question was put to


class CodebookError(ValueError):
    """A codebook is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Scale:
    """The response scale shared by all items.

    ``levels`` are the codes as stored in a file, in order from lowest to highest;
    ``support`` the levels counted as support; ``missing`` codes meaning don't know/refused.
    """

    levels: tuple
    labels: tuple[str, ...]
    support: tuple
    missing: tuple = ()

    @property
    def n_categories(self) -> int:
        return len(self.levels)

    @property
    def is_text(self) -> bool:
        """Whether answers are stored as text labels ("no", "yes") rather than codes."""
        return isinstance(self.levels[0], str)

    @property
    def codes(self) -> tuple[float, ...]:
        """Numeric value of each level: the code itself, or its position 1..K for text."""
        return tuple(float(k + 1) if self.is_text else float(v) for k, v in enumerate(self.levels))

    @property
    def support_mask(self) -> tuple[bool, ...]:
        """One flag per category (0-based position), True where it counts as support."""
        return tuple(level in self.support for level in self.levels)


@dataclass(frozen=True)
class Battery:
    id: str
    label: str = ""


@dataclass(frozen=True)
class Item:
    id: str
    battery: str
    column: str
    label: str = ""
    reverse: bool = False
    published_support: float | None = None
    # read alike by every group (scsurvey.model.dif): no DIF is estimated for it; out of the
    # repr, so codebooks without anchors keep their content hash
    dif_anchor: bool = field(default=False, repr=False)


@dataclass(frozen=True)
class Covariate:
    id: str
    column: str
    type: str
    label: str = ""
    levels: tuple | None = None
    standardize: str = "zscore"
    transform: str | None = None


@dataclass(frozen=True)
class Group:
    """A grouping factor read from ``column``, or from the combination of several columns
    (``column = ["country", "wave"]``: levels such as ``"Albania:3"``)."""

    id: str
    column: str | tuple[str, ...]
    levels: tuple[str, ...]
    label: str = ""
    breaks: tuple[float, ...] | None = None
    nested_in: str | None = None
    parents: tuple[str, ...] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The file columns the factor is read from."""
        return self.column if isinstance(self.column, tuple) else (self.column,)


@dataclass(frozen=True)
class Finding:
    """A published association: ``covariate`` goes with more (+) or less (-) support."""

    covariate: str
    direction: str
    text: str = ""
    battery: str | None = None


@dataclass(frozen=True)
class Option:
    """One option of a multiple-response question, read from its own column."""

    id: str
    column: str
    label: str = ""


@dataclass(frozen=True)
class MultipleResponse:
    """A question whose options are each chosen or not (scsurvey.inputs.choices).

    ``asked`` says who was asked: ``"everyone"``, or those who support (``"support"``) or
    oppose (``"oppose"``) on ``route``, a battery (the mean of the respondent's answered
    items above or below the scale's middle) or a column answered on the scale (its
    ``[scale].support`` codes, or as many codes from the bottom). ``battery`` is the latent
    support the choices are modelled on.
    """

    id: str
    battery: str
    options: tuple[Option, ...]
    label: str = ""
    asked: str = "everyone"
    route: str | None = None
    chosen: object = 1
    not_chosen: object = 0

    @property
    def option_ids(self) -> list[str]:
        return [o.id for o in self.options]


@dataclass(frozen=True)
class Ordering:
    """A published ranking: each option in ``more`` is chosen more often than each in
    ``less`` by those asked ``question``."""

    question: str
    more: tuple[str, ...]
    less: tuple[str, ...]
    text: str = ""

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(a, b) for a in self.more for b in self.less]


@dataclass(frozen=True)
class Contrast:
    """Two respondent profiles (raw covariate codes) whose predicted support is compared."""

    id: str
    label: str
    a: tuple[tuple[str, float], ...]
    b: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Codebook:
    """A parsed, validated codebook. Items are ordered battery by battery."""

    path: Path
    name: str
    respondent_id: str
    scale: Scale
    batteries: tuple[Battery, ...]
    items: tuple[Item, ...]
    covariates: tuple[Covariate, ...] = ()
    groups: tuple[Group, ...] = ()
    findings: tuple[Finding, ...] = ()
    contrasts: tuple[Contrast, ...] = ()
    multiple_response: tuple[MultipleResponse, ...] = ()
    orderings: tuple[Ordering, ...] = ()
    title: str = ""
    layout: str = "wide"
    item_column: str | None = None
    answer_column: str | None = None
    incomplete: str = "error"
    encoding: str = ""  # of a CSV survey file; empty: UTF-8, else detected (inputs.survey.read_table)
    # the TOML content it was parsed from: stored with a posterior so that it can be rebuilt
    raw: dict | None = field(default=None, compare=False, repr=False, hash=False)

    @property
    def battery_ids(self) -> list[str]:
        return [b.id for b in self.batteries]

    @property
    def item_ids(self) -> list[str]:
        return [i.id for i in self.items]

    @property
    def item_battery_index(self) -> list[int]:
        """Position of each item's battery in :attr:`batteries`."""
        ids = self.battery_ids
        return [ids.index(i.battery) for i in self.items]

    @property
    def option_ids(self) -> list[str]:
        """Every option of every multiple-response question, question by question."""
        return [o for q in self.multiple_response for o in q.option_ids]

    def question(self, qid: str) -> MultipleResponse:
        for q in self.multiple_response:
            if q.id == qid:
                return q
        raise KeyError(f"codebook {self.path}: no multiple-response question {qid!r}")

    def covariate(self, cid: str) -> Covariate:
        for c in self.covariates:
            if c.id == cid:
                return c
        raise KeyError(f"codebook {self.path}: no covariate {cid!r}")

    def group(self, gid: str) -> Group:
        for g in self.groups:
            if g.id == gid:
                return g
        raise KeyError(f"codebook {self.path}: no grouping factor {gid!r}")


def _fail(path, entry, message):
    raise CodebookError(f"codebook {path}: {entry}: {message}")


def _require(table: dict, key: str, path, entry):
    if key not in table:
        _fail(path, entry, f"missing required key {key!r}")
    return table[key]


def _unique(ids, path, what):
    seen, dupes = set(), []
    for i in ids:
        if i in seen:
            dupes.append(i)
        seen.add(i)
    if dupes:
        _fail(path, what, f"duplicate ids {sorted(set(map(str, dupes)))}")


def _known_keys(table: dict, allowed: set[str], path, entry):
    check_keys(table, allowed, f"codebook {path}: {entry}", CodebookError)


def _entries(raw: dict, key: str, path) -> list:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        _fail(path, f"[[{key}]]", f"must be an array of tables, got {value!r}")
    return value


def _survey(raw: dict, path) -> dict:
    """The ``[survey]`` table: name, title, respondent id, layout and what to do with gaps."""
    survey = _require(raw, "survey", path, "top level")
    _known_keys(
        survey,
        {
            "name",
            "title",
            "respondent_id",
            "layout",
            "item_column",
            "answer_column",
            "incomplete",
            "encoding",
        },
        path,
        "[survey]",
    )
    _require(survey, "respondent_id", path, "[survey]")
    layout = survey.get("layout", "wide")
    if layout not in LAYOUTS:
        _fail(path, "[survey].layout", f"{layout!r} is not one of {LAYOUTS}")
    if layout == "long":
        for key in ("item_column", "answer_column"):
            _require(survey, key, path, '[survey] (layout = "long")')
    elif "item_column" in survey or "answer_column" in survey:
        _fail(path, "[survey]", 'item_column and answer_column go with layout = "long"')
    incomplete = survey.get("incomplete", "error")
    if incomplete not in INCOMPLETE:
        _fail(path, "[survey].incomplete", f"{incomplete!r} is not one of {INCOMPLETE}")
    return {
        "name": survey.get("name", Path(path).stem),
        "title": survey.get("title", ""),
        "respondent_id": survey["respondent_id"],
        "layout": layout,
        "item_column": survey.get("item_column"),
        "answer_column": survey.get("answer_column"),
        "incomplete": incomplete,
        "encoding": _encoding(survey.get("encoding", ""), path),
    }


def _encoding(name, path) -> str:
    """A codec Python knows, by any of its names (``latin-1``, ``gb18030``, ``cp1252``)."""
    import codecs

    if not isinstance(name, str):
        _fail(path, "[survey].encoding", f"{name!r} is not a text encoding name")
    if not name:
        return ""
    try:
        return codecs.lookup(name).name
    except LookupError:
        _fail(
            path,
            "[survey].encoding",
            f"{name!r} is not an encoding Python knows (e.g. utf-8, latin-1, gb18030)",
        )


def _scale(raw: dict, path) -> Scale:
    s = _require(raw, "scale", path, "top level")
    _known_keys(s, {"levels", "labels", "support", "missing"}, path, "[scale]")
    levels = tuple(_require(s, "levels", path, "[scale]"))
    if len(levels) < 2:
        _fail(path, "[scale].levels", f"needs at least 2 levels, got {list(levels)}")
    _unique(levels, path, "[scale].levels")
    numeric = [v for v in levels if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numeric) == len(levels) and list(levels) != sorted(levels):
        _fail(
            path,
            "[scale].levels",
            f"{list(levels)} are not in increasing order: list them from the lowest category to the "
            "highest (an item asked the other way round is marked reverse = true)",
        )
    text = [isinstance(v, str) for v in levels]
    if any(text) and not all(text):
        _fail(path, "[scale].levels", f"mixes numbers and text: {list(levels)}")
    labels = tuple(s.get("labels", [str(v) for v in levels]))
    if len(labels) != len(levels):
        _fail(path, "[scale].labels", f"{len(labels)} labels for {len(levels)} levels")
    support = tuple(s.get("support", ()))
    bad = [v for v in support if v not in levels]
    if bad:
        _fail(path, "[scale].support", f"levels {bad} are not on the scale {list(levels)}")
    missing = tuple(s.get("missing", ()))
    kinds = [isinstance(v, str) for v in missing]
    if not text[0] and any(kinds):
        _fail(
            path,
            "[scale].missing",
            f"codes {[v for v in missing if isinstance(v, str)]} are text on a scale of numbers "
            f"{list(levels)}: give the file's numeric codes",
        )
    clash = [v for v in missing if v in levels]
    if clash:
        _fail(path, "[scale].missing", f"codes {clash} are also scale levels")
    return Scale(levels=levels, labels=labels, support=support, missing=missing)


def _batteries(raw: dict, path) -> list[Battery]:
    batteries_raw = _require(raw, "batteries", path, "top level")
    if not batteries_raw:
        _fail(path, "[[batteries]]", "at least one battery is needed")
    batteries = []
    for k, b in enumerate(_entries(raw, "batteries", path)):
        entry = f"[[batteries]] #{k + 1}"
        _known_keys(b, {"id", "label"}, path, entry)
        batteries.append(Battery(id=_require(b, "id", path, entry), label=b.get("label", "")))
    _unique([b.id for b in batteries], path, "[[batteries]]")
    return batteries


def _items(raw: dict, path, battery_ids: list[str]) -> list[Item]:
    """Items ordered battery by battery: the model slices item blocks per battery."""
    _require(raw, "items", path, "top level")
    items = []
    for k, it in enumerate(_entries(raw, "items", path)):
        entry = f"[[items]] #{k + 1} ({it.get('id', '?')})"
        allowed = {"id", "battery", "column", "label", "reverse", "published_support", "dif_anchor"}
        _known_keys(it, allowed, path, entry)
        battery = _require(it, "battery", path, entry)
        if battery not in battery_ids:
            _fail(path, entry, f"unknown battery {battery!r} (known: {battery_ids})")
        share = it.get("published_support")
        anchor = it.get("dif_anchor", False)
        if not isinstance(anchor, bool):
            _fail(path, entry, f"dif_anchor {anchor!r} is not true or false")
        if share is not None and not 0.0 <= share <= 1.0:
            _fail(path, entry, f"published_support {share} is not a share in [0, 1]")
        items.append(
            Item(
                id=_require(it, "id", path, entry),
                battery=battery,
                column=it.get("column", it["id"]),
                label=it.get("label", ""),
                reverse=bool(it.get("reverse", False)),
                published_support=share,
                dif_anchor=anchor,
            )
        )
    if not items:
        _fail(path, "[[items]]", "at least one item is needed")
    _unique([i.id for i in items], path, "[[items]] ids")
    _unique([i.column for i in items], path, "[[items]] columns")
    empty = [b for b in battery_ids if not any(i.battery == b for i in items)]
    if empty:
        _fail(path, "[[batteries]]", f"batteries {empty} have no items")
    items.sort(key=lambda i: battery_ids.index(i.battery))
    return items


def _covariates(raw: dict, path) -> list[Covariate]:
    covariates = []
    for k, c in enumerate(_entries(raw, "covariates", path)):
        entry = f"[[covariates]] #{k + 1} ({c.get('id', '?')})"
        _known_keys(c, {"id", "column", "type", "label", "levels", "standardize", "transform"}, path, entry)
        ctype = _require(c, "type", path, entry)
        if ctype not in COVARIATE_TYPES:
            _fail(path, entry, f"type {ctype!r} is not one of {COVARIATE_TYPES}")
        lv = c.get("levels")
        if ctype in ("binary", "categorical") and not lv:
            _fail(path, entry, f"a {ctype} covariate needs `levels`")
        if ctype == "binary" and len(lv) != 2:
            _fail(path, entry, f"a binary covariate needs exactly 2 levels, got {lv}")
        std = c.get("standardize", "zscore")
        if std not in STANDARDIZE:
            _fail(path, entry, f"standardize {std!r} is not one of {STANDARDIZE}")
        tr = c.get("transform")
        if tr not in TRANSFORMS:
            _fail(path, entry, f"transform {tr!r} is not one of {TRANSFORMS[1:]}")
        covariates.append(
            Covariate(
                id=_require(c, "id", path, entry),
                column=c.get("column", c["id"]),
                type=ctype,
                label=c.get("label", ""),
                levels=tuple(lv) if lv is not None else None,
                standardize=std,
                transform=tr,
            )
        )
    _unique([c.id for c in covariates], path, "[[covariates]] ids")
    return covariates


def _groups(raw: dict, path) -> list[Group]:
    groups = []
    for k, g in enumerate(_entries(raw, "groups", path)):
        entry = f"[[groups]] #{k + 1} ({g.get('id', '?')})"
        _known_keys(g, {"id", "column", "label", "levels", "breaks", "nested_in", "parents"}, path, entry)
        lv = tuple(str(v) for v in _require(g, "levels", path, entry))
        if len(lv) < 2:
            _fail(path, entry, f"a grouping factor needs at least 2 levels, got {list(lv)}")
        _unique(lv, path, f"{entry} levels")
        breaks = g.get("breaks")
        if breaks is not None and (len(breaks) != len(lv) + 1 or sorted(breaks) != list(breaks)):
            _fail(path, entry, f"breaks {breaks} must be increasing, one more than levels")
        column = _require(g, "column", path, entry)
        if isinstance(column, list):
            if len(column) < 2 or not all(isinstance(c, str) for c in column):
                _fail(path, entry, f"column {column!r}: one column name, or a list of two or more")
            if breaks is not None:
                _fail(path, entry, "breaks cut one numeric column, not a combination of columns")
            column = tuple(column)
        parents = g.get("parents")
        if (parents is None) != (g.get("nested_in") is None):
            _fail(path, entry, "`nested_in` and `parents` go together")
        if parents is not None and len(parents) != len(lv):
            _fail(path, entry, f"{len(parents)} parents for {len(lv)} levels")
        groups.append(
            Group(
                id=_require(g, "id", path, entry),
                column=column,
                levels=lv,
                label=g.get("label", ""),
                breaks=tuple(breaks) if breaks is not None else None,
                nested_in=g.get("nested_in"),
                parents=tuple(str(p) for p in parents) if parents is not None else None,
            )
        )
    _unique([g.id for g in groups], path, "[[groups]] ids")
    by_id = {g.id: g for g in groups}
    for g in groups:
        if g.nested_in is None:
            continue
        parent = by_id.get(g.nested_in)
        if parent is None:
            _fail(path, f"[[groups]] ({g.id})", f"nested_in {g.nested_in!r} is not a group")
        bad = sorted(set(g.parents) - set(parent.levels))
        if bad:
            _fail(path, f"[[groups]] ({g.id})", f"parents {bad} are not levels of {parent.id}")
    clash = set(dims.STANDARD) & {g.id for g in groups}
    if clash:
        _fail(path, "[[groups]]", f"ids {sorted(clash)} clash with standard dims")
    return groups


def _findings(raw: dict, path, cov_ids: list[str], battery_ids: list[str]) -> list[Finding]:
    findings = []
    for k, f in enumerate(_entries(raw, "findings", path)):
        if "question" in f:  # an ordering of a multiple-response question's options: _orderings
            continue
        entry = f"[[findings]] #{k + 1} ({f.get('covariate', '?')})"
        _known_keys(f, {"covariate", "direction", "text", "battery"}, path, entry)
        if _require(f, "covariate", path, entry) not in cov_ids:
            _fail(path, entry, f"unknown covariate {f['covariate']!r} (known: {cov_ids})")
        if _require(f, "direction", path, entry) not in ("+", "-"):
            _fail(path, entry, f"direction {f['direction']!r} is not '+' or '-'")
        if f.get("battery") is not None and f["battery"] not in battery_ids:
            _fail(path, entry, f"unknown battery {f['battery']!r} (known: {battery_ids})")
        findings.append(Finding(f["covariate"], f["direction"], f.get("text", ""), f.get("battery")))
    return findings


def _contrasts(raw: dict, path, cov_ids: list[str]) -> list[Contrast]:
    contrasts = []
    for k, c in enumerate(_entries(raw, "contrasts", path)):
        entry = f"[[contrasts]] #{k + 1} ({c.get('id', '?')})"
        _known_keys(c, {"id", "label", "a", "b"}, path, entry)
        for side in ("a", "b"):
            unknown = sorted(set(_require(c, side, path, entry)) - set(cov_ids))
            if unknown:
                _fail(path, entry, f"profile {side} names unknown covariates {unknown}")
        contrasts.append(
            Contrast(
                id=_require(c, "id", path, entry),
                label=c.get("label", c["id"]),
                a=tuple(sorted(c["a"].items())),
                b=tuple(sorted(c["b"].items())),
            )
        )
    _unique([c.id for c in contrasts], path, "[[contrasts]] ids")
    return contrasts


def _options(q: dict, path, entry) -> tuple[Option, ...]:
    options = []
    raw = _require(q, "options", path, entry)
    if not isinstance(raw, list) or not raw or not all(isinstance(o, dict) for o in raw):
        _fail(path, entry, f"options must be a non-empty array of tables, got {raw!r}")
    for k, o in enumerate(raw):
        where = f"{entry} options #{k + 1} ({o.get('id', '?')})"
        _known_keys(o, {"id", "column", "label"}, path, where)
        oid = _require(o, "id", path, where)
        options.append(Option(id=oid, column=o.get("column", oid), label=o.get("label", "")))
    return tuple(options)


def _multiple_response(raw: dict, path, battery_ids: list[str], item_columns: list[str]):
    """The ``[[multiple_response]]`` questions, checked against the batteries and items."""
    questions = []
    for k, q in enumerate(_entries(raw, "multiple_response", path)):
        entry = f"[[multiple_response]] #{k + 1} ({q.get('id', '?')})"
        allowed = {"id", "label", "battery", "options", "asked", "route", "chosen", "not_chosen"}
        _known_keys(q, allowed, path, entry)
        battery = _require(q, "battery", path, entry)
        if battery not in battery_ids:
            _fail(path, entry, f"unknown battery {battery!r} (known: {battery_ids})")
        asked = q.get("asked", "everyone")
        if asked not in ASKED:
            _fail(path, entry, f"asked = {asked!r} is not one of {ASKED}")
        route = q.get("route")
        if (route is None) != (asked == "everyone"):
            _fail(
                path,
                entry,
                f'asked = "{asked}" with route = {route!r}: a question put to supporters or '
                "opponents names the battery or column that routes it (route), one put to "
                "everyone names none",
            )
        if route is not None and not isinstance(route, str):
            _fail(path, entry, f"route = {route!r}: a battery id or a column name")
        chosen, not_chosen = q.get("chosen", 1), q.get("not_chosen", 0)
        if chosen == not_chosen:
            _fail(path, entry, f"chosen and not_chosen are both {chosen!r}")
        questions.append(
            MultipleResponse(
                id=_require(q, "id", path, entry),
                battery=battery,
                options=_options(q, path, entry),
                label=q.get("label", ""),
                asked=asked,
                route=route,
                chosen=chosen,
                not_chosen=not_chosen,
            )
        )
    _unique([q.id for q in questions], path, "[[multiple_response]] ids")
    _unique([o.id for q in questions for o in q.options], path, "[[multiple_response]] option ids")
    columns = [o.column for q in questions for o in q.options]
    _unique(columns, path, "[[multiple_response]] option columns")
    clash = sorted(set(columns) & set(item_columns))
    if clash:
        _fail(path, "[[multiple_response]]", f"option columns {clash} are also item columns")
    return questions


def _orderings(raw: dict, path, questions) -> list[Ordering]:
    """The ``[[findings]]`` that rank a question's options (they name ``question``)."""
    by_id = {q.id: q for q in questions}
    orderings = []
    for k, f in enumerate(_entries(raw, "findings", path)):
        if "question" not in f:
            continue
        entry = f"[[findings]] #{k + 1} (question {f['question']!r})"
        _known_keys(f, {"question", "more", "less", "text"}, path, entry)
        q = by_id.get(f["question"])
        if q is None:
            _fail(path, entry, f"unknown multiple-response question (known: {sorted(by_id)})")
        sides = {}
        for side in ("more", "less"):
            value = _require(f, side, path, entry)
            if isinstance(value, str) or not value:
                _fail(path, entry, f"{side} = {value!r}: a non-empty list of option ids")
            unknown = sorted(set(value) - set(q.option_ids))
            if unknown:
                _fail(path, entry, f"{side} names options {unknown} that {q.id} does not have")
            sides[side] = tuple(value)
        both = sorted(set(sides["more"]) & set(sides["less"]))
        if both:
            _fail(path, entry, f"options {both} are on both sides")
        orderings.append(Ordering(q.id, sides["more"], sides["less"], f.get("text", "")))
    return orderings


TOP_LEVEL = (
    "survey",
    "scale",
    "batteries",
    "items",
    "covariates",
    "groups",
    "findings",
    "contrasts",
    "multiple_response",
)


def parse_codebook(raw: dict, path: Path | str = "<memory>") -> Codebook:
    """Validate a codebook given as a dict (as read from TOML).

    Parameters
    ----------
    raw : dict
        The TOML content.
    path : Path or str
        Where it came from, for error messages.

    Returns
    -------
    Codebook

    Raises
    ------
    CodebookError
        If any entry is malformed; the message names the file and the entry.

    Examples
    --------
    >>> cb = parse_codebook({
    ...     "survey": {"respondent_id": "id"},
    ...     "scale": {"levels": [1, 2, 3], "support": [3]},
    ...     "batteries": [{"id": "trust"}],
    ...     "items": [{"id": "q1", "battery": "trust"}, {"id": "q2", "battery": "trust"}],
    ... })
    >>> cb.item_ids, cb.scale.support_mask
    (['q1', 'q2'], (False, False, True))
    """
    path = Path(path)
    if not isinstance(raw, dict):
        _fail(path, "top level", f"expected tables, got {type(raw).__name__}")
    _known_keys(raw, set(TOP_LEVEL), path, "top level")
    survey = _section("[survey]", _survey, raw, path)
    batteries = _section("[[batteries]]", _batteries, raw, path)
    battery_ids = [b.id for b in batteries]
    covariates = _section("[[covariates]]", _covariates, raw, path)
    cov_ids = [c.id for c in covariates]
    items = _section("[[items]]", _items, raw, path, battery_ids)
    columns = [i.column for i in items]
    questions = _section("[[multiple_response]]", _multiple_response, raw, path, battery_ids, columns)
    return Codebook(
        path=path,
        scale=_section("[scale]", _scale, raw, path),
        batteries=tuple(batteries),
        items=tuple(items),
        covariates=tuple(covariates),
        groups=tuple(_section("[[groups]]", _groups, raw, path)),
        findings=tuple(_section("[[findings]]", _findings, raw, path, cov_ids, battery_ids)),
        contrasts=tuple(_section("[[contrasts]]", _contrasts, raw, path, cov_ids)),
        multiple_response=tuple(questions),
        orderings=tuple(_section("[[findings]]", _orderings, raw, path, questions)),
        raw=copy.deepcopy(raw),
        **survey,
    )


def _section(entry: str, parse, raw, path, *args):
    """Parse one table; a value of the wrong type that no specific check caught (a number
    where a list belongs, a list where a name does) still fails as a CodebookError naming
    the file and the table, never as a TypeError from inside the parser."""
    try:
        return parse(raw, path, *args)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as err:
        if isinstance(err, CodebookError):
            raise
        _fail(path, entry, f"a value of the wrong type or shape ({type(err).__name__}: {str(err)[:120]})")


def load_codebook(path: Path | str) -> Codebook:
    """Read and validate a codebook TOML file.

    Parameters
    ----------
    path : Path or str
        The codebook file.

    Returns
    -------
    Codebook
    """
    return parse_codebook(read_toml(path, CodebookError, "codebook"), path)
