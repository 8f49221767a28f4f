"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023).

For a model spec at a chosen survey size: draw S parameter sets from the prior and a survey
from each (one prior-predictive call), fit each survey, and record the rank of each true
value among L thinned posterior draws: every scalar parameter, the first and last element
of larger ones, and derived quantities (log-likelihood of the simulated survey, each item's
expected support share). Under a correct model and sampler, ranks are uniform.

The model is compiled once per worker process and each fit swaps in its survey
(``nutpie``'s ``with_data``). One JSON file per simulation under
``models/<name>/sbc/<study>/`` makes an interrupted study resume where it stopped. Fits run
on Dask: a ``LocalCluster`` by default, or an existing scheduler given by its address.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
from scipy import stats

from scsurvey.core import dims
from scsurvey.core.defaults import DRAWS, SBC
from scsurvey.core.dims import OBSERVED
from scsurvey.core.logs import quiet_libraries
from scsurvey.inference import rank_diagnostics
from scsurvey.inference.diagnostics import sbc_converged
from scsurvey.inference.rounds import (
    Judgement,
    compile_nutpie,
    next_round,
    round_seed,
    sample_in_rounds,
    sample_nutpie,
    swap_data,
    use_device,
)
from scsurvey.model.graph import RAW, answer_data, build, centering_data
from scsurvey.model.likelihood import ordinal_logp, support_share
from scsurvey.model.parameterisation import resolve
from scsurvey.model.spec import ModelSpec, SpecError, load_inputs, load_spec
from scsurvey.model.styles import NONRESPONSE
from scsurvey.posterior.predictive import PRIOR_COMPILE
from scsurvey.report.sbc_page import write_page
from scsurvey.storage.files import write_json_atomic

SMALL_VARIABLE = 6  # variables with at most this many elements are ranked whole
# corr_matrix: constant diagonal, duplicate triangle (partial_corr01 carries it); *_raw: its
# meaning moves with the centring weight chosen per survey (g itself is ranked)
SKIPPED = ("corr_matrix", *RAW)
DERIVED = ("loglik", "support")
FAMILY_ALPHA = 0.05  # family-wise false-alarm rate of the pass/fail verdicts


@dataclass(frozen=True)
class Settings:
    """What defines a study; changing any of it starts a new one."""

    model: str
    n_sims: int = SBC.n_sims
    n_respondents: int = SBC.n_respondents
    draws: int = SBC.draws
    tune: int = SBC.tune
    chains: int = SBC.chains
    thin_to: int = SBC.thin_to  # L
    seed: int = SBC.seed
    rounds: int = SBC.rounds  # sampling rounds at most per simulation
    backend: str | None = None  # nutpie backend; None: the spec's
    prior_overrides: tuple = ()  # simulate from other priors than the fitting model's

    def key(self, spec_hash: str, data_hash: str) -> str:
        content = json.dumps(
            {**asdict(self), "n_sims": None, "spec": spec_hash, "data": data_hash}, sort_keys=True
        )
        return hashlib.sha256(content.encode()).hexdigest()[:12]


def quantities(posterior_like: dict[str, np.ndarray]) -> list[tuple[str, tuple]]:
    """(variable, index) pairs ranked: small variables whole, first and last of the rest."""
    out = []
    for name, value in posterior_like.items():
        if name in SKIPPED:
            continue
        value = np.asarray(value)
        if value.size <= SMALL_VARIABLE:
            out += [(name, idx) for idx in np.ndindex(value.shape)]
        else:
            out += [(name, (0,) * value.ndim), (name, tuple(s - 1 for s in value.shape))]
    return out


def label(name: str, idx: tuple) -> str:
    return f"{name}[{','.join(map(str, idx))}]" if idx else name


class Derived:
    """Compiled derived quantities: log-likelihood of a survey and expected support shares."""

    def __init__(self, built, spec: ModelSpec, support: tuple[bool, ...]):
        model = built.model
        # partially centred blocks enter as the parameter, not the raw variable, whose
        # meaning depends on the centring weight
        given = [rv for rv in model.free_RVs if rv.name not in RAW]
        given += [model[v] for raw, v in RAW.items() if raw in model.named_vars]
        self.names = [v.name for v in given]
        inputs = {v: v.type() for v in given}
        eta, cuts = pytensor.clone_replace([built.eta, built.cuts], inputs)
        y = pt.lmatrix(OBSERVED)
        loglik = ordinal_logp(y, eta, cuts, spec.link).sum()
        share = support_share(eta, cuts, support, spec.link).mean(axis=0)
        self.fn = pytensor.function([*inputs.values(), y], [loglik, share], on_unused_input="ignore")

    def __call__(self, values: dict[str, np.ndarray], y: np.ndarray) -> dict[str, np.ndarray]:
        args = [np.require(values[n], requirements=["C", "A"]) for n in self.names]
        loglik, share = self.fn(*args, np.require(y, np.int64, ["C", "A"]))
        return {"loglik": np.asarray(loglik), "support": np.asarray(share)}


_WORKER_CACHE: dict = {}


def _prepare(settings: Settings, root: str):
    """Spec, data subset, fitting model (compiled once per process) and derived function."""
    key = (settings.model, settings.n_respondents, root, settings.prior_overrides)
    if key in _WORKER_CACHE:
        return _WORKER_CACHE[key]
    spec = load_spec(Path(root) / "models" / f"{settings.model}.toml")
    data = load_inputs(spec, root)
    rows = np.sort(
        np.random.default_rng(settings.seed).choice(data.n_respondents, settings.n_respondents, replace=False)
    )
    data = data.subset(rows)
    built = build(spec, data)
    prepared = {
        "spec": spec,
        "data": data,
        "built": built,
        "derived": Derived(built, spec, data.codebook.scale.support_mask),
        "compiled": None,
    }
    _WORKER_CACHE[key] = prepared
    return prepared


def simulate(settings: Settings, root: str) -> tuple[list[dict], np.ndarray]:
    """Draw S parameter sets from the prior and a survey from each.

    Missing cells of the real survey stay missing in every simulated one; with informative
    non-response the simulated non-answers are missing instead.

    Returns
    -------
    truths : list of dict
        Per simulation, every posterior variable's true value.
    surveys : ndarray, shape (S, respondent, item)
    """
    p = _prepare(settings, root)
    spec, data = p["spec"], p["data"]
    sim_spec = spec
    if settings.prior_overrides:
        priors = {k: dict(v) for k, v in spec.priors.items()}
        for param, field, value in settings.prior_overrides:
            priors[param][field] = value
        sim_spec = spec.replace(priors=priors)
    sim_model = build(sim_spec, data).model
    prior = pm.sample_prior_predictive(
        settings.n_sims, model=sim_model, random_seed=settings.seed, compile_kwargs=PRIOR_COMPILE
    )
    post_vars = [v for v in prior.prior.data_vars]
    surveys = prior.prior_predictive[OBSERVED].values[0].astype(np.int64)
    if NONRESPONSE in prior.prior_predictive:  # informative: the model says which are missing
        surveys[prior.prior_predictive[NONRESPONSE].values[0] == 1] = -1
    else:
        surveys[:, ~data.mask] = -1
    truths = [{v: prior.prior[v].values[0, s] for v in post_vars} for s in range(settings.n_sims)]
    return truths, surveys


def _rank(draws: np.ndarray, true: float, rng) -> int:
    below = np.sum(draws < true)
    ties = np.sum(draws == true)
    return int(below + rng.integers(0, ties + 1)) if ties else int(below)


def _worst(idata, ranked) -> tuple[float, float, str]:
    """Largest R-hat and smallest bulk ESS over the ranked quantities present in ``idata``,
    and the quantity with the largest R-hat."""
    found = rank_diagnostics.diagnostics(idata.posterior)
    rhat, ess = found["rhat"], found["ess_bulk"]
    worst_rhat, worst_ess, where = 0.0, np.inf, ""
    for name, idx in ranked:
        if name not in rhat:
            continue
        r, e = float(rhat[name].values[idx]), float(ess[name].values[idx])
        if np.isfinite(r) and r > worst_rhat:
            worst_rhat, where = r, label(name, idx)
        worst_ess = min(worst_ess, e) if np.isfinite(e) else worst_ess
    return worst_rhat, worst_ess, where


@dataclass(frozen=True)
class ConvergedRule:
    """An SBC simulation's stopping rule: converged by :func:`sbc_converged` over the ranked
    quantities; after divergences a fresh run at a higher target_accept, as a reported fit."""

    ranked: list

    def judge(self, idata) -> Judgement:
        worst_rhat, worst_ess, worst_var = _worst(idata, self.ranked)
        divergences = int(idata.sample_stats["diverging"].sum())
        converged = sbc_converged(worst_rhat, divergences)
        record = {"max_rhat": worst_rhat, "max_rhat_var": worst_var, "min_ess_bulk": worst_ess}
        verdict = "converged" if converged else f"max R-hat {worst_rhat:.3f}, {divergences} divergences"
        return Judgement(converged, verdict, record, None, divergences)

    def plan(self, judgement: Judgement, chains: int, draws: int, target_accept: float):
        action, target_accept = next_round(judgement.divergences, target_accept)
        return action, target_accept, draws


def _compiled_for(p: dict, settings: Settings, survey: np.ndarray) -> tuple[object, bool]:
    """The worker's compiled model (compiled once per process) with this survey swapped in."""
    spec = p["spec"]
    compiled_here = p["compiled"] is None
    if compiled_here:
        backend = settings.backend or spec.sampler.nutpie_backend
        if backend == "jax":
            use_device(spec.sampler.device)
        p["compiled"] = compile_nutpie(p["built"].model, backend, swappable=True)
    cb = p["data"].codebook
    swap = answer_data(survey, cb, p["built"].model)
    # the weights the fit of this survey would choose
    centering = resolve(spec.centering, survey, cb.item_battery_index, cb.scale.n_categories, spec.priors)
    swap.update(centering_data(centering, cb, p["built"].model))
    return swap_data(p["compiled"], swap), compiled_here


def _ranks(
    p: dict, settings: Settings, sim: int, truth: dict, survey: np.ndarray, idata
) -> tuple[dict, dict]:
    """Each true value's rank among ``settings.thin_to`` thinned draws, parameters and
    derived quantities, with the true values."""
    post = idata.posterior.stack({dims.STACKED: dims.SAMPLE}).transpose(dims.STACKED, ...)
    n = post.sizes[dims.STACKED]
    keep = np.linspace(0, n - 1, settings.thin_to).round().astype(int)
    rng = np.random.default_rng(sim)
    ranks, trues = {}, {}
    for name, idx in quantities({k: v for k, v in truth.items() if k in post}):
        draws = post[name].values[(slice(None), *idx)][keep]
        true = float(np.asarray(truth[name])[idx])
        ranks[label(name, idx)] = _rank(draws, true, rng)
        trues[label(name, idx)] = true
    derived = p["derived"]
    true_derived = derived(truth, survey)
    per_draw = [derived({k: post[k].values[s] for k in derived.names}, survey) for s in keep]
    for q in DERIVED:
        values = np.stack([d[q] for d in per_draw]).reshape(len(keep), -1)
        true_q = np.atleast_1d(true_derived[q])
        for j, t in enumerate(true_q):
            key = q if true_q.size == 1 else f"{q}[{p['data'].codebook.item_ids[j]}]"
            ranks[key] = _rank(values[:, j], float(t), rng)
            trues[key] = float(t)
    return ranks, trues


def fit_one(settings: Settings, root: str, sim: int, truth: dict, survey: np.ndarray, out: str) -> dict:
    """Fit one simulated survey and write its ranks to ``out`` (one JSON file)."""
    p = _prepare(settings, root)
    compiled, compiled_here = _compiled_for(p, settings, survey)
    sampler = replace(
        p["spec"].sampler, draws=settings.draws, tune=settings.tune, chains=settings.chains, cores=1
    )
    result = sample_in_rounds(
        lambda seed, target_accept, draws: sample_nutpie(
            compiled, replace(sampler, target_accept=target_accept, draws=draws), progress=False, seed=seed
        ),
        ConvergedRule(quantities({k: v for k, v in truth.items() if k not in DERIVED})),
        chains=sampler.chains,
        draws=sampler.draws,
        tune=sampler.tune,
        target_accept=sampler.target_accept,
        seed_of=lambda k: round_seed(settings.seed * 100_003 + sim, k),
        max_rounds=settings.rounds,
    )
    idata, last = result.idata, result.rounds[-1]
    ranks, trues = _ranks(p, settings, sim, truth, survey, idata)
    record = {
        "sim": sim,
        "wall_s": result.sample_s,
        "pit_p": rest_pit_pvalues(idata, p["data"], survey),
        "ranks": ranks,
        "true": trues,
        "max_rhat": last["max_rhat"],
        "max_rhat_var": last["max_rhat_var"],
        "min_ess_bulk": last["min_ess_bulk"],
        "divergences": result.last.divergences,
        "converged": result.last.settled,
        "rounds": len(result.rounds),
        "target_accept": last["target_accept"],
        "L": settings.thin_to,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "compiled": compiled_here,
    }
    write_json_atomic(record, Path(out))
    return record


def rest_pit_pvalues(idata, data, survey: np.ndarray, max_draws: int = DRAWS.sbc_pit) -> dict[str, float]:
    """Per item, the p-value of the calibrated PIT check (answers given the respondent's
    others, :func:`scsurvey.posterior.checks.randomized_pit`) on one simulated survey and its fit.

    Under a correct model about 5% of them fall below 0.05: the study measures the check's
    false-alarm rate on fits, not on the true parameters.
    """
    import arviz as az

    from scsurvey.posterior.checks import randomized_pit
    from scsurvey.posterior.integrated_likelihood import add_integrated
    from scsurvey.posterior.predictive import observed_dataset, survey_constants

    full = az.InferenceData(
        posterior=idata.posterior,
        observed_data=observed_dataset(data, survey),
        constant_data=survey_constants(data),
    )
    add_integrated(full, max_draws)
    return randomized_pit(full)["p_item"].to_dict()


def _client(scheduler: str | None, workers: int | None):
    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers. That also switches off
    # glibc's adaptive mmap threshold, so every large temporary of the compiled log-density
    # is mmap'd and unmapped again, and every simulation is much slower (docs/performance.md).
    # None unsets it; a value in the user's own environment still wins.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    return Client(cluster), cluster


def study_dir(settings: Settings, root: Path | str) -> Path:
    p = _prepare(settings, str(root))
    spec_hash = p["spec"].hash()
    return Path(root) / "models" / settings.model / "sbc" / settings.key(spec_hash, p["data"].data_hash)


def run(
    settings: Settings,
    root: Path | str = ".",
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Run (or resume) a study; returns its folder of per-simulation files.

    Parameters
    ----------
    settings : Settings
    root : Path or str
        Project root.
    scheduler : str, optional
        Address of an existing Dask scheduler; default a LocalCluster over the cores.
    workers : int, optional
        LocalCluster workers (default: one per core).
    progress : bool
        Show a progress bar counting finished simulations.
    """
    from dask.distributed import as_completed
    from tqdm import tqdm

    root = str(Path(root).resolve())
    spec = load_spec(Path(root) / "models" / f"{settings.model}.toml")
    if spec.components.multiple_response:
        raise SpecError(
            f"{spec.path}: components.multiple_response: SBC of the reasons is not built (its "
            "simulated surveys would keep the file's reasons); run it on the spec without them"
        )
    folder = study_dir(settings, root)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic({**asdict(settings), "root": root}, folder / "study.json")
    todo = [s for s in range(settings.n_sims) if not (folder / f"sim_{s:04d}.json").exists()]
    if not todo:
        return folder
    truths, surveys = simulate(settings, root)
    client, cluster = _client(scheduler, workers)
    client.run(quiet_libraries, root)  # the workers' library notices to the log as the CLI's
    try:
        futures = [
            client.submit(
                fit_one,
                settings,
                root,
                s,
                truths[s],
                surveys[s],
                str(folder / f"sim_{s:04d}.json"),
                pure=False,
                key=f"sbc-{folder.name}-{s}",
            )
            for s in todo
        ]
        bar = tqdm(
            total=settings.n_sims,
            initial=settings.n_sims - len(todo),
            disable=not progress,
            desc=f"SBC {settings.model}",
            unit="sim",
        )
        for future in as_completed(futures):
            future.result()
            bar.update()
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return folder


def load_results(folder: Path | str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ranks (simulation x quantity) and per-simulation diagnostics of a study."""
    records = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("sim_*.json"))]
    if not records:
        raise FileNotFoundError(f"{folder}: no simulation results")
    ranks = pd.DataFrame([r["ranks"] for r in records], index=[r["sim"] for r in records])
    diag = pd.DataFrame(
        [
            {
                **{
                    k: r[k] for k in ("sim", "wall_s", "max_rhat", "min_ess_bulk", "divergences", "converged")
                },
                "rounds": r.get("rounds", 1),
            }
            for r in records
        ]
    ).set_index("sim")
    ranks.attrs["L"] = records[0]["L"]
    pit = [p for r in records for p in r.get("pit_p", {}).values()]
    # the calibrated PIT check's false-alarm rate over every simulated survey and item
    ranks.attrs["pit_reject_rate"] = float(np.mean(np.array(pit) < 0.05)) if pit else float("nan")
    ranks.attrs["pit_tests"] = len(pit)
    return ranks, diag


def pit_values(ranks: pd.Series, L: int, seed: int = 0) -> np.ndarray:
    """Ranks in 0..L jittered to exactly uniform values on (0, 1) under calibration."""
    jitter = np.random.default_rng(seed).random(len(ranks))
    return (ranks.to_numpy() + jitter) / (L + 1)


def ecdf_band(n: int, prob: float, points: int = 100):
    """Simultaneous ECDF band of n uniform values (Säilynoja, Bürkner and Vehtari 2022)."""
    from arviz.stats.ecdf_utils import ecdf_confidence_band

    x = np.linspace(0, 1, points + 1)[1:-1]
    lower, upper = ecdf_confidence_band(n, x, x, prob=prob, method="optimized")
    return x, lower, upper


def summarize(ranks: pd.DataFrame, diag: pd.DataFrame) -> pd.DataFrame:
    """Uniformity per quantity: chi-square p-value and simultaneous ECDF band test.

    A quantity fails when its ECDF leaves the simultaneous band at level
    1 - FAMILY_ALPHA / (2 x number of quantities) or its chi-square p-value is below
    FAMILY_ALPHA / (2 x number of quantities): Bonferroni over both tests and all
    quantities, so a correct model fails any quantity in at most 5% of studies. (Each test
    at FAMILY_ALPHA / (number of quantities) made that about 10%.)
    """
    L = ranks.attrs["L"]
    n_q = ranks.shape[1]
    # two tests per quantity, Bonferroni over both and over the quantities
    per_test = FAMILY_ALPHA / (2 * n_q)
    level = 1 - per_test
    x, lower, upper = ecdf_band(len(ranks), level)
    bins = max(2, min(20, len(ranks) // 5))
    rows = []
    for q in ranks.columns:
        u = pit_values(ranks[q], L)
        ecdf = (u[None, :] <= x[:, None]).mean(axis=1)
        outside = bool(((ecdf < lower) | (ecdf > upper)).any())
        counts = np.histogram(u, np.linspace(0, 1, bins + 1))[0]
        p = float(stats.chisquare(counts).pvalue)
        rows.append(
            {
                "quantity": q,
                "n": len(u),
                "mean_rank": float(u.mean()),
                "p_chisq": p,
                "outside_band": outside,
                "verdict": "fail" if outside or p < per_test else "pass",
            }
        )
    table = pd.DataFrame(rows).set_index("quantity")
    table.attrs.update(
        {
            "level": level,
            "nonconverged": int((~diag["converged"]).sum()),
            "n_sims": len(ranks),
            "L": L,
            "divergent_sims": int((diag["divergences"] > 0).sum()),
            "pit_reject_rate": ranks.attrs.get("pit_reject_rate", float("nan")),
            "pit_tests": ranks.attrs.get("pit_tests", 0),
        }
    )
    return table


def run_study(
    model: str,
    root: Path | str = ".",
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    **overrides,
) -> pd.DataFrame:
    """Run or resume a study, summarise it, and write ``reports/<model>/sbc/index.html``.

    Parameters
    ----------
    model : str
        Spec name.
    root : Path or str
        Project root.
    scheduler : str, optional
        Address of an existing Dask scheduler; default a LocalCluster over the cores.
    workers : int, optional
        LocalCluster workers (default: one per core).
    progress : bool
        Show a progress bar.
    **overrides
        Fields of :class:`Settings` (``n_sims``, ``n_respondents``, ``draws``, ...); the
        rest keep :class:`Settings`' defaults, the one place they are set.

    Returns
    -------
    pandas.DataFrame
        Per quantity: mean PIT, chi-square p-value, ECDF band test, verdict, on all fits and
        on the converged fits alone.
    """
    unknown = sorted(set(overrides) - set(Settings.__dataclass_fields__))
    if unknown:
        raise TypeError(f"unknown SBC settings {unknown} (known: {sorted(Settings.__dataclass_fields__)})")
    settings = Settings(model=model, **{k: v for k, v in overrides.items() if v is not None})
    prior_overrides = settings.prior_overrides
    t0 = time.perf_counter()
    folder = run(settings, root, scheduler, workers, progress)
    summary, ranks, diag = study_summary(folder)
    summary.attrs["study_wall_s"] = time.perf_counter() - t0
    suffix = "" if not prior_overrides else "-mismatched"
    pit = pd.DataFrame({q: pit_values(ranks[q], ranks.attrs["L"]) for q in ranks.columns})
    band = ecdf_band(len(ranks), 0.95)
    write_page(model, folder, summary, pit, band, diag, Path(root) / "reports" / model / f"sbc{suffix}")
    return summary


def study_summary(folder: Path | str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The summary of the study in ``folder`` (:func:`summarize`, with :func:`side_by_side`'s
    verdicts on the converged fits), and its ranks and diagnostics (:func:`load_results`)."""
    ranks, diag = load_results(folder)
    return side_by_side(summarize(ranks, diag), ranks, diag), ranks, diag


def side_by_side(summary: pd.DataFrame, ranks: pd.DataFrame, diag: pd.DataFrame) -> pd.DataFrame:
    """The all-fits summary with the verdicts on the converged fits alone beside it.

    Dropping unconverged fits conditions on the data, which can itself bend the ranks; both
    views are shown so that neither the dropping nor the unconverged fits hide a failure.
    """
    converged = diag.index[diag["converged"]]
    out = summary.copy()
    if 0 < len(converged) < len(diag):
        sub = ranks.loc[converged]
        sub.attrs = ranks.attrs
        conv = summarize(sub, diag.loc[converged])
        out["p_chisq_converged"] = conv["p_chisq"]
        out["verdict_converged"] = conv["verdict"]
    else:
        out["p_chisq_converged"] = out["p_chisq"]
        out["verdict_converged"] = out["verdict"]
    out.attrs = {
        **summary.attrs,
        "converged_sims": len(converged),
        "extra_round_sims": int((diag["rounds"] > 1).sum()),
    }
    return out
