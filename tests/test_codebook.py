"""Codebook parsing and validation: the real codebook, generic shapes, and malformed ones."""

import pytest
from conftest import CODEBOOK, generic_codebook

from scsurvey.inputs.codebook import CodebookError, load_codebook, parse_codebook


def test_scs2020_codebook_describes_the_study(codebook):
    assert codebook.respondent_id == "resp_id"
    assert codebook.scale.n_categories == 5
    assert codebook.scale.support_mask == (False, False, False, True, True)
    assert codebook.scale.missing == (8, 9)
    assert codebook.battery_ids == ["surveillance", "punishment"]
    by_battery = {b: [i.id for i in codebook.items if i.battery == b] for b in codebook.battery_ids}
    assert len(by_battery["surveillance"]) == 6 and len(by_battery["punishment"]) == 7
    shares = {i.label: i.published_support for i in codebook.items}
    assert shares["misbehaviour on trains"] == 0.75
    assert shares["restrict the offender's child's entry to private schools"] == 0.42
    assert {c.id for c in codebook.covariates} >= {
        "trust_central",
        "trust_local",
        "trust_system",
        "ccp_member",
        "relative_gov",
        "media_official",
        "media_liberal",
        "media_foreign",
        "credit_commercial",
        "income",
        "education",
        "urban_hukou",
        "age",
        "female",
    }
    assert [g.id for g in codebook.groups] == [
        "region",
        "province",
        "occupation",
        "age_cohort",
        "age_band",
        "education_level",
    ]
    province = codebook.group("province")
    assert len(province.levels) == 31 and province.nested_in == "region"


def test_items_are_ordered_battery_by_battery():
    raw = generic_codebook(batteries=(("a", 2), ("b", 2)))
    raw["items"] = [raw["items"][2], raw["items"][0], raw["items"][3], raw["items"][1]]
    cb = parse_codebook(raw)
    assert [i.battery for i in cb.items] == ["a", "a", "b", "b"]
    assert cb.item_battery_index == [0, 0, 1, 1]


@pytest.mark.parametrize("k", [2, 4, 7])
def test_any_number_of_categories(k):
    cb = parse_codebook(generic_codebook(n_categories=k, batteries=(("only", 3),)))
    assert cb.scale.n_categories == k and len(cb.batteries) == 1


def _mutate(raw, fn):
    fn(raw)
    return raw


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (
            lambda r: r["items"][0].update(battery="nope"),
            r"\[\[items\]\] #1 \(a0\): unknown battery 'nope'",
        ),
        (lambda r: r["items"][1].update(id="a0"), r"duplicate ids \['a0'\]"),
        (lambda r: r["batteries"].append({"id": "a"}), r"\[\[batteries\]\]: duplicate ids \['a'\]"),
        (
            lambda r: r["scale"].update(support=[5, 6]),
            r"\[scale\].support: levels \[6\] are not on the scale",
        ),
        (
            lambda r: r["scale"].update(missing=[5]),
            r"\[scale\].missing: codes \[5\] are also scale levels",
        ),
        (lambda r: r["scale"].update(labels=["x"]), r"\[scale\].labels: 1 labels for 5 levels"),
        (lambda r: r["covariates"][0].update(type="fuzzy"), r"\(x1\): type 'fuzzy' is not one of"),
        (
            lambda r: r["covariates"][1].update(levels=[0, 1, 2]),
            r"\(sex\): a binary covariate needs exactly 2",
        ),
        (
            lambda r: r["covariates"][0].update(standardize="minmax"),
            r"\(x1\): standardize 'minmax'",
        ),
        (
            lambda r: r["items"][0].update(published_support=75),
            r"published_support 75 is not a share",
        ),
        (lambda r: r["items"][0].update(colour="red"), r"\(a0\): unknown keys \['colour'\]"),
        (
            lambda r: r["groups"][0].update(levels=["s1"]),
            r"\(site\): a grouping factor needs at least 2",
        ),
        (
            lambda r: r["groups"][0].update(breaks=[0, 1]),
            r"\(site\): breaks \[0, 1\] must be increasing",
        ),
        (
            lambda r: r["groups"][0].update(nested_in="region", parents=["x", "y", "z"]),
            r"nested_in 'region' is not a group",
        ),
        (lambda r: r["groups"][0].update(id="item"), r"ids \['item'\] clash with standard dims"),
        (
            lambda r: r["survey"].pop("respondent_id"),
            r"\[survey\]: missing required key 'respondent_id'",
        ),
        (
            lambda r: r.update(items=[i for i in r["items"] if i["battery"] == "a"]),
            r"batteries \['b'\] have no items",
        ),
    ],
)
def test_malformed_codebook_names_the_entry(mutation, expected):
    raw = _mutate(generic_codebook(), mutation)
    with pytest.raises(CodebookError, match=expected):
        parse_codebook(raw, "bad.toml")


def test_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[survey\nname=")
    with pytest.raises(CodebookError, match=r"broken\.toml: not valid TOML"):
        load_codebook(bad)
    with pytest.raises(CodebookError, match=r"missing\.toml: file not found"):
        load_codebook(tmp_path / "missing.toml")


def test_real_codebook_file_loads_from_disk():
    assert load_codebook(CODEBOOK).path == CODEBOOK
