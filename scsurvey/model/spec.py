"""Model specifications: ``models/<name>.toml``, or configuration dicts in Python.

A spec has three parts: the inputs (``[inputs]``: codebook and data file, read by the CLI),
the model configuration (link, components, prior overrides, centring) and the sampler
configuration (``[sampler]``, seed included). Variants of the model are specs, not code forks.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scsurvey.core.defaults import SAMPLER, THRESHOLDS
from scsurvey.core.tomlfile import check_keys, read_toml
from scsurvey.inputs.codebook import load_codebook
from scsurvey.inputs.survey import SurveyData, load_survey
from scsurvey.model.likelihood import LINKS
from scsurvey.model.parameterisation import BLOCKS, DEFAULTS, parse_setting
from scsurvey.model.priors import CHOICE_PRIORS, NONRESPONSE_PRIORS, STYLE_PRIORS, merge_priors

SAMPLERS = ("nutpie", "pymc", "numpyro", "advi")  # advi: approximate, scsurvey.inference.approximate
NUTPIE_BACKENDS = ("numba", "jax")
DEVICES = ("auto", "cpu", "gpu")


class SpecError(ValueError):
    """A model spec is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Components:
    covariates: bool | tuple[str, ...] = False
    groups: tuple[str, ...] = ()
    item_covariates: tuple[str, ...] = ()
    correlated: bool = False
    discrimination: bool = True  # False: one discrimination per battery, shared by its items
    # False: no respondent residual; the latent scale is the logistic's, discriminations are
    # fixed at 1 and the model is a cumulative logit with group intercepts (one-item surveys)
    residual: bool = True
    # where each grouping factor's intercepts average to zero: "levels" (zero-sum over its
    # levels) or "respondents" (weighted by the levels' sizes, as the covariates are centred),
    # so that an unbalanced factor does not trade its effect against the thresholds
    group_mean: str = "levels"
    # differential item functioning (scsurvey.model.dif): binary covariates or grouping
    # factors whose groups may read items differently; "uniform" (location) or "nonuniform"
    # (location and discrimination)
    dif: tuple[str, ...] = ()
    dif_kind: str = "uniform"
    # multiple-response questions of the codebook fitted jointly with the batteries
    # (scsurvey.model.choices): true for all, or their ids
    multiple_response: bool | tuple[str, ...] = False
    # respondent-level response styles (scsurvey.model.styles): "extreme" (a spread of the
    # thresholds around each item's centre) and "acquiescence" (a shift towards agreeing,
    # identified by reverse-keyed items)
    response_style: tuple[str, ...] = ()
    # "ignorable" (missing answers carry no information) or "informative" (a selection model:
    # each non-answer on a propensity that moves with the traits)
    nonresponse: str = "ignorable"


GROUP_MEANS = ("levels", "respondents")
DIF_KINDS = ("uniform", "nonuniform")
RESPONSE_STYLES = ("extreme", "acquiescence")
INPUT_KEYS = ("codebook", "data", "twin", "baseline")
NONRESPONSE = ("ignorable", "informative")


@dataclass(frozen=True)
class Sampler:
    """Sampler settings; defaults from :data:`scsurvey.core.defaults.SAMPLER`."""

    name: str = SAMPLER["name"]
    chains: int = SAMPLER["chains"]
    draws: int = SAMPLER["draws"]
    tune: int = SAMPLER["tune"]
    seed: int = SAMPLER["seed"]
    target_accept: float = SAMPLER["target_accept"]
    nutpie_backend: str = SAMPLER["nutpie_backend"]
    low_rank: bool = SAMPLER["low_rank"]
    cores: int = SAMPLER["cores"]
    # sample until clean: at most `rounds` sampling rounds in all (each adds `chains` chains
    # of `draws` draws), and no new round once `budget_s` seconds of sampling are spent
    rounds: int = SAMPLER["rounds"]
    budget_s: float = SAMPLER["budget_s"]
    # a clean fit above this R-hat gets another round while rounds and budget last
    rhat_target: float = SAMPLER["rhat_target"]
    # where the JAX paths (nutpie_backend = "jax", name = "numpyro") run: "auto" is JAX's
    # default (a GPU when JAX sees one); Numba and PyMC's C backend always run on the CPU
    device: str = SAMPLER["device"]
    # Numba: compile with the data as inputs, so new answers of the same shape (a corrected
    # file, another seed, an SBC simulation) reuse the compiled model; false freezes them as
    # constants: faster gradients, a recompile for any change (docs/performance.md)
    data_inputs: bool = SAMPLER["data_inputs"]
    prior_draws: int = SAMPLER["prior_draws"]  # prior and prior-predictive draws stored beside the posterior
    vi_steps: int = SAMPLER["vi_steps"]  # optimisation steps of name = "advi"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: the inputs, the model configuration and the sampler configuration.

    Paths are relative to the project root; both are empty for a model built in memory.
    """

    name: str
    codebook: str = ""
    data: str = ""
    twin: str = ""  # the twin settings file when ``data`` is a synthetic twin made from it
    # the named model a fit of this one is read against (the report's sensitivity table)
    baseline: str = ""
    link: str = "logit"
    description: str = ""
    components: Components = field(default_factory=Components)
    priors: dict = field(default_factory=lambda: merge_priors(None))
    centering: dict = field(default_factory=lambda: dict(DEFAULTS))
    sampler: Sampler = field(default_factory=Sampler)
    path: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        """SHA-256 of everything that changes the posterior (not the description or paths)."""
        content = self.as_dict()
        for key in ("description", "path", "name", "codebook", "data", "twin", "baseline"):
            content.pop(key)
        if not self.components.dif:  # an unused component and its prior do not change the posterior
            content["priors"].pop("dif")
            for key in ("dif", "dif_kind"):
                content["components"].pop(key)
        if not self.components.multiple_response:
            content["components"].pop("multiple_response")
            for key in CHOICE_PRIORS:
                content["priors"].pop(key)
        for on, keys, priors in (
            (self.components.response_style, ("response_style",), STYLE_PRIORS),
            (self.components.nonresponse != "ignorable", ("nonresponse",), NONRESPONSE_PRIORS),
        ):
            if not on:
                for key in keys:
                    content["components"].pop(key)
                for key in priors:
                    content["priors"].pop(key)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def model_config(self) -> dict:
        """The model configuration as a plain dict (the form :class:`scsurvey.SurveyModel` takes)."""
        c = self.components
        return {
            "link": self.link,
            "covariates": c.covariates if isinstance(c.covariates, bool) else list(c.covariates),
            "groups": list(c.groups),
            "item_covariates": list(c.item_covariates),
            "correlated": c.correlated,
            "discrimination": c.discrimination,
            "residual": c.residual,
            "group_mean": c.group_mean,
            "dif": list(c.dif),
            "dif_kind": c.dif_kind,
            "multiple_response": c.multiple_response
            if isinstance(c.multiple_response, bool)
            else list(c.multiple_response),
            "response_style": list(c.response_style),
            "nonresponse": c.nonresponse,
            "priors": copy.deepcopy(self.priors),
            "centering": dict(self.centering),
        }

    def sampler_config(self) -> dict:
        """The sampler configuration as a plain dict."""
        return asdict(self.sampler)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        """Inverse of :meth:`as_dict` (as stored with a posterior), validated again."""
        comp = d.get("components", {})
        config = {"link": d.get("link", "logit"), **comp}
        config.update(priors=d.get("priors", {}), centering=d.get("centering", {}))
        inputs = {k: d[k] for k in INPUT_KEYS if d.get(k)}
        return spec_from_configs(d["name"], config, d.get("sampler"), inputs, d.get("description", ""))

    def replace(self, **changes) -> ModelSpec:
        """A copy with top-level fields (or ``sampler=dict(...)`` updates) changed."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if "sampler" in changes and isinstance(changes["sampler"], dict):
            # validated as the spec's own [sampler] table is: a bad override is a SpecError
            source = f"model {self.name!r} sampler overrides {sorted(changes['sampler'])}"
            changes["sampler"] = _sampler({**asdict(self.sampler), **changes["sampler"]}, source)
        d.update(changes)
        return ModelSpec(**d)


def default_model_config() -> dict:
    """The model configuration every spec starts from: ``default_model_config() | yours``.

    Examples
    --------
    >>> cfg = default_model_config()
    >>> cfg["link"], cfg["groups"], cfg["priors"]["a"]
    ('logit', [], {'sigma': 0.5})
    """
    return ModelSpec(name="default").model_config()


def default_sampler_config() -> dict:
    """The sampler configuration every spec starts from: ``default_sampler_config() | yours``.

    Examples
    --------
    >>> default_sampler_config()["chains"]
    4
    """
    return asdict(Sampler())


MODEL_KEYS = (
    "link",
    "covariates",
    "groups",
    "item_covariates",
    "correlated",
    "discrimination",
    "residual",
    "group_mean",
    "dif",
    "dif_kind",
    "multiple_response",
    "response_style",
    "nonresponse",
    "priors",
    "centering",
)


def _typed(value, kind, source, key):
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise SpecError(f"{source}: {key} = {value!r}: expected {getattr(kind, '__name__', kind)}")
    return value


def _names(value, source, key) -> tuple[str, ...]:
    """A list of names; a bare string is refused rather than split into letters."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise SpecError(f"{source}: {key} = {value!r}: expected a list of names, e.g. [{value!r}]")
    return tuple(_typed(v, str, source, f"{key}[]") for v in value)


def _questions(value, source) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    return _names(value, source, "components.multiple_response")


def _components(comp: dict, source: str) -> Components:
    check_keys(comp, Components.__dataclass_fields__, source, SpecError, "components.")
    cov = comp.get("covariates", False)
    if not isinstance(cov, bool):
        cov = _names(cov, source, "components.covariates")
    components = Components(
        covariates=cov,
        groups=_names(comp.get("groups", []), source, "components.groups"),
        item_covariates=_names(comp.get("item_covariates", []), source, "components.item_covariates"),
        correlated=_typed(comp.get("correlated", False), bool, source, "components.correlated"),
        discrimination=_typed(comp.get("discrimination", True), bool, source, "components.discrimination"),
        residual=_typed(comp.get("residual", True), bool, source, "components.residual"),
        group_mean=_typed(comp.get("group_mean", "levels"), str, source, "components.group_mean"),
        dif=_names(comp.get("dif", []), source, "components.dif"),
        dif_kind=_typed(comp.get("dif_kind", "uniform"), str, source, "components.dif_kind"),
        multiple_response=_questions(comp.get("multiple_response", False), source),
        response_style=_names(comp.get("response_style", []), source, "components.response_style"),
        nonresponse=_typed(comp.get("nonresponse", "ignorable"), str, source, "components.nonresponse"),
    )
    _check_styles(components, source)
    if components.dif_kind not in DIF_KINDS:
        raise SpecError(
            f"{source}: components.dif_kind = {components.dif_kind!r}: expected one of {DIF_KINDS}"
        )
    if components.dif and not components.residual:
        raise SpecError(
            f"{source}: components.dif needs components.residual = true: without a latent trait "
            "measured by several items there is nothing for an item to deviate from"
        )
    if components.multiple_response and not components.residual:
        raise SpecError(
            f"{source}: components.multiple_response needs components.residual = true: the "
            "choices are modelled on the respondent's latent support, which needs a residual"
        )
    if components.group_mean not in GROUP_MEANS:
        raise SpecError(
            f"{source}: components.group_mean = {components.group_mean!r}: expected one of {GROUP_MEANS}"
        )
    if not components.residual:
        for key, value, why in (
            ("discrimination", components.discrimination, "the discriminations are fixed at 1"),
            ("correlated", components.correlated, "there is no residual to correlate"),
        ):
            if value:
                raise SpecError(
                    f"{source}: components.residual = false with components.{key} = true: "
                    f"without a respondent residual {why}; set components.{key} = false"
                )
    if components.item_covariates and components.covariates is False:
        raise SpecError(f"{source}: components.item_covariates needs components.covariates")
    return components


def _check_styles(components: Components, source: str) -> None:
    """Response styles and informative non-response: known names, and a residual to act on."""
    bad = [s for s in components.response_style if s not in RESPONSE_STYLES]
    if bad:
        raise SpecError(f"{source}: components.response_style: {bad}: expected some of {RESPONSE_STYLES}")
    if len(set(components.response_style)) < len(components.response_style):
        raise SpecError(
            f"{source}: components.response_style = {list(components.response_style)}: a style twice"
        )
    if components.nonresponse not in NONRESPONSE:
        raise SpecError(
            f"{source}: components.nonresponse = {components.nonresponse!r}: expected one of {NONRESPONSE}"
        )
    for key, on in (
        ("response_style", bool(components.response_style)),
        ('nonresponse = "informative"', components.nonresponse == "informative"),
    ):
        if on and not components.residual:
            raise SpecError(
                f"{source}: components.{key} needs components.residual = true: a respondent's "
                "style or propensity is read from several answers of the same respondent"
            )


def _sampler(samp: dict, source: str) -> Sampler:
    check_keys(samp, Sampler.__dataclass_fields__, source, SpecError, "sampler.")
    sampler = Sampler(**samp)
    if sampler.name not in SAMPLERS:
        raise SpecError(f"{source}: sampler.name = {sampler.name!r}: expected one of {SAMPLERS}")
    if sampler.nutpie_backend not in NUTPIE_BACKENDS:
        raise SpecError(
            f"{source}: sampler.nutpie_backend = {sampler.nutpie_backend!r}: "
            f"expected one of {NUTPIE_BACKENDS}"
        )
    if sampler.device not in DEVICES:
        raise SpecError(f"{source}: sampler.device = {sampler.device!r}: expected one of {DEVICES}")
    for key in ("chains", "draws", "tune", "seed", "cores", "rounds", "prior_draws", "vi_steps"):
        if _typed(getattr(sampler, key), int, source, f"sampler.{key}") < (0 if key == "seed" else 1):
            raise SpecError(f"{source}: sampler.{key} = {getattr(sampler, key)}: must be positive")
    for key in ("target_accept", "budget_s", "rhat_target"):
        _typed(getattr(sampler, key), int | float, source, f"sampler.{key}")
    _typed(sampler.low_rank, bool, source, "sampler.low_rank")
    if not sampler.budget_s > 0:
        raise SpecError(f"{source}: sampler.budget_s = {sampler.budget_s}: must be positive")
    rhat_max = THRESHOLDS.rhat_max
    if not 1 < float(sampler.rhat_target) <= rhat_max:
        raise SpecError(f"{source}: sampler.rhat_target = {sampler.rhat_target}: not in (1, {rhat_max}]")
    if not 0.5 <= float(sampler.target_accept) < 1:
        raise SpecError(f"{source}: sampler.target_accept = {sampler.target_accept}: not in [0.5, 1)")
    return sampler


def _centering(cent: dict, source: str) -> dict:
    check_keys(cent, BLOCKS, source, SpecError, "centering.")
    try:
        return {**DEFAULTS, **{k: parse_setting(v, source, f"centering.{k}") for k, v in cent.items()}}
    except ValueError as err:
        raise SpecError(err.args[0]) from None


# [poststrat] is read by scsurvey.workflows.mrp: it weights predictions and does not change the fit
TOP_LEVEL = ("description", "inputs", "link", "components", "priors", "centering", "sampler", "poststrat")


def parse_spec(raw: dict, name: str, source: str = "<memory>", require_inputs: bool = False) -> ModelSpec:
    """Validate a spec given as a dict.

    Parameters
    ----------
    raw : dict
        The TOML content: ``[inputs]`` (codebook, data and, for a synthetic twin, the twin
        settings it was simulated from), ``link``, ``[components]``,
        ``[priors]``, ``[centering]`` and ``[sampler]``.
    name : str
        The model name (the spec's file stem).
    source : str
        For error messages.
    require_inputs : bool
        Whether ``[inputs]`` must name the codebook and the data file (a spec file read by
        the CLI must; a model built in memory has its data already).

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        Naming the file and the offending key.

    Examples
    --------
    >>> spec = parse_spec({"components": {"groups": ["site"]}, "sampler": {"draws": 500}}, "demo")
    >>> spec.components.groups, spec.sampler.draws, spec.link
    (('site',), 500, 'logit')
    """
    if "codebook" in raw or "data" in raw:
        raise SpecError(f"{source}: codebook and data go in an [inputs] table (inputs.codebook, inputs.data)")
    check_keys(raw, TOP_LEVEL, source, SpecError)
    inputs = raw.get("inputs", {})
    check_keys(inputs, INPUT_KEYS, source, SpecError, "inputs.")
    for key in INPUT_KEYS:
        if require_inputs and key in ("codebook", "data") and key not in inputs:
            raise SpecError(f"{source}: missing required key 'inputs.{key}'")
        _typed(inputs.get(key, ""), str, source, f"inputs.{key}")
    link = raw.get("link", "logit")
    if link not in LINKS:
        raise SpecError(f"{source}: link = {link!r}: expected one of {LINKS}")
    try:
        priors = merge_priors(raw.get("priors"), source)
    except KeyError as err:
        raise SpecError(err.args[0]) from None
    return ModelSpec(
        name=name,
        codebook=inputs.get("codebook", ""),
        data=inputs.get("data", ""),
        twin=inputs.get("twin", ""),
        baseline=inputs.get("baseline", ""),
        link=link,
        description=_typed(raw.get("description", ""), str, source, "description"),
        components=_components(dict(raw.get("components", {})), source),
        priors=priors,
        centering=_centering(dict(raw.get("centering", {})), source),
        sampler=_sampler(dict(raw.get("sampler", {})), source),
        path=source,
    )


def spec_from_configs(
    name: str,
    model_config: dict | None = None,
    sampler_config: dict | None = None,
    inputs: dict | None = None,
    description: str = "",
) -> ModelSpec:
    """A spec from configuration dicts, validated like a spec file.

    ``model_config`` keys: ``link``, ``covariates``, ``groups``, ``item_covariates``,
    ``correlated``, ``discrimination``, ``residual``, ``group_mean``, ``dif``, ``dif_kind``,
    ``priors`` (overrides of :data:`scsurvey.model.priors.DEFAULT_PRIORS`), ``centering``;
    ``sampler_config`` keys: the fields of :class:`Sampler`.

    Examples
    --------
    >>> spec = spec_from_configs("demo", {"groups": ["site"]}, {"chains": 2})
    >>> spec.components.groups, spec.sampler.chains
    (('site',), 2)
    """
    cfg = dict(model_config or {})
    source = f"model {name!r} configuration"
    check_keys(cfg, MODEL_KEYS, source, SpecError, "model_config.")
    raw = {
        "description": description,
        "inputs": dict(inputs or {}),
        "link": cfg.pop("link", "logit"),
        "priors": cfg.pop("priors", {}) or {},
        "centering": cfg.pop("centering", {}) or {},
        "components": cfg,
        "sampler": dict(sampler_config or {}),
    }
    return parse_spec(raw, name, source)


def load_spec(path: Path | str) -> ModelSpec:
    """Read ``models/<name>.toml``; a bad spec fails with a message naming the key."""
    path = Path(path)
    return parse_spec(read_toml(path, SpecError, "model spec"), path.stem, str(path), require_inputs=True)


def check_against_codebook(spec: ModelSpec, codebook) -> None:
    """Every covariate and group the spec names must exist in the codebook."""
    known_cov = [c.id for c in codebook.covariates]
    comp = spec.components
    named = [] if isinstance(comp.covariates, bool) else list(comp.covariates)
    for key, names, known in (
        ("components.covariates", named, known_cov),
        ("components.item_covariates", list(comp.item_covariates), known_cov),
        ("components.groups", list(comp.groups), [g.id for g in codebook.groups]),
    ):
        bad = [n for n in names if n not in known]
        if bad:
            raise SpecError(f"{spec.path}: {key}: {bad} not in codebook {codebook.path} (known: {known})")
    if isinstance(comp.covariates, tuple):
        outside = [c for c in comp.item_covariates if c not in comp.covariates]
        if outside:
            raise SpecError(
                f"{spec.path}: components.item_covariates {outside} are not in components.covariates"
            )
    if "acquiescence" in comp.response_style:
        mixed = [
            b for b in codebook.battery_ids if len({i.reverse for i in codebook.items if i.battery == b}) == 2
        ]
        keyed = [i.reverse for i in codebook.items if i.battery in mixed]
        if min(keyed.count(True), keyed.count(False)) < 2:
            raise SpecError(
                f'{spec.path}: components.response_style: "acquiescence" is identified by '
                "items keyed both ways in the same battery, at least two each way (with one "
                "reverse-keyed item its variance trades with that item's discrimination); "
                f"codebook {codebook.path} has {keyed.count(True)} reverse-keyed and "
                f"{keyed.count(False)} other items in such batteries: mark items asked the other "
                "way round reverse = true, or drop the style"
            )
    if "extreme" in comp.response_style and codebook.scale.n_categories < 3:
        raise SpecError(
            f'{spec.path}: components.response_style: "extreme" spreads an item\'s thresholds '
            f"around their centre, and codebook {codebook.path}'s scale has two categories (one "
            "threshold): drop the style"
        )
    known_q = [q.id for q in codebook.multiple_response]
    if comp.multiple_response is True and not known_q:
        raise SpecError(
            f"{spec.path}: components.multiple_response = true: codebook {codebook.path} has no "
            "[[multiple_response]] question"
        )
    if isinstance(comp.multiple_response, tuple):
        bad = [q for q in comp.multiple_response if q not in known_q]
        if bad:
            raise SpecError(
                f"{spec.path}: components.multiple_response: {bad} not in codebook {codebook.path} "
                f"(known: {known_q})"
            )


def load_inputs(spec: ModelSpec, root: Path | str = ".") -> SurveyData:
    """The codebook and survey file a spec's ``[inputs]`` name, read and validated."""
    root = Path(root)
    return load_survey(root / spec.data, load_codebook(root / spec.codebook))
