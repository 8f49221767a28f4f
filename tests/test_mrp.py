"""Poststratification: census margins read and checked, survey values mapped, the synthetic
joint table raked to the margins, and population estimates against an independent
computation."""

from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

from scsurvey.core import dims
from scsurvey.core.tomlfile import read_toml
from scsurvey.inputs.codebook import load_codebook
from scsurvey.inputs.survey import load_survey
from scsurvey.model.spec import load_spec
from scsurvey.posterior import summaries
from scsurvey.workflows import mrp

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_full.nc"


@pytest.fixture(scope="module")
def tiny():
    return az.from_netcdf(FIXTURE)


def write(tmp_path, text, name="census.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_census_margins_read_with_their_source_and_caveat(root):
    census = mrp.read_census(root / "data" / "census" / "china2020.toml")
    assert set(census.margins) == {"sex", "age", "region", "education"}
    for margin in census.margins.values():
        assert abs(margin.sum() - 1.0) < 1e-12
    # STUDY's figures, normalised: 51.24 / 48.76 male / female; East 39.93 of 99.86
    assert census.margins["sex"]["male"] == pytest.approx(0.5124)
    assert census.margins["region"]["East"] == pytest.approx(39.93 / 99.86)
    assert "National Bureau of Statistics" in census.source and "urban adults" in census.caveat


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[margins.sex]\nunit='count'\nvalues={male=10, female=10}\n"
            "[margins.age]\nunit='count'\nvalues={young=5, old=14}\n",
            r"count margins do not sum to the same total: sex 20, age 19",
        ),
        ("[margins.sex]\nunit='share'\nvalues={male=1, female=1}\n", r"margins\.sex\.unit = 'share'"),
        (
            "[margins.sex]\nunit='percent'\nvalues={male=-1, female=1}\n",
            r"margins\.sex\.values: not positive",
        ),
        ("[margins.sex]\nunit='percent'\nvalues={male=1}\n", r"at least two categories"),
        ("title='x'\n", r"no \[margins"),
    ],
)
def test_bad_census_tables_name_the_file_the_margin_and_the_values(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(mrp.MRPError, match=message) as err:
        mrp.read_census(path)
    assert str(path) in str(err.value)


@pytest.fixture(scope="module")
def twin(root, small_twin):
    """The mrp spec with the small twin written by the session (a clean clone has no data/)."""
    spec = load_spec(root / "models" / "mrp.toml")
    return spec, load_survey(small_twin[1], load_codebook(root / spec.codebook))


def test_survey_values_map_onto_census_categories(root, twin):
    _spec, data = twin
    setting = read_toml(root / "models" / "mrp.toml", ValueError, "spec")["poststrat"]
    census = mrp.read_census(root / setting["census"])
    vars_ = mrp.variables(setting, data.codebook, "mrp.toml")
    cells = mrp.respondent_cells(data, vars_, census)
    assert list(cells.columns) == ["sex", "age", "region", "education"]
    female = data.table["female"].to_numpy()
    np.testing.assert_array_equal(cells["sex"].to_numpy() == "female", female == 1)
    np.testing.assert_array_equal(cells["age"].to_numpy() == "60+", data.table["age"].to_numpy() >= 60)
    assert set(cells["region"]) == {"East", "Centre", "West", "Northeast"}


def test_bad_poststratification_settings_name_the_variable_and_category(root, twin, tmp_path):
    _spec, data = twin
    cb = data.codebook
    census = mrp.read_census(root / "data" / "census" / "china2020.toml")
    with pytest.raises(mrp.MRPError, match=r"poststrat\.variables\.sex\.column = 'gender': not a grouping"):
        mrp.variables({"variables": {"sex": {"column": "gender"}}}, cb, "s.toml")
    with pytest.raises(mrp.MRPError, match=r"sex\.map: a covariate needs a map"):
        mrp.variables({"variables": {"sex": {"column": "female"}}}, cb, "s.toml")
    # a survey value that maps to no census category: the column and the value
    vars_ = mrp.variables({"variables": {"sex": {"column": "female", "map": {"0": "male"}}}}, cb, "s")
    with pytest.raises(mrp.MRPError, match=r"column 'female' .* map to no census category: \['1'\]"):
        mrp.respondent_cells(data, vars_, census)
    # a census category no respondent falls in: the table, the variable and the category
    path = write(
        tmp_path,
        "[margins.region]\nunit='percent'\nvalues={East=40, Centre=26, West=27, Northeast=7, Mars=1}\n",
    )
    vars_ = mrp.variables({"variables": {"region": {"column": "region"}}}, cb, "s")
    with pytest.raises(
        mrp.MRPError, match=r"margins\.region: no respondent falls in census category \['Mars'\]"
    ):
        mrp.respondent_cells(data, vars_, mrp.read_census(path))
    # a variable the census does not have
    vars_ = mrp.variables({"variables": {"province": {"column": "province"}}}, cb, "s")
    with pytest.raises(mrp.MRPError, match=r"no margin for poststratification variable 'province'"):
        mrp.respondent_cells(data, vars_, census)
    # a poststratification variable the model leaves out
    vars_ = mrp.variables({"variables": {"region": {"column": "region"}}}, cb, "s")
    with pytest.raises(
        mrp.MRPError, match=r"'region' .* is not in the model; add 'region' to components.groups"
    ):
        mrp.check_model(vars_, ("province",), [], "full.toml")


def test_raking_reaches_every_margin_and_keeps_the_sample_associations(tmp_path):
    """Raked to margins equal to the sample's own, the table is the sample's joint
    distribution (tolerance 1e-6, raking's convergence); raked to other margins, every margin
    is met (1e-3, the check inside synthetic_table) and the sex-by-age odds ratio of the
    sample is kept (raking multiplies rows and columns, which leaves odds ratios alone)."""
    rng = np.random.default_rng(3)
    n = 2000
    age = rng.choice(["young", "old"], n, p=[0.8, 0.2])
    sex = np.where(rng.random(n) < np.where(age == "young", 0.3, 0.6), "female", "male")
    cells = pd.DataFrame({"sex": sex, "age": age})
    counts = {v: ", ".join(f"{k}={c}" for k, c in cells[v].value_counts().items()) for v in ("sex", "age")}
    own = "".join(f"[margins.{v}]\nunit='count'\nvalues={{{c}}}\n" for v, c in counts.items())
    table = mrp.synthetic_table(cells, mrp.read_census(write(tmp_path, own, "own.toml")))
    np.testing.assert_allclose(table["share"], table["sample"] / n, atol=1e-6)
    other = (
        "[margins.sex]\nunit='percent'\nvalues={female=50, male=50}\n"
        "[margins.age]\nunit='percent'\nvalues={young=60, old=40}\n"
    )
    table = mrp.synthetic_table(cells, mrp.read_census(write(tmp_path, other, "other.toml")))
    share = table.set_index(["sex", "age"])["share"]
    assert share.groupby(level="age").sum()["old"] == pytest.approx(0.4, abs=1e-3)
    assert share.groupby(level="sex").sum()["female"] == pytest.approx(0.5, abs=1e-3)
    counts = table.set_index(["sex", "age"])["sample"]

    def odds_ratio(s):
        return (s["female", "old"] * s["male", "young"]) / (s["female", "young"] * s["male", "old"])

    assert odds_ratio(share) == pytest.approx(odds_ratio(counts), rel=1e-3)


def test_population_support_equals_the_cell_predictions_weighted_by_the_census(tiny, root, tmp_path):
    """Against an independent computation: with sex as the only poststratification variable,
    MRP support is share_m P(support | male) + share_f P(support | female), each from
    summaries.support_probability (40 quadrature nodes against MRP's 20, all 120 draws in
    both). Tolerance 2e-3 absolute: the quadrature difference is far below it, a wrong cell
    weight or covariate scale is far above (the sexes differ by several points)."""
    codebook = load_codebook(root / "data" / "codebook" / "scs2020.toml")
    vars_ = mrp.variables(
        {"variables": {"sex": {"column": "female", "map": {"0": "male", "1": "female"}}}}, codebook, "t"
    )
    table = pd.DataFrame({"sex": ["male", "female"], "share": [0.7, 0.3]})
    out = mrp.estimate(tiny, codebook, table, vars_, max_draws=10_000)
    n = tiny.posterior.sizes["chain"] * tiny.posterior.sizes["draw"]
    expected = 0
    for code, w in ((0, 0.7), (1, 0.3)):
        x = summaries._standardised(codebook, tiny, {"female": code})
        expected = expected + w * summaries.support_probability(tiny, x, max_draws=n).mean("sample").values
    np.testing.assert_allclose(out["support"].mean(dims.STACKED).values, expected, atol=2e-3)
    by_sex = out["support_by_sex"].mean(dims.STACKED)
    assert float(abs(by_sex.sel(sex="male") - by_sex.sel(sex="female")).max()) > 0.01
    assert out["index"].sizes[dims.BATTERY] == 2
    assert ((out["index"] > 1) & (out["index"] < 5)).all()


def test_the_report_sets_mrp_beside_the_sample_and_published_shares(tiny, root, tmp_path):
    import json

    from scsurvey.report.html import render_report

    codebook = load_codebook(root / "data" / "codebook" / "scs2020.toml")
    vars_ = mrp.variables(
        {"variables": {"sex": {"column": "female", "map": {"0": "male", "1": "female"}}}}, codebook, "t"
    )
    table = pd.DataFrame({"sex": ["male", "female"], "share": [0.5, 0.5]})
    est = mrp.estimate(tiny, codebook, table, vars_)
    est.attrs.update(census="test census", census_source="a test", caveat="national figures, all ages")
    spec = load_spec(root / "models" / "full.toml")
    run = json.loads(FIXTURE.with_suffix(".run.json").read_text())
    est.attrs["posterior_created_at"] = str(tiny.posterior.attrs["created_at"])
    for col, shift in (("weighted", 0.0), ("weighted_low", -0.02), ("weighted_high", 0.02)):
        est[col] = (("item",), np.full(est.sizes["item"], 0.5 + shift))
    est.attrs["weight_column"] = "wt"
    html = render_report(tiny, spec, codebook, run, tmp_path / "a", population=est).read_text()
    assert 'id="population"' in html and "national figures, all ages" in html
    # the design-weighted comparison is there and labelled as such
    assert "weighted sample (survey weights, 90%)" in html and "50.0% (48.0% to 52.0%)" in html
    label = next(i.label for i in codebook.items if i.id == "surv_train")
    row = html[html.index('id="population"') :]
    mean = float(est["support"].sel(item="surv_train").mean())
    assert f"{100 * mean:.1f}%" in row[row.index(label) : row.index(label) + 400]
    est.attrs["posterior_created_at"] = "an earlier fit"
    html = render_report(tiny, spec, codebook, run, tmp_path / "b", population=est).read_text()
    assert "belong to an earlier fit" in html


def test_weighted_shares_equal_the_shares_of_the_sample_with_rows_repeated(twin):
    """A weight of 2 counts a respondent twice: the weighted share of each item equals the
    plain share in the sample with those rows duplicated (exact up to rounding), and equal
    weights give the plain share."""
    from scsurvey.inputs.survey import prepare

    _, data = twin
    frame = data.table.copy()
    rng = np.random.default_rng(5)
    frame["w"] = np.where(rng.random(len(frame)) < 0.3, 2.0, 1.0)
    weighted = mrp.weighted_shares(prepare(frame, data.codebook, "weighted"), "w")
    doubled = pd.concat([frame, frame[frame["w"] == 2.0]], ignore_index=True)
    doubled[data.codebook.respondent_id] = np.arange(len(doubled))
    plain = prepare(doubled, data.codebook, "doubled")
    support = np.asarray(data.codebook.scale.support_mask)
    ok = plain.responses >= 0
    share = (support[np.clip(plain.responses, 0, None)] & ok).sum(0) / ok.sum(0)
    np.testing.assert_allclose(weighted["weighted"].to_numpy(), share, atol=1e-12)
    assert (weighted["weighted_low"] < weighted["weighted"]).all()
    assert (weighted["effective_n"] < len(frame)).all()
    frame["w"] = 3.0
    even = mrp.weighted_shares(prepare(frame, data.codebook, "even"), "w")
    ok = data.responses >= 0
    share = (support[np.clip(data.responses, 0, None)] & ok).sum(0) / ok.sum(0)
    np.testing.assert_allclose(even["weighted"].to_numpy(), share, atol=1e-12)


def test_bad_weights_name_the_file_the_column_and_the_rows(twin):
    from scsurvey.inputs.survey import prepare

    _, data = twin
    with pytest.raises(mrp.MRPError, match=r"no weight column 'wt'"):
        mrp.weighted_shares(data, "wt")
    frame = data.table.copy()
    frame["wt"] = 1.0
    frame.loc[[3, 8], "wt"] = [0.0, np.nan]
    with pytest.raises(
        mrp.MRPError, match=r"bad\.csv: column 'wt': 2 weights missing, not numbers or not positive"
    ):
        mrp.weighted_shares(prepare(frame, data.codebook, "bad.csv"), "wt")


def test_joint_census_counts_are_used_as_they_are(twin, tmp_path):
    """With joint cell counts the table is the census's own (no raking), every cell kept, the
    sample's count beside each; the margins come from the joint table."""
    _, data = twin
    (tmp_path / "cells.csv").write_text(
        "sex,region,count\n"
        + "".join(
            f"{s},{r},{c}\n"
            for (s, r), c in zip(
                [(s, r) for s in ("male", "female") for r in ("East", "Centre", "West", "Northeast")],
                [300, 200, 150, 50, 280, 190, 160, 70],
                strict=True,
            )
        )
    )
    census = mrp.read_census(write(tmp_path, "[joint]\nfile = 'cells.csv'\n"))
    assert census.margins["sex"]["male"] == pytest.approx(700 / 1400)
    vars_ = mrp.variables(
        {
            "variables": {
                "sex": {"column": "female", "map": {"0": "male", "1": "female"}},
                "region": {"column": "region"},
            }
        },
        data.codebook,
        "t",
    )
    cells = mrp.respondent_cells(data, vars_, census)
    table = mrp.joint_table(census, cells)
    assert len(table) == 8 and table["share"].sum() == pytest.approx(1.0)
    row = table[(table["sex"] == "female") & (table["region"] == "West")].iloc[0]
    assert row["share"] == pytest.approx(160 / 1400)
    assert row["sample"] == int(((data.table["female"] == 1) & (data.table["region"] == "West")).sum())


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("sex,count\nmale,10\nfemale,0\n", r"column 'count': not positive numbers in rows \[3\]"),
        ("sex,count\nmale,10\nmale,5\n", r"cells listed twice: rows \[2, 3\]"),
        ("sex\nmale\n", r"needs a column per variable and a 'count' column"),
    ],
)
def test_bad_joint_tables_name_the_file_and_rows(tmp_path, csv, message):
    (tmp_path / "cells.csv").write_text(csv)
    with pytest.raises(mrp.MRPError, match=message):
        mrp.read_census(write(tmp_path, "[joint]\nfile = 'cells.csv'\n"))


def test_mrp_corrects_a_biased_sample_small(root):
    """A small version of `make mrp-validate` (that one is in the slow suite): 20,000 people
    whose support rises steeply with education (1.5 per sd), 600 drawn with the selection bias
    toward the young, the educated and the east, `mrp` fitted with 2 x (200 + 200) draws and
    poststratified on sex, region and education (600 respondents hold hardly anyone over 60).
    Measured: raw share off by 6.0 points on average, MRP by 0.8. Tolerance: MRP's error
    under 40% of the raw share's. Short chains are not converged (R-hat about 1.08), which
    moves the posterior mean by far less than the bias; a failure means poststratification
    stopped correcting."""
    from scsurvey.workflows.mrp_validation import validate

    table, summary = validate(
        root,
        population=20_000,
        n=600,
        seed=11,
        sampler={"chains": 2, "draws": 200, "tune": 200, "rounds": 1, "nutpie_backend": "jax"},
        census_variables=("sex", "region", "education"),
        effects={"education": 1.5},
    )
    print(table.round(3).to_string(), summary)
    assert summary["raw_mae"] > 0.03, summary  # the selection biased the sample
    assert summary["mrp_mae"] < 0.4 * summary["raw_mae"], summary


def test_a_covariate_code_that_is_not_a_number_is_named(tiny, root):
    codebook = load_codebook(root / "data" / "codebook" / "scs2020.toml")
    vars_ = mrp.variables({"variables": {"sex": {"column": "female", "map": {"m": "male"}}}}, codebook, "t")
    table = pd.DataFrame({"sex": ["male"], "share": [1.0]})
    with pytest.raises(mrp.MRPError, match=r"map code 'm' of covariate 'female' is not a number"):
        mrp.estimate(tiny, codebook, table, vars_)
