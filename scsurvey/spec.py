"""Model specifications: ``models/<name>.toml``.

A spec names the codebook and data file, the link, which model components are on, prior
overrides, sampler settings and the seed. Variants of the model are specs, not code forks.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .centering import BLOCKS, DEFAULTS, parse_setting
from .likelihood import LINKS
from .priors import merge_priors

SAMPLERS = ("nutpie", "pymc", "numpyro")
NUTPIE_BACKENDS = ("numba", "jax")


class SpecError(ValueError):
    """A model spec is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Components:
    covariates: bool | tuple[str, ...] = False
    groups: tuple[str, ...] = ()
    item_covariates: tuple[str, ...] = ()
    correlated: bool = False


@dataclass(frozen=True)
class Sampler:
    name: str = "nutpie"
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    seed: int = 20200101
    target_accept: float = 0.8
    nutpie_backend: str = "jax"
    low_rank: bool = False
    cores: int = 2
    # sample until clean: at most `rounds` sampling rounds in all (each adds `chains` chains
    # of `draws` draws), and no new round once `budget_s` seconds of sampling are spent
    rounds: int = 3
    budget_s: float = 900.0


@dataclass(frozen=True)
class Output:
    prior_draws: int = 500


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec. Paths are relative to the project root."""

    name: str
    codebook: str
    data: str
    link: str = "logit"
    description: str = ""
    components: Components = field(default_factory=Components)
    priors: dict = field(default_factory=dict)
    centering: dict = field(default_factory=lambda: dict(DEFAULTS))
    sampler: Sampler = field(default_factory=Sampler)
    output: Output = field(default_factory=Output)
    path: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        """SHA-256 of everything that changes the posterior (not the description or path)."""
        content = self.as_dict()
        for key in ("description", "path", "name"):
            content.pop(key)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def replace(self, **changes) -> ModelSpec:
        """A copy with top-level fields (or ``sampler=dict(...)`` updates) changed."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if "sampler" in changes and isinstance(changes["sampler"], dict):
            changes["sampler"] = Sampler(**{**asdict(self.sampler), **changes["sampler"]})
        d.update(changes)
        return ModelSpec(**d)


def _check_keys(table: dict, cls, source: str, prefix: str):
    allowed = set(cls.__dataclass_fields__)
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SpecError(
            f"{source}: unknown keys {[prefix + k for k in unknown]} (allowed: {sorted(allowed)})"
        )


def _typed(value, kind, source, key):
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise SpecError(f"{source}: {key} = {value!r}: expected {getattr(kind, '__name__', kind)}")
    return value


def parse_spec(raw: dict, name: str, source: str = "<memory>") -> ModelSpec:
    """Validate a spec given as a dict.

    Parameters
    ----------
    raw : dict
        The TOML content.
    name : str
        The model name (the spec's file stem).
    source : str
        For error messages.

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        Naming the file and the offending key.
    """
    top = {
        "codebook",
        "data",
        "link",
        "description",
        "components",
        "priors",
        "centering",
        "sampler",
        "output",
    }
    unknown = sorted(set(raw) - top)
    if unknown:
        raise SpecError(f"{source}: unknown keys {unknown} (allowed: {sorted(top)})")
    for key in ("codebook", "data"):
        if key not in raw:
            raise SpecError(f"{source}: missing required key {key!r}")
        _typed(raw[key], str, source, key)
    link = raw.get("link", "logit")
    if link not in LINKS:
        raise SpecError(f"{source}: link = {link!r}: expected one of {LINKS}")

    comp = dict(raw.get("components", {}))
    _check_keys(comp, Components, source, "components.")
    cov = comp.get("covariates", False)
    if not isinstance(cov, bool):
        cov = tuple(_typed(c, str, source, "components.covariates[]") for c in cov)
    components = Components(
        covariates=cov,
        groups=tuple(comp.get("groups", ())),
        item_covariates=tuple(comp.get("item_covariates", ())),
        correlated=_typed(comp.get("correlated", False), bool, source, "components.correlated"),
    )
    if components.item_covariates and components.covariates is False:
        raise SpecError(f"{source}: components.item_covariates needs components.covariates")

    samp = dict(raw.get("sampler", {}))
    _check_keys(samp, Sampler, source, "sampler.")
    sampler = Sampler(**samp)
    if sampler.name not in SAMPLERS:
        raise SpecError(f"{source}: sampler.name = {sampler.name!r}: expected one of {SAMPLERS}")
    if sampler.nutpie_backend not in NUTPIE_BACKENDS:
        raise SpecError(
            f"{source}: sampler.nutpie_backend = {sampler.nutpie_backend!r}: "
            f"expected one of {NUTPIE_BACKENDS}"
        )
    for key in ("chains", "draws", "tune", "seed", "cores", "rounds"):
        if _typed(getattr(sampler, key), int, source, f"sampler.{key}") < (0 if key == "seed" else 1):
            raise SpecError(f"{source}: sampler.{key} = {getattr(sampler, key)}: must be positive")
    for key in ("target_accept", "budget_s"):
        _typed(getattr(sampler, key), int | float, source, f"sampler.{key}")
    if not sampler.budget_s > 0:
        raise SpecError(f"{source}: sampler.budget_s = {sampler.budget_s}: must be positive")
    if not 0.5 <= float(sampler.target_accept) < 1:
        raise SpecError(f"{source}: sampler.target_accept = {sampler.target_accept}: not in [0.5, 1)")

    cent = dict(raw.get("centering", {}))
    unknown = sorted(set(cent) - set(BLOCKS))
    if unknown:
        raise SpecError(
            f"{source}: unknown keys {['centering.' + k for k in unknown]} (allowed: {list(BLOCKS)})"
        )
    try:
        centering = {**DEFAULTS, **{k: parse_setting(v, source, f"centering.{k}") for k, v in cent.items()}}
    except ValueError as err:
        raise SpecError(err.args[0]) from None

    out = dict(raw.get("output", {}))
    _check_keys(out, Output, source, "output.")
    try:
        priors = merge_priors(raw.get("priors"), source)
    except KeyError as err:
        raise SpecError(err.args[0]) from None
    return ModelSpec(
        name=name,
        codebook=raw["codebook"],
        data=raw["data"],
        link=link,
        description=raw.get("description", ""),
        components=components,
        priors=priors,
        centering=centering,
        sampler=sampler,
        output=Output(**out),
        path=source,
    )


def load_spec(path: Path | str) -> ModelSpec:
    """Read ``models/<name>.toml``; a bad spec fails with a message naming the key."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: model spec not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}") from err
    return parse_spec(raw, path.stem, str(path))


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
