"""What a posterior carries besides its draws: the stamp that ties it to its spec, data,
code and libraries, and the lean form it is stored in."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib import metadata

import arviz as az

from scsurvey.core import dims
from scsurvey.core.defaults import DRAWS
from scsurvey.core.sources import code_hash
from scsurvey.inputs.survey import SurveyData
from scsurvey.model.spec import ModelSpec
from scsurvey.posterior.draws import thin

LIBRARIES = ("scsurvey", "pymc", "pytensor", "arviz", "nutpie", "numpy", "xarray", "pandas")


def versions() -> dict[str, str]:
    """Versions of Python and the libraries a posterior depends on."""
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def stamp(
    idata,
    spec: ModelSpec,
    data: SurveyData,
    timing: dict,
    spec_hash: str | None = None,
    overrides: dict | None = None,
) -> None:
    """Attributes that tie a posterior to its spec, data, code and libraries.

    ``spec_hash`` is the hash of the spec file; sampler settings overridden for this run
    (``overrides``) are recorded beside it rather than making the posterior stale. The
    codebook's content is stored too, so that :func:`scsurvey.inputs.survey` can rebuild the model.
    """
    attrs = {
        "model_name": spec.name,
        "spec_hash": spec_hash or spec.hash(),
        "sampler_overrides": json.dumps(overrides or {}),
        "data_hash": data.data_hash,
        "content_hash": data.content_hash(),
        "codebook_content": json.dumps(data.codebook.raw or {}, default=str),
        "code_hash": code_hash(),
        "codebook": spec.codebook,
        "data_file": spec.data,
        "link": spec.link,
        "residual": int(spec.components.residual),  # 0: no respondent residual to integrate
        "sampler": spec.sampler.name,
        "seed": spec.sampler.seed,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_time_s": float(sum(timing.values())),
        "versions": json.dumps(versions()),
        "spec": json.dumps(spec.as_dict()),
    }
    for group in idata.groups():
        idata[group].attrs.update(attrs)


FLOAT32_GROUPS = (
    "posterior",
    "prior",
    "log_likelihood",
    "log_likelihood_integrated",
    "scores",
    dims.RESPONDENT_DRAWS,
)


def lean(
    idata: az.InferenceData,
    unconstrained: set[str],
    latent: set[str] = frozenset(),
    max_draws: int = DRAWS.predictive,
) -> az.InferenceData:
    """Keep what users read: population-level draws whole, respondent-level draws thinned,
    no sampler coordinates, float32.

    Samplers store each transformed parameter twice (``sigma_g`` and ``sigma_g_log__``); the
    second is the sampler's working coordinate, not a quantity anyone reads. Respondent-level
    variables are most of a file (draws x respondents x batteries): the standardised
    residuals ``latent`` (``z_respondent``) are the sampler's coordinates and are dropped;
    the traits (``theta``) move to the group ``posterior_respondents`` at the draws the
    posterior predictive was thinned to (at most ``max_draws``), enough for person scores
    and fit statistics, which pair each replicate with its own draw. Their posterior means
    and sds over every draw are in the ``scores`` group. float32 keeps seven significant
    digits, far below Monte Carlo error; diagnostics are computed before.
    """
    post = idata.posterior
    respondent_level = [v for v, da in post.data_vars.items() if dims.RESPONDENT in da.dims]
    kept = [v for v in respondent_level if v not in latent and v not in unconstrained]
    if kept:
        if "posterior_predictive" in idata.groups():
            rep = idata.posterior_predictive
            at = {"chain": rep["chain"].values, "draw": rep["draw"].values}
        else:
            at = {"draw": thin(idata, max_draws).posterior["draw"].values}
        idata.add_groups({dims.RESPONDENT_DRAWS: post[kept].sel(at)})
    post = post.drop_vars([v for v in post.data_vars if v in unconstrained or v in respondent_level])
    used = {d for v in post.data_vars.values() for d in v.dims}
    idata.posterior = post.drop_vars([c for c in post.coords if c not in used and c in post.dims])
    if "prior" in idata.groups():  # population-level prior draws; respondents' are recomputable
        prior = idata.prior
        idata.prior = prior.drop_vars([v for v, da in prior.data_vars.items() if dims.RESPONDENT in da.dims])
    for group in FLOAT32_GROUPS:
        if group in idata.groups():
            ds = idata[group]
            idata[group] = ds.assign(
                {k: v.astype("float32") for k, v in ds.data_vars.items() if v.dtype == "float64"}
            )
    return idata
