"""The Python API: ``import scsurvey as ss``, SurveyModel, save and load, the README example."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import CODEBOOK, generic_codebook, generic_frame

import scsurvey as ss
from scsurvey.core.paths import model_paths


def test_the_public_surface_resolves_and_import_is_light(root):
    for name in ss.__all__:
        assert getattr(ss, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'fit_everything'"):
        ss.fit_everything  # noqa: B018
    # `import scsurvey` must not load PyMC: Make's light commands run before the venv exists
    code = "import sys, scsurvey; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_configs_merge_over_their_defaults():
    raw = generic_codebook()
    frame = generic_frame(raw, n=40)
    cb = ss.parse_codebook(raw)
    m = ss.SurveyModel(
        frame,
        cb,
        groups=["site"],
        model_config={"priors": {"beta": {"sigma": 0.2}}, "covariates": True},
        sampler_config={"draws": 300},
    )
    assert m.model_config["groups"] == ["site"] and m.model_config["covariates"] is True
    assert m.model_config["priors"]["beta"] == {"sigma": 0.2}
    assert m.model_config["priors"]["a"] == ss.default_model_config()["priors"]["a"]
    assert m.sampler_config["draws"] == 300
    assert m.sampler_config["chains"] == ss.default_sampler_config()["chains"]
    # data given as a DataFrame are hashed by content, not left unstamped
    assert len(m.data.data_hash) == 64
    other = ss.SurveyModel(frame.assign(x1=frame["x1"] + 1), cb)
    assert other.data.data_hash != m.data.data_hash
    assert "z_site" in m.model.named_vars


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"groups": "site"}, r"components.groups = 'site': expected a list of names"),
        ({"colour": 1}, r"unknown keys \['model_config.colour'\]"),
        ({"groups": ["nowhere"]}, r"components.groups: \['nowhere'\] not in codebook"),
    ],
)
def test_a_bad_configuration_names_the_key(config, message):
    raw = generic_codebook()
    m_or_error = None
    with pytest.raises(ss.SpecError, match=message):
        m_or_error = ss.SurveyModel(generic_frame(raw), ss.parse_codebook(raw), model_config=config)
        m_or_error.build()


def test_a_stored_fit_loads_back_into_the_same_model(tiny_fit, tmp_path):
    project, idata, _ = tiny_fit
    m = ss.load(model_paths("full", project)["posterior"])
    assert m.spec.components.groups == ("province", "occupation")
    assert m.data.n_respondents == idata.observed_data.sizes["respondent"]
    np.testing.assert_array_equal(m.data.responses, idata.observed_data["y"].values)
    assert m.codebook.item_ids == list(idata.posterior["item"].values)
    assert m.diagnostics.max_rhat == pytest.approx(ss.diagnose(idata).max_rhat)
    # saved again and loaded again: the same posterior
    m.save(tmp_path / "again.nc")
    back = ss.load(tmp_path / "again.nc")
    np.testing.assert_array_equal(back.idata.posterior["beta"].values, idata.posterior["beta"].values)


def test_load_refuses_a_posterior_that_does_not_match_its_model(tiny_fit, tmp_path):
    project, *_ = tiny_fit
    stored = ss.load(model_paths("full", project)["posterior"]).idata
    dropped = stored.copy()
    dropped.posterior = dropped.posterior.drop_vars("sigma_province")
    dropped.to_netcdf(tmp_path / "dropped.nc")
    with pytest.raises(ss.ModelMismatchError, match=r"only in the model \['sigma_province'\]"):
        ss.load(tmp_path / "dropped.nc")
    edited = stored.copy()
    first = edited.fit_data[CODEBOOK_ITEM_COLUMN].values.copy()
    first[0] = 1 if first[0] != 1 else 2
    edited.fit_data[CODEBOOK_ITEM_COLUMN] = ("row", first)
    edited.to_netcdf(tmp_path / "edited.nc")
    with pytest.raises(ss.ModelMismatchError, match="stored survey table does not give the data"):
        ss.load(tmp_path / "edited.nc")


CODEBOOK_ITEM_COLUMN = ss.load_codebook(CODEBOOK).items[0].column


def test_unreadable_posteriors_get_errors_that_name_the_file(tmp_path, tiny_fit):
    project, *_ = tiny_fit
    good = model_paths("full", project)["posterior"]
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ss.StorageError, match=r"truncated.nc: not a readable posterior"):
        ss.load(truncated)
    with pytest.raises(ss.StorageError, match=r"is a directory"):
        ss.load(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nowhere.nc: no posterior there"):
        ss.load(tmp_path / "nowhere.nc")


def test_a_second_fit_of_the_same_model_is_refused_while_one_runs(tmp_path):
    from scsurvey.storage.files import model_lock

    with (
        model_lock(tmp_path / "m"),
        pytest.raises(ss.LockedError, match=r"another fit of this model is running"),
        model_lock(tmp_path / "m"),
    ):
        pass
    with model_lock(tmp_path / "m"):  # released when the first fit ends
        pass


def test_the_readme_python_example_runs_as_written(root, tmp_path, monkeypatch):
    """The README's example, with small draws substituted for the defaults (time only)."""
    text = (root / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has a Python example"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 10
    small = "m.fit(draws=100, tune=100, chains=2, rounds=1, prior_draws=20, progress=False)"
    assert "m.fit()" in code
    code = code.replace("m.fit()", small)
    shutil.copytree(root / "data" / "codebook", tmp_path / "data" / "codebook")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    with pytest.warns(UserWarning, match="diagnostics failed"):  # 2 x 100 draws cannot pass
        exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "verbagg.nc").exists()
    again = namespace["again"]
    assert isinstance(again, ss.SurveyModel) and again.idata.posterior.sizes["chain"] == 2
    table = ss.summaries.support_table(again.idata)
    assert isinstance(table, pd.DataFrame) and len(table) == 24
