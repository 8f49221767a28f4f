"""Bad input and faults, as a careful user and a security-minded reviewer would try them.

Each case of the table is an input, the exit status the command line must give and words its
one-line message must hold. The rest: an interrupt during a real fit, two fits of one model
at once, a lock left by a killed process, corrupt and foreign posterior files, markup in a
codebook, a probit model sampled on each backend.
"""

from __future__ import annotations

import copy
import json
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import CODEBOOK, ROOT, generic_codebook, generic_frame, make_project

import scsurvey as ss
from scsurvey import cli
from scsurvey.inputs.codebook import CodebookError, parse_codebook
from scsurvey.inputs.survey import DataError, load_survey


@pytest.fixture(scope="module")
def project(tmp_path_factory, small_twin):
    """A project root whose `full` spec reads the session's small twin."""
    _, csv, _ = small_twin
    return make_project(tmp_path_factory.mktemp("faults"), csv)


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


# (name, arguments after --root, exit status, words the message holds)
CLI_CASES = [
    ("negative draws", ["fit", "full", "--draws", "-5"], 2, "sampler.draws = -5: must be positive"),
    ("negative chains", ["fit", "full", "--chains", "-1"], 2, "sampler.chains = -1: must be positive"),
    (
        "zero draws is a value, refused",
        ["fit", "full", "--draws", "0"],
        2,
        "sampler.draws = 0: must be positive",
    ),
    ("draws beyond memory", ["fit", "full", "--draws", str(10**17)], 2, "GiB, more than this machine's"),
    ("unknown model", ["fit", "nosuch"], 2, "no model 'nosuch'"),
    ("--debug after the subcommand", ["status", "nosuch", "--debug"], 2, "no model 'nosuch'"),
]


@pytest.mark.parametrize(
    ("args", "status", "words"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_command_line_cases(capsys, project, args, status, words):
    code, err = run_cli(capsys, "--root", project, *args)
    assert code == status, err
    assert words in err, err
    assert "Traceback" not in err


def test_seed_zero_and_other_falsy_overrides_reach_the_fit(capsys, project, monkeypatch):
    seen = {}

    def fake_fit(name, root, sampler, progress, overrides):
        seen.update(overrides)
        raise ss.SpecError("stop here")

    monkeypatch.setattr("scsurvey.workflows.named_models.fit", fake_fit)
    code, err = run_cli(capsys, "--root", project, "fit", "full", "--seed", "0", "--draws", "7")
    assert code == 2 and "stop here" in err
    assert seen == {"seed": 0, "draws": 7}


def test_api_overrides_are_validated_as_the_spec_is(project):
    model = ss.SurveyModel.from_spec(project / "models" / "full.toml", root=project)
    with pytest.raises(
        ss.SpecError, match=r"sampler overrides \['draws'\].*sampler.draws = -5: must be positive"
    ):
        model.fit(draws=-5)
    with pytest.raises(ss.SpecError, match=r"unknown keys \['sampler.drawz'\]"):
        model.fit(drawz=5)
    assert model.spec.replace(sampler={"seed": 0}).sampler.seed == 0


def test_a_corrupt_run_record_gets_a_one_line_error(capsys, project):
    run = project / "models" / "full" / "run.json"
    run.parent.mkdir(parents=True, exist_ok=True)
    run.write_text('{"diagnostics_ok": tru')
    try:
        code, err = run_cli(capsys, "--root", project, "status", "full")
    finally:
        run.unlink()
    assert code == 2 and "run.json: not a run record written by scsurvey" in err


def test_data_out_under_a_file_gets_a_one_line_error(capsys, tmp_path):
    blocker = tmp_path / "plain.txt"
    blocker.write_text("a file, not a folder")
    code, err = run_cli(capsys, "--root", ROOT, "data", "--out", blocker / "twin")
    assert code == 2 and "a file of that name is in the way" in err
    assert blocker.read_text() == "a file, not a folder"


def generic(**changes):
    raw = generic_codebook(groups=False)
    raw["survey"].update(changes)
    return raw


def test_a_latin1_survey_export_is_read_and_a_wrong_named_encoding_refused(tmp_path):
    raw = generic_codebook()
    raw["groups"][0]["levels"] = ["s1", "s2", "Zürich"]
    frame = generic_frame(generic_codebook(), n=40)
    frame["site"] = frame["site"].replace("s3", "Zürich")
    path = tmp_path / "latin.csv"
    frame.to_csv(path, index=False, encoding="latin-1")
    data = load_survey(path, parse_codebook(raw, tmp_path / "cb.toml"))
    assert "Zürich" in set(data.table["site"])
    named = copy.deepcopy(raw)
    named["survey"]["encoding"] = "utf-8"
    with pytest.raises(
        DataError, match=r"latin.csv: not readable as utf-8 \(the codebook's \[survey\].encoding\)"
    ):
        load_survey(path, parse_codebook(named, tmp_path / "cb.toml"))
    named["survey"]["encoding"] = "klingon"
    with pytest.raises(CodebookError, match=r"\[survey\].encoding: 'klingon' is not an encoding"):
        parse_codebook(named, tmp_path / "cb.toml")


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("ragged.csv", "id,x1,sex\n1,2,3\n4,5,6,7,8\n", "ragged.csv: not a regular table"),
        ("text.parquet", "hello, not parquet\n", "text.parquet: not a readable Parquet file"),
        ("text.dta", "hello, not stata\n", "text.dta: not a readable Stata file"),
        ("text.sav", "hello, not spss\n", "text.sav: not a readable SPSS file"),
        ("empty.csv", "", "empty.csv: the file is empty"),
    ],
)
def test_unreadable_survey_files_get_one_line_errors(capsys, tmp_path, name, content, words):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError) as err:
        load_survey(tmp_path / name, parse_codebook(generic(), tmp_path / "cb.toml"))
    assert words in str(err.value)
    # and through the command line: a spec pointed at the file, exit 2, no traceback
    cb = tmp_path / "cb.toml"
    shutil.copy(CODEBOOK, cb)
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "m.toml").write_text(f'[inputs]\ncodebook = "{cb}"\ndata = "{tmp_path / name}"\n')
    code, msg = run_cli(capsys, "--root", tmp_path, "fit", "m")
    assert code == 2 and name in msg and "Traceback" not in msg


def test_a_boolean_answer_column_is_refused_by_name(tmp_path):
    raw = generic()
    frame = generic_frame(raw, n=20, missing=0)
    frame["q_a0"] = frame["q_a0"] > 2
    with pytest.raises(DataError, match=r"column 'q_a0' \(item a0\) holds true/false values"):
        from scsurvey.inputs.survey import prepare

        prepare(frame, parse_codebook(raw, tmp_path / "cb.toml"), source="bools.csv")


def test_levels_listed_high_to_low_are_refused(tmp_path):
    raw = generic()
    raw["scale"]["levels"] = raw["scale"]["levels"][::-1]
    with pytest.raises(
        CodebookError, match=r"\[scale\].levels: \[5, 4, 3, 2, 1\] are not in increasing order"
    ):
        parse_codebook(raw, tmp_path / "cb.toml")


@pytest.mark.parametrize(("column", "value"), [("x1", 1e300), ("x1", np.inf)])
def test_implausible_covariate_values_are_refused_before_any_arithmetic(tmp_path, column, value):
    from scsurvey.inputs.survey import prepare

    raw = generic()
    frame = generic_frame(raw, n=20)
    frame.loc[3, column] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warning before the error
        with pytest.raises(DataError, match=r"column 'x1' \(covariate x1\): values .* are not plausible"):
            prepare(frame, parse_codebook(raw, tmp_path / "cb.toml"), source="huge.csv")


def test_a_log_covariate_of_1e308_is_refused(tmp_path):
    from scsurvey.inputs.survey import prepare

    raw = generic()
    raw["covariates"][0]["transform"] = "log"
    frame = generic_frame(raw, n=20)
    frame["x1"] = np.abs(frame["x1"]) + 1
    frame.loc[0, "x1"] = 1e308
    with pytest.raises(DataError, match=r"not plausible measurements"):
        prepare(frame, parse_codebook(raw, tmp_path / "cb.toml"), source="income.csv")


def test_corrupt_and_foreign_posterior_files_are_refused_by_name(tmp_path, capsys):
    """A flipped byte in a data chunk fails on loading (checksums, eager reading), not on a
    later read; a netCDF file that is not a posterior gets StorageError, not AttributeError."""
    import xarray as xr

    from scsurvey.storage.files import to_netcdf

    fixture = Path(__file__).parent / "fixtures" / "tiny_full.nc"
    idata = ss.load(fixture).idata
    good = tmp_path / "good.nc"
    to_netcdf(idata, good)
    data = bytearray(good.read_bytes())
    refused = 0
    for offset in np.linspace(len(data) * 0.2, len(data) * 0.9, 12).astype(int):
        bad = tmp_path / "bad.nc"
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        bad.write_bytes(flipped)
        try:
            loaded = ss.load(bad).idata
        except (ss.StorageError, ss.ModelMismatchError) as err:
            assert "bad.nc" in str(err)
            refused += 1
            continue
        # a flip in unused space may pass, but never as changed numbers
        for group in idata.groups():
            for name, da in idata[group].data_vars.items():
                if da.dtype.kind in "fiu":
                    np.testing.assert_array_equal(loaded[group][name].values, da.values)
    assert refused >= 3, refused
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"t": ("x", np.arange(3.0))}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(
        ss.StorageError, match=r"foreign.nc: a netCDF file, but not a posterior written by scsurvey"
    ):
        ss.load(foreign)


def test_markup_in_a_codebook_never_reaches_the_page_raw(tmp_path, root):
    """Titles, labels and findings holding tags render as text: no raw tag of the codebook's
    reaches the report or the index page."""
    import arviz as az

    from scsurvey.model.spec import load_spec
    from scsurvey.report.html import render_report, write_index

    fixture = Path(__file__).parent / "fixtures" / "tiny_full.nc"
    raw = tomllib.loads(CODEBOOK.read_text())
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    raw["survey"]["title"] = f"Survey {evil}"
    for battery in raw["batteries"]:
        battery["label"] = f"{battery.get('label', battery['id'])} {evil}"
    for item in raw["items"][:3]:
        item["label"] = f"{item.get('label', item['id'])} {evil}"
    codebook = parse_codebook(raw, tmp_path / "evil.toml")
    idata = az.from_netcdf(fixture)
    run = json.loads(fixture.with_suffix(".run.json").read_text())
    spec = load_spec(root / "models" / "full.toml")
    out = tmp_path / "reports" / "full"
    page = render_report(idata, spec, codebook, run, out).read_text()
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text, not dropped
    index = write_index(tmp_path).read_text()
    assert "<script>" not in index and "&lt;script&gt;" in index


def test_a_lock_left_by_a_killed_fit_does_not_block(tmp_path):
    from scsurvey.storage.files import model_lock

    code = (
        "import sys, time; from scsurvey.storage.files import model_lock\n"
        "with model_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "m")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ss.LockedError), model_lock(tmp_path / "m"):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with model_lock(tmp_path / "m"):  # the OS dropped the dead process's lock
        pass


def _started_sampling(proc, timeout=300) -> list[str]:
    lines, t0 = [], time.monotonic()
    for line in proc.stderr:
        lines.append(line)
        if "; sampling " in line:
            return lines
        assert time.monotonic() - t0 < timeout, lines
    raise AssertionError(f"the fit ended before sampling: {lines}")


def test_ctrl_c_and_a_second_fit_leave_the_stored_posterior_as_it_was(tmp_path, tiny_fit):
    """A real fit of the session's project, its compile cached: while it samples, a second
    fit of the same model is refused at once; then SIGINT ends the first with exit 130 and
    the stored posterior and run record byte for byte as they were."""
    project, *_ = tiny_fit
    shutil.copytree(project / "models", tmp_path / "models")  # the spec names absolute inputs
    posterior = tmp_path / "models" / "full" / "posterior.nc"
    record = tmp_path / "models" / "full" / "run.json"
    before, record_before = posterior.read_bytes(), record.read_bytes()
    cmd = [sys.executable, "-m", "scsurvey", "--root", str(tmp_path), "fit", "full", "--no-progress"]
    first = subprocess.Popen(
        [*cmd, "--draws", "200000", "--tune", "150", "--chains", "2"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        # a test runner started in the background (`make test &`) ignores SIGINT, and the
        # child would inherit that and never see the interrupt this test sends
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _started_sampling(first)
        second = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert second.returncode == 2, second.stderr
        assert "another fit of this model is running" in second.stderr
        time.sleep(2)
        first.send_signal(signal.SIGINT)
        _, rest = first.communicate(timeout=300)  # a fit that ignores the interrupt fails here
        assert first.returncode == 130, rest
    finally:
        if first.poll() is None:
            first.kill()
    assert "interrupted" in rest and "nothing was stored" in rest, rest
    assert posterior.read_bytes() == before
    assert record.read_bytes() == record_before
    assert not list(posterior.parent.glob(".posterior.nc.*"))  # no temporary file left


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_a_probit_model_samples_on_each_backend(backend):
    raw = generic_codebook(groups=False)
    cb = parse_codebook(raw, "generic.toml")
    sampler = {
        "draws": 30,
        "tune": 30,
        "chains": 2,
        "rounds": 1,
        "prior_draws": 10,
        "nutpie_backend": backend,
    }
    model = ss.SurveyModel(generic_frame(raw, n=40), cb, link="probit", sampler_config=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 x 30 draws cannot pass the diagnostics
        idata = model.fit(progress=False, log=lambda _line: None)
    assert idata.posterior.attrs["link"] == "probit"
    assert idata.posterior.sizes["draw"] == 30
    assert np.isfinite(idata.log_likelihood["y"].values).all()


def test_trace_values_counts_what_a_sampler_keeps_per_draw():
    """The memory check's count: every free variable on its own scale and its unconstrained
    copy (as large or smaller), and every deterministic, whether its size comes from dims, a static
    shape or the initial point (a shape that depends on a parameter)."""
    import pymc as pm
    import pytensor.tensor as pt

    from scsurvey.inference.rounds import ONE_EVALUATION, trace_values

    with pm.Model(coords={"item": range(4)}) as model:
        sd = pm.HalfNormal("sd")
        x = pm.ZeroSumNormal("x", sigma=sd, dims="item")
        pm.LKJCholeskyCov("c", n=2, eta=2.0, sd_dist=pm.Exponential.dist(1.0))
        pm.Deterministic("twice", 2 * x, dims="item")
        pm.Deterministic("joined", pt.concatenate([x, x[:1]]))  # no dims
        pm.Deterministic("ramp", pt.arange(pt.cast(pt.floor(sd), "int64") + 5))  # value-dependent
    point = model.initial_point()
    outs = model.unobserved_value_vars
    kept = model.compile_fn(outs, **ONE_EVALUATION)(point)
    sizes = {v.name: np.size(k) for v, k in zip(outs, kept, strict=True)}
    assert sizes["ramp"] == 6  # sd = 1 at the initial point
    # the unconstrained copies are counted at the constrained sizes: x's is one value more
    assert trace_values(model) == sum(sizes.values()) + 1
