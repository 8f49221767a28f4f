"""The Python API: :class:`SurveyModel` (build, fit, save) and :func:`load`.

A model is a survey (a DataFrame or file), a codebook (object or TOML path), a model
configuration and a sampler configuration, each merged over its defaults
(``default_model_config() | model_config``, as in pymc-marketing). The CLI and Make use the
same object through :meth:`SurveyModel.from_spec`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from scsurvey.core import dims
from scsurvey.core.sources import code_hash
from scsurvey.inference.diagnostics import Diagnostics, diagnose
from scsurvey.inputs.codebook import Codebook, load_codebook, parse_codebook
from scsurvey.inputs.survey import SurveyData, load_survey, prepare
from scsurvey.model.graph import BuiltModel, build
from scsurvey.model.spec import (
    ModelSpec,
    default_model_config,
    default_sampler_config,
    load_inputs,
    load_spec,
    spec_from_configs,
)
from scsurvey.posterior.assemble import fit_survey
from scsurvey.storage.files import model_lock, write_atomic, write_json_atomic
from scsurvey.storage.reader import read_posterior

FIT_DATA = "fit_data"  # InferenceData group: the survey table the model was fitted to
MISSING_TEXT = ""  # a missing cell of a text column in the stored table


class ModelMismatchError(ValueError):
    """A stored posterior does not match the model rebuilt from it; the message says what."""


def _codebook(codebook) -> Codebook:
    if isinstance(codebook, Codebook):
        return codebook
    if isinstance(codebook, str | Path):
        return load_codebook(codebook)
    raise TypeError(f"codebook: expected a Codebook or a TOML path, got {type(codebook).__name__}")


def _survey(data, codebook: Codebook) -> SurveyData:
    if isinstance(data, SurveyData):
        return data
    if isinstance(data, pd.DataFrame):
        return prepare(data, codebook, source="<DataFrame>")
    if isinstance(data, str | Path):
        return load_survey(data, codebook)
    raise TypeError(f"data: expected a DataFrame, a file path or SurveyData, got {type(data).__name__}")


class SurveyModel:
    """A hierarchical graded-response model of a survey's batteries.

    Parameters
    ----------
    data : pandas.DataFrame, str, Path or SurveyData
        One row per respondent (or long format, as the codebook says), or a CSV, Parquet,
        Stata or SPSS file.
    codebook : Codebook, str or Path
        The codebook, or its TOML file.
    covariates, groups, item_covariates, correlated, link, dif : optional
        Shortcuts for the model configuration keys of the same names: ``covariates`` True
        (all), False or a list of covariate ids; ``groups`` a list of grouping factor ids;
        ``item_covariates`` covariates whose effect varies by item; ``correlated`` whether
        the battery traits correlate; ``link`` "logit" or "probit"; ``dif`` binary
        covariates or grouping factors whose groups may read items differently
        (:mod:`scsurvey.model.dif`).
    model_config : dict, optional
        Merged over :func:`scsurvey.default_model_config` (``priors`` and ``centering``
        entries are merged key by key).
    sampler_config : dict, optional
        Merged over :func:`scsurvey.default_sampler_config`.
    name : str
        The model's name, stored with its posterior.

    Examples
    --------
    >>> import scsurvey as ss
    >>> cb = ss.load_codebook("data/codebook/verbagg.toml")  # doctest: +SKIP
    >>> m = ss.SurveyModel("data/examples/verbagg.csv", cb, covariates=True,
    ...                    sampler_config={"draws": 500})  # doctest: +SKIP
    >>> idata = m.fit()  # doctest: +SKIP
    >>> m.diagnostics.ok  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        data,
        codebook,
        *,
        covariates=None,
        groups=None,
        item_covariates=None,
        correlated=None,
        link=None,
        dif=None,
        model_config: dict | None = None,
        sampler_config: dict | None = None,
        name: str = "model",
        description: str = "",
        _spec: ModelSpec | None = None,
    ):
        self.codebook = _codebook(codebook)
        self.data = _survey(data, self.codebook)
        if _spec is None:
            shortcuts = {
                "covariates": covariates,
                "groups": groups,
                "item_covariates": item_covariates,
                "correlated": correlated,
                "link": link,
                "dif": dif,
            }
            config = dict(model_config or {})
            config.update({k: v for k, v in shortcuts.items() if v is not None})
            inputs = {}
            if isinstance(codebook, str | Path):
                inputs["codebook"] = str(codebook)
            if isinstance(data, str | Path):
                inputs["data"] = str(data)
            _spec = spec_from_configs(name, config, sampler_config, inputs, description)
        self.spec = _spec
        self.idata: az.InferenceData | None = None
        self.run: dict | None = None
        self._built: BuiltModel | None = None

    @classmethod
    def from_spec(cls, path: str | Path, root: str | Path = ".") -> SurveyModel:
        """The model a spec file describes, with the codebook and data its ``[inputs]`` name.

        Parameters
        ----------
        path : str or Path
            ``models/<name>.toml``.
        root : str or Path
            The directory the spec's input paths are relative to.
        """
        spec = load_spec(path)
        data = load_inputs(spec, root)
        return cls(data, data.codebook, _spec=spec)

    @property
    def model_config(self) -> dict:
        """The model configuration in force (defaults merged with what was given)."""
        return self.spec.model_config()

    @property
    def sampler_config(self) -> dict:
        """The sampler configuration in force."""
        return self.spec.sampler_config()

    default_model_config = staticmethod(default_model_config)
    default_sampler_config = staticmethod(default_sampler_config)

    def build(self) -> BuiltModel:
        """Build (once) and return the PyMC model with handles on its linear predictor."""
        if self._built is None:
            self._built = build(self.spec, self.data)
        return self._built

    @property
    def model(self):
        """The PyMC model."""
        return self.build().model

    def fit(self, progress: bool = True, log=None, **sampler_overrides) -> az.InferenceData:
        """Sample until clean (or out of rounds), then add predictive draws and the
        log-likelihood; diagnose and stamp.

        Parameters
        ----------
        progress : bool
            Show the sampler's progress bar.
        log : callable, optional
            Receives one line per sampling round (default: stderr).
        **sampler_overrides
            Sampler settings for this fit only (``draws=500``, ``seed=3``, ...), recorded in
            the posterior's stamp.

        Returns
        -------
        arviz.InferenceData
            Also kept as ``self.idata``; ``self.run`` holds timings, rounds and diagnostics.

        Examples
        --------
        >>> idata = m.fit(draws=500, seed=2)  # doctest: +SKIP
        >>> [r["clean"] for r in m.run["rounds"]]  # doctest: +SKIP
        [False, True]
        """
        spec = self.spec.replace(sampler=sampler_overrides) if sampler_overrides else self.spec
        self.idata, self.run = fit_survey(
            spec,
            self.data,
            progress=progress,
            log=log,
            spec_hash=self.spec.hash(),
            overrides=sampler_overrides,
            built=self.build(),
        )
        self.idata.add_groups({FIT_DATA: table_dataset(self.data)})
        if not self.diagnostics.ok:
            warnings.warn(
                f"model {self.spec.name!r}: diagnostics failed after {len(self.run['rounds'])} "
                f"round(s): {'; '.join(self.diagnostics.failures)}",
                stacklevel=2,
            )
        return self.idata

    @property
    def diagnostics(self) -> Diagnostics:
        """R-hat, ESS, divergences and BFMI of the fit, with what failed."""
        return diagnose(self._fitted())

    def _fitted(self) -> az.InferenceData:
        if self.idata is None:
            raise RuntimeError(f"model {self.spec.name!r} is not fitted: call .fit() first")
        return self.idata

    def save(self, path: str | Path, run_json: str | Path | None = None, lock: bool = True) -> Path:
        """Write the posterior (atomically, under a lock on its directory).

        Parameters
        ----------
        path : str or Path
            The netCDF file to write.
        run_json : str or Path, optional
            Also write the run record (timings, rounds, diagnostics) there.
        lock : bool
            Take the directory's lock for the write; False when the caller holds it for
            the whole fit (:func:`scsurvey.workflows.named_models.fit`).

        Examples
        --------
        >>> m.save("verbagg.nc")  # doctest: +SKIP
        PosixPath('verbagg.nc')
        """
        idata, path = self._fitted(), Path(path)
        with model_lock(path.parent) if lock else contextlib.nullcontext():
            write_atomic(idata, path)
            if run_json is not None:
                write_json_atomic(self.run, Path(run_json))
        return path


def table_dataset(data: SurveyData) -> xr.Dataset:
    """The survey table a model was fitted to, as a Dataset (text columns as strings)."""
    table = data.table
    columns = {}
    for name in table.columns:
        col = table[name]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            columns[str(name)] = ("row", col.to_numpy())
        else:
            text = col.map(lambda v: MISSING_TEXT if pd.isna(v) else str(v))
            columns[str(name)] = ("row", text.to_numpy(str))
    return xr.Dataset(columns, coords={"row": np.arange(len(table))})


def table_frame(ds: xr.Dataset) -> pd.DataFrame:
    """Inverse of :func:`table_dataset`."""
    frame = ds.drop_vars("row", errors="ignore").to_dataframe().reset_index(drop=True)
    for name in frame.columns:
        if frame[name].dtype == object or pd.api.types.is_string_dtype(frame[name]):
            frame[name] = frame[name].astype(object).where(frame[name] != MISSING_TEXT, np.nan)
    return frame


def load(path: str | Path) -> SurveyModel:
    """A fitted :class:`SurveyModel` rebuilt from a posterior written by :meth:`SurveyModel.save`.

    The codebook, the survey table and the configuration are read from the file and the
    model is rebuilt; a posterior whose variables or data do not match the rebuilt model
    is refused, naming what differs.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    SurveyModel
        With ``.idata`` the stored posterior.

    Raises
    ------
    ModelMismatchError
        If the stored data or variables do not match the rebuilt model.
    StorageError
        If the file is truncated or not a posterior.

    Examples
    --------
    >>> import scsurvey as ss
    >>> m = ss.load("models/verbagg/posterior.nc")  # doctest: +SKIP
    >>> m.diagnostics.ok, m.spec.components.covariates  # doctest: +SKIP
    (True, True)
    >>> ss.summaries.support_table(m.idata, m.codebook)  # doctest: +SKIP
    """
    idata = read_posterior(path)
    attrs = idata.posterior.attrs
    missing = [k for k in ("spec", "codebook_content", "content_hash") if k not in attrs]
    if missing or FIT_DATA not in idata.groups():
        raise ModelMismatchError(
            f"{path}: not a posterior written by SurveyModel.save (missing {missing or [FIT_DATA]})"
        )
    raw = json.loads(attrs["codebook_content"])
    stored = json.loads(attrs["spec"])
    codebook = parse_codebook(raw, stored.get("codebook") or f"<codebook stored in {path}>")
    # the stored table is the wide one the model saw (long files were widened on loading)
    wide = dataclasses.replace(
        codebook, layout="wide", item_column=None, answer_column=None, incomplete="error"
    )
    data = prepare(table_frame(idata[FIT_DATA]), wide, source=f"{path} ({FIT_DATA})")
    data.codebook = codebook
    spec = ModelSpec.from_dict(stored)
    model = SurveyModel(data, codebook, _spec=spec)
    if data.content_hash() != attrs["content_hash"]:
        raise ModelMismatchError(
            f"{path}: the stored survey table does not give the data the model was fitted to"
        )
    built = model.build()
    expected = {v.name for v in built.model.free_RVs} | {v.name for v in built.model.deterministics}
    allowed = expected | {v.name for v in built.model.value_vars}  # nutpie's unconstrained copies
    # respondent-level residuals are not stored (storage.lean); their traits are stored apart
    latent = {n for n in expected if dims.RESPONDENT in built.model.named_vars_to_dims.get(n, ())}
    stored = {n: idata.posterior[n] for n in idata.posterior.data_vars}
    if dims.RESPONDENT_DRAWS in idata.groups():
        stored.update({n: idata[dims.RESPONDENT_DRAWS][n] for n in idata[dims.RESPONDENT_DRAWS].data_vars})
    present = set(stored)
    if (expected - present) - latent or present - allowed:
        raise ModelMismatchError(
            f"{path}: the posterior does not match the model rebuilt from it: "
            f"variables only in the model {sorted((expected - present) - latent)}, "
            f"only in the posterior {sorted(present - allowed)}"
        )
    for name in expected & present:
        want = tuple(built.model.named_vars_to_dims.get(name, ()))
        have = tuple(d for d in stored[name].dims if d not in dims.SAMPLE)
        if want and want != have:
            raise ModelMismatchError(f"{path}: variable {name!r} has dims {have}, the rebuilt model {want}")
    if attrs.get("code_hash") != code_hash():
        warnings.warn(f"{path} was fitted with other model code than this version's", stacklevel=2)
    model.idata = idata
    return model
