"""`make bench`: the model against a naive baseline, fit time against survey size, and the
approximate mode (mean-field ADVI) beside NUTS.

The baseline is the same model written the straightforward way: long format (one row per
observed answer), index gathers, ``pm.OrderedLogistic``, all item parameters centred, and
PyMC's own NUTS. Numbers go to the terminal and to ``reports/bench/bench.json``; nothing
here asserts a time.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt

from scsurvey.core import dims
from scsurvey.inference.diagnostics import diagnose
from scsurvey.inference.rounds import sample
from scsurvey.inputs.codebook import load_codebook
from scsurvey.inputs.survey import SurveyData
from scsurvey.model.graph import build, covariate_columns, sd_prior
from scsurvey.model.spec import ModelSpec, load_inputs, load_spec
from scsurvey.storage.files import write_json_atomic


def _long_format(spec: ModelSpec, data: SurveyData):
    """What a long-format model needs: codebook, priors, battery of each item, the observed
    answers' respondent and item indices and values, covariate columns, coordinates."""
    resp, item = np.nonzero(data.mask)
    keep = (dims.ITEM, dims.BATTERY, dims.GAP, dims.RESPONDENT)
    return (
        data.codebook,
        spec.priors,
        np.array(data.codebook.item_battery_index),
        resp,
        item,
        data.responses[resp, item].astype(int),
        covariate_columns(spec, data),
        {k: v for k, v in data.coords().items() if k in keep},
    )


def naive_model(spec: ModelSpec, data: SurveyData) -> pm.Model:
    """The `full` model in long format with gathers and pm.OrderedLogistic (the baseline)."""
    cb, p, b_of, resp, item, y, cols, coords = _long_format(spec, data)
    with pm.Model(coords=coords) as model:
        mu_alpha = pm.Normal("mu_alpha", p["mu_alpha"]["mu"], p["mu_alpha"]["sigma"], dims=dims.BATTERY)
        sigma_alpha = sd_prior("sigma_alpha", p["sigma_alpha"], dims.BATTERY)
        alpha = pm.Normal("alpha", mu_alpha[b_of], sigma_alpha[b_of], dims=dims.ITEM)
        gbar = pm.Normal("gbar", p["gbar"]["mu"], p["gbar"]["sigma"], dims=(dims.BATTERY, dims.GAP))
        sigma_g = sd_prior("sigma_g", p["sigma_g"], dims.BATTERY)
        g = pm.Normal("g", gbar[b_of], sigma_g[b_of][:, None], dims=(dims.ITEM, dims.GAP))
        cuts = pt.concatenate([alpha[:, None], alpha[:, None] + pt.cumsum(pt.exp(g), axis=1)], axis=1)
        lam = pt.exp(pm.Normal("a", 0.0, p["a"]["sigma"], dims=dims.ITEM))
        z = pm.Normal("z_respondent", 0.0, 1.0, dims=(dims.RESPONDENT, dims.BATTERY))
        theta = z
        if spec.components.correlated and len(cb.batteries) > 1:
            # unit residual variances, as in the model: an LKJ correlation matrix
            corr = pm.LKJCorr("corr", n=len(cb.batteries), eta=p["corr"]["eta"], return_matrix=True)
            chol = pt.linalg.cholesky(corr)
            theta = z @ chol.T
        if cols:
            beta = pm.Normal("beta", 0.0, p["beta"]["sigma"], shape=(len(cb.batteries), len(cols)))
            theta = theta + data.X[:, cols] @ beta.T
        for gid in spec.components.groups:
            n_levels = len(cb.group(gid).levels)
            sigma = sd_prior(f"sigma_{gid}", p["sigma_group"], dims.BATTERY)
            u = pm.Normal(f"u_{gid}", 0.0, sigma[:, None], shape=(len(cb.batteries), n_levels))
            theta = theta + u[:, data.groups[gid]].T
        eta = lam[item] * theta[resp, b_of[item]]
        if spec.components.item_covariates:
            dev = [
                k for k in cols if data.covariate_names[k].split("[")[0] in spec.components.item_covariates
            ]
            tau = pm.HalfNormal("tau_item", p["tau_item"]["sigma"], shape=(len(cb.batteries), len(dev)))
            delta = pm.Normal("delta", 0.0, tau[b_of].T, shape=(len(dev), len(cb.items)))
            eta = eta + (data.X[resp][:, dev] * delta[:, item].T).sum(axis=1)
        # compute_p=False: the default also stores every answer's category probabilities
        # (4,800 draws x 15,249 x 5, 2.9 GB), a cost of the storage and not of the sampler
        pm.OrderedLogistic("y", eta=eta, cutpoints=cuts[item], observed=y, compute_p=False)
    return model


def plain_model(spec: ModelSpec, data: SurveyData) -> pm.Model:
    """The `full` model as a careful user would write it by hand in PyMC: long format,
    ``pm.OrderedLogistic``, every pooled block non-centred, zero-sum group intercepts.

    It differs from the project's model only in what the project adds: no dense
    respondent x item likelihood, no centring chosen from the data, no flat-index thresholds.
    """
    cb, p, b_of, resp, item, y, cols, coords = _long_format(spec, data)
    nb = len(cb.batteries)
    with pm.Model(coords=coords) as model:
        mu_alpha = pm.Normal("mu_alpha", p["mu_alpha"]["mu"], p["mu_alpha"]["sigma"], dims=dims.BATTERY)
        sigma_alpha = sd_prior("sigma_alpha", p["sigma_alpha"], dims.BATTERY)
        alpha_z = pm.Normal("alpha_z", 0.0, 1.0, dims=dims.ITEM)
        alpha = pm.Deterministic("alpha", mu_alpha[b_of] + sigma_alpha[b_of] * alpha_z, dims=dims.ITEM)
        gbar = pm.Normal("gbar", p["gbar"]["mu"], p["gbar"]["sigma"], dims=(dims.BATTERY, dims.GAP))
        sigma_g = sd_prior("sigma_g", p["sigma_g"], dims.BATTERY)
        g_z = pm.Normal("g_z", 0.0, 1.0, dims=(dims.ITEM, dims.GAP))
        g = gbar[b_of] + sigma_g[b_of][:, None] * g_z
        cuts = pt.concatenate([alpha[:, None], alpha[:, None] + pt.cumsum(pt.exp(g), axis=1)], axis=1)
        lam = pt.exp(pm.Normal("a", 0.0, p["a"]["sigma"], dims=dims.ITEM))
        theta = pm.Normal("z_respondent", 0.0, 1.0, dims=(dims.RESPONDENT, dims.BATTERY))
        if spec.components.correlated and nb > 1:
            corr = pm.LKJCorr("corr", n=nb, eta=p["corr"]["eta"], return_matrix=True)
            theta = theta @ pt.linalg.cholesky(corr).T
        if cols:
            beta = pm.Normal("beta", 0.0, p["beta"]["sigma"], shape=(nb, len(cols)))
            theta = theta + data.X[:, cols] @ beta.T
        for gid in spec.components.groups:
            n_levels = len(cb.group(gid).levels)
            sigma = sd_prior(f"sigma_{gid}", p["sigma_group"], dims.BATTERY)
            z = pm.ZeroSumNormal(f"z_{gid}", 1.0, shape=(nb, n_levels))
            theta = theta + (sigma[:, None] * z)[:, data.groups[gid]].T
        eta = lam[item] * theta[resp, b_of[item]]
        if spec.components.item_covariates:
            dev = [
                k for k in cols if data.covariate_names[k].split("[")[0] in spec.components.item_covariates
            ]
            tau = pm.HalfNormal("tau_item", p["tau_item"]["sigma"], shape=(nb, len(dev)))
            delta_z = pm.Normal("delta_z", 0.0, 1.0, shape=(len(dev), len(cb.items)))
            delta = tau[b_of].T * delta_z
            eta = eta + (data.X[resp][:, dev] * delta[:, item].T).sum(axis=1)
        pm.OrderedLogistic("y", eta=eta, cutpoints=cuts[item], observed=y, compute_p=False)
    return model


def fit_plain(spec: ModelSpec, data: SurveyData, sampler: str) -> dict:
    """Fit :func:`plain_model` with ``sampler`` ("pymc": PyMC's own NUTS, or "nutpie") and
    the spec's chains, draws, tuning and target_accept, one round (a user's single run)."""
    spec = spec.replace(sampler={"name": sampler, "rounds": 1, "nutpie_backend": "numba"})
    s = sample(plain_model(spec, data), spec, progress=False, log=lambda line: None)
    return _fit_stats(s.idata, s.compile_s, s.sample_s)


def fit_bambi(spec: ModelSpec, data: SurveyData, python: str) -> dict:
    """Fit the bambi peer (:mod:`scsurvey.workflows.benchmark_bambi`) with the interpreter of the
    environment that has bambi; the batteries' times add up, their diagnostics combine."""
    import json
    import subprocess
    import tempfile

    from scsurvey.workflows.benchmark_bambi import write_inputs

    with tempfile.TemporaryDirectory() as tmp:
        write_inputs(spec, data, tmp)
        out = Path(tmp) / "out.json"
        subprocess.run([python, "-m", "scsurvey.workflows.benchmark_bambi", tmp, str(out)], check=True)
        result = json.loads(out.read_text())
    rows = result["batteries"].values()
    wall = sum(r["wall_s"] for r in rows)
    worst = min(rows, key=lambda r: r["min_ess_bulk"])
    return {
        "compile_s": 0.0,  # inside bambi's fit: counted in wall_s
        "sample_s": wall,
        "wall_s": wall,
        "min_ess_bulk": worst["min_ess_bulk"],
        "max_rhat": max(r["max_rhat"] for r in rows),
        "divergences": sum(r["divergences"] for r in rows),
        "clean": all(r["clean"] for r in rows),
        "slowest": [f"{worst['min_ess_bulk_var']} ({worst['min_ess_bulk']:.0f})"],
        "mean_leapfrog_steps": None,
        "ess_per_s": worst["min_ess_bulk"] / wall,
        "formula": result["formula"],
        "batteries": result["batteries"],
    }


def gradient_time(model: pm.Model, mode: str | None, evals: int = 200) -> tuple[float, float]:
    """(compile seconds, microseconds per logp+gradient evaluation), best of 5 batches."""
    t0 = time.perf_counter()
    fn = model.logp_dlogp_function(ravel_inputs=True, mode=mode)
    fn.set_extra_values({})
    point = model.initial_point()
    x = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars]) + 0.05
    fn(x)
    compile_s = time.perf_counter() - t0
    batch = max(1, evals // 5)
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(batch):
            fn(x)
        best = min(best, (time.perf_counter() - t) / batch)
    return compile_s, best * 1e6


def _fit_stats(idata, compile_s: float, sample_s: float) -> dict:
    d = diagnose(idata)
    ess = az.ess(idata.posterior, method="bulk")
    worst = sorted(
        ((float(np.nanmin(v.values)), k) for k, v in ess.data_vars.items() if np.isfinite(v.values).any())
    )[:3]
    return {
        "compile_s": compile_s,
        "sample_s": sample_s,
        "wall_s": compile_s + sample_s,
        "min_ess_bulk": d.min_ess_bulk,
        "max_rhat": d.max_rhat,
        "divergences": d.divergences,
        "clean": d.ok,
        "slowest": [f"{k} ({e:.0f})" for e, k in worst],
        "mean_leapfrog_steps": d.mean_leapfrog_steps,
        "ess_per_s": d.min_ess_bulk / (compile_s + sample_s),
    }


def fit_current(spec: ModelSpec, data: SurveyData, sampler: str) -> dict:
    """Fit the project's model with ``sampler`` exactly as `make fit` does."""
    s = sample(build(spec, data).model, spec.replace(sampler={"name": sampler}), progress=False)
    return _fit_stats(s.idata, s.compile_s, s.sample_s)


def fit_naive(spec: ModelSpec, data: SurveyData, chains: int | None = None, draws: int | None = None) -> dict:
    """Fit the naive baseline with PyMC's own NUTS and the same sampler settings.

    ``chains`` and ``draws`` shorten it: at the spec's length it takes well over an hour
    (docs/performance.md). A shorter run spends a larger share
    of its time tuning, which lowers its ESS/s a little and so favours the current model.
    """
    changes = {"name": "pymc"}
    if chains:
        changes["chains"] = chains
    if draws:
        changes["draws"] = draws
    spec = spec.replace(sampler=changes)
    s = sample(naive_model(spec, data), spec, progress=False)
    stats = _fit_stats(s.idata, s.compile_s, s.sample_s)
    return {**stats, "chains": spec.sampler.chains, "tune": spec.sampler.tune, "draws": spec.sampler.draws}


SECTIONS = ("gradient", "fits", "scaling", "approximate")
# The peers of "fits": the plain PyMC model under PyMC's NUTS and under nutpie, and bambi
PEERS = ("plain-pymc", "plain-nutpie", "bambi")


def compare_approximation(spec: ModelSpec, data: SurveyData, steps: int | None = None) -> dict:
    """Mean-field ADVI beside NUTS on the same data: time, PSIS k-hat, and per population-level
    variable the largest gap between the two posterior means in NUTS posterior sds and the
    ratio of posterior sds (1 when the approximation has the spread right).

    Parameters
    ----------
    spec : ModelSpec
        Fitted with its own NUTS settings, and with ``name = "advi"``.
    data : SurveyData
    steps : int, optional
        ADVI steps (default: the spec's ``vi_steps``).
    """
    model = build(spec, data).model
    nuts_result = sample(model, spec, progress=False, log=lambda line: None)
    nuts = nuts_result.idata
    advi_spec = spec.replace(sampler={"name": "advi", **({"vi_steps": steps} if steps else {})})
    advi_result = sample(model, advi_spec, progress=False, log=lambda line: None)
    advi = advi_result.idata
    rows = {}
    for name, da in nuts.posterior.data_vars.items():
        if dims.RESPONDENT in da.dims or name not in advi.posterior or name.endswith("__"):
            continue
        mean, sd = da.mean(("chain", "draw")), da.std(("chain", "draw"))
        other = advi.posterior[name]
        ok = np.asarray(sd > 1e-9)
        if not ok.any():
            continue
        z = np.abs((other.mean(("chain", "draw")) - mean) / sd).values[ok]
        ratio = (other.std(("chain", "draw")) / sd).values[ok]
        rows[name] = {
            "max_mean_gap_sd": float(z.max()),
            "sd_ratio_min": float(ratio.min()),
            "sd_ratio_median": float(np.median(ratio)),
        }
    return {
        "nuts_s": nuts_result.compile_s + nuts_result.sample_s,
        "nuts_rounds": len(nuts_result.rounds),
        "nuts_max_rhat": diagnose(nuts).max_rhat,
        "advi_s": advi_result.sample_s,
        "advi_steps": advi_spec.sampler.vi_steps,
        "psis_khat": advi_result.rounds[0]["psis_khat"],
        "variables": rows,
    }


def _row(label, r):
    if "error" in r:
        return f"  {label:<28} failed: {r['error']}"
    return (
        f"  {label:<28} wall {r['wall_s']:7.1f} s (compile {r['compile_s']:5.1f})  "
        f"min ESS {r['min_ess_bulk']:7.0f}  ESS/s {r['ess_per_s']:7.2f}  R-hat {r['max_rhat']:.3f}  "
        f"div {r['divergences']:3d}  steps {r['mean_leapfrog_steps'] or float('nan'):5.1f}  "
        f"slowest {', '.join(r['slowest'])}"
    )


def run_bench(
    root: Path | str = ".",
    model: str = "full",
    sizes=(1173, 5000, 20000, 100000),
    nuts_max: int = 5000,
    vi_steps: int = 10000,
    nuts_draws: int | None = None,
    samplers=("nutpie", "pymc", "numpyro"),
    quick: bool = False,
    naive_chains: int | None = None,
    naive_draws: int | None = None,
    sections=SECTIONS,
    naive: bool = False,
    peers_python: str | None = None,
    peers=PEERS,
) -> dict:
    """Measure and print everything `make bench` reports; write reports/bench/bench.json.

    ``sections`` picks among "gradient", "fits", "scaling" and "approximate" (all by
    default); ``sizes`` are the survey sizes of "scaling", fitted with NUTS up to ``nuts_max``
    respondents and with the approximate mode (``vi_steps`` steps) above (``nuts_draws``: draws
    per chain of the NUTS sizes in one round, a timing rather than a fit until clean); ``naive`` adds the
    naive baseline to the fits, as a footnote; ``peers`` picks among the peers of "fits"
    (:data:`PEERS`, all by default); ``peers_python`` is the interpreter of an environment
    with bambi (the bambi peer is skipped without it)."""
    for name, given, known in (("sections", sections, SECTIONS), ("peers", peers, PEERS)):
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"bench {name} {unknown}: expected some of {known}")
    root = Path(root)
    spec = load_spec(root / "models" / f"{model}.toml")
    if quick:
        spec = spec.replace(sampler={"draws": 300, "tune": 300})
    data = load_inputs(spec, root)
    out = {
        "model": model,
        "sampler_settings": asdict(spec.sampler),
        "n_respondents": data.n_respondents,
        "cores": os.cpu_count(),
        "gradient": {},
        "fits": {},
        "scaling": {},
    }

    path = root / "reports" / "bench" / "bench.json"
    if "gradient" in sections:
        _gradients(spec, data, model, out)
        write_json_atomic(out, path)  # after each section, so a stopped run keeps what it measured
    if "fits" in sections:
        _fits(spec, data, samplers, naive_chains, naive_draws, out, naive, peers_python, peers)
        write_json_atomic(out, path)
    if "scaling" in sections:
        sweep(root, model, sizes, nuts_max, out, path, vi_steps, nuts_draws)
    if "approximate" in sections:
        print(f"== approximate: mean-field ADVI beside NUTS on `{model}`, {data.n_respondents} respondents")
        r = out["approximate"] = compare_approximation(spec, data)
        print(
            f"  NUTS {r['nuts_s']:.1f} s ({r['nuts_rounds']} rounds, R-hat {r['nuts_max_rhat']:.3f}); "
            f"ADVI {r['advi_s']:.1f} s ({r['advi_steps']} steps), PSIS k-hat {r['psis_khat']:.2f}"
        )
        for name, v in r["variables"].items():
            print(
                f"  {name:<24} mean gap up to {v['max_mean_gap_sd']:5.2f} NUTS sd; "
                f"sd ratio ADVI/NUTS median {v['sd_ratio_median']:.2f} (min {v['sd_ratio_min']:.2f})"
            )
        write_json_atomic(out, path)
    print(f"-> {path}")
    return out


def _gradients(spec, data, model, out) -> None:
    print(f"== gradient (logp + gradient of `{model}`, {data.n_respondents} respondents), best of 5")
    current, naive = build(spec, data).model, naive_model(spec, data)
    graph = build(spec, data, fused=False).model  # the likelihood as a PyTensor graph
    for label, m, mode in (
        ("current / JAX", current, "JAX"),
        ("current / Numba", current, "NUMBA"),
        ("graph likelihood / Numba", graph, "NUMBA"),
        ("current / C", current, "FAST_RUN"),
        ("naive / C", naive, "FAST_RUN"),
        ("naive / JAX", naive, "JAX"),
    ):
        try:
            c, us = gradient_time(m, mode)
            out["gradient"][label] = {"compile_s": c, "us_per_eval": us}
            print(f"  {label:<18} {us:8.0f} us/eval   compile {c:5.1f} s", flush=True)
        except Exception as err:  # a backend that cannot compile is reported, not fatal
            out["gradient"][label] = {"error": repr(err)[:200]}
            print(f"  {label:<18} failed: {err!r}"[:200], flush=True)
    fused, graph = (
        out["gradient"].get("current / Numba", {}),
        out["gradient"].get("graph likelihood / Numba", {}),
    )
    if "us_per_eval" in fused and "us_per_eval" in graph:
        for key, what in (("us_per_eval", "gradient"), ("compile_s", "compile")):
            ratio = fused[key] / graph[key]
            print(f"  fused / graph likelihood, {what}: {fused[key]:.1f} / {graph[key]:.1f} = {ratio:.2f}")


def _fits(
    spec, data, samplers, naive_chains, naive_draws, out, naive=False, peers_python=None, peers=PEERS
) -> None:
    print(f"== fits: {spec.sampler.chains} chains x ({spec.sampler.tune} tune + {spec.sampler.draws} draws)")
    for sampler in samplers:
        try:
            out["fits"][f"project / {sampler}"] = r = fit_current(spec, data, sampler)
        except Exception as err:
            out["fits"][f"project / {sampler}"] = r = {"error": repr(err)[:200]}
        print(_row(f"project / {sampler}", r), flush=True)
    print(f"  peers ({', '.join(peers)}); plain PyMC is the same model written plainly but competently")
    for sampler in ("pymc", "nutpie"):
        if f"plain-{sampler}" not in peers:
            continue
        try:
            out["fits"][f"plain PyMC / {sampler}"] = r = fit_plain(spec, data, sampler)
        except Exception as err:
            out["fits"][f"plain PyMC / {sampler}"] = r = {"error": repr(err)[:200]}
        print(_row(f"plain PyMC / {sampler}", r), flush=True)
    if "bambi" in peers and not peers_python:
        print("  bambi: skipped (no environment with bambi given: make bench builds .venv-peers)")
    if "bambi" in peers and peers_python:
        try:
            out["fits"]["bambi / nutpie"] = r = fit_bambi(spec, data, peers_python)
            print(f"  bambi, per battery: {r['formula']}")
        except Exception as err:
            out["fits"]["bambi / nutpie"] = r = {"error": repr(err)[:200]}
        print(_row("bambi / nutpie", r), flush=True)
    if shutil.which("Rscript"):
        print("  brms: Rscript found, but the brms peer is not written (docs/performance.md)")
    else:
        print("  brms: skipped (no Rscript on this machine)")
    if naive:
        try:
            out["fits"]["naive / pymc"] = r = fit_naive(spec, data, naive_chains, naive_draws)
        except Exception as err:
            out["fits"]["naive / pymc"] = r = {"error": repr(err)[:200]}
        print(_row("footnote: naive / pymc", r), flush=True)
    base = out["fits"].get("project / nutpie", {}).get("ess_per_s")
    for label, r in out["fits"].items():
        if base and "ess_per_s" in r:
            r["ess_per_s_ratio_to_project"] = r["ess_per_s"] / base
            clean = "clean" if r["clean"] else "NOT clean"
            print(f"  ESS/s vs the project {label:<24} {r['ess_per_s_ratio_to_project']:6.2f}  ({clean})")


def fit_size(
    root: str, model: str, n: int, sampler: str, out_dir: str, vi_steps: int = 10000, draws: int | None = None
) -> dict:
    """One size of the sweep: the whole `make fit` (sampling, predictive draws,
    log-likelihoods, storage) of ``model`` on a twin of ``n`` respondents; with ``draws``,
    NUTS runs one round of that many draws per chain.

    Run it in a process of its own (:func:`sweep`): the peak resident memory it reports is
    that process's.
    """
    import resource

    from scsurvey.inputs.survey import prepare
    from scsurvey.posterior.assemble import fit_survey
    from scsurvey.storage.files import write_atomic
    from scsurvey.workflows.twin import make_twin

    root = Path(root)
    changes = {"name": sampler, **({"vi_steps": vi_steps} if sampler == "advi" else {})}
    if draws and sampler != "advi":
        changes.update(draws=int(draws), rounds=1)
    spec = load_spec(root / "models" / f"{model}.toml").replace(sampler=changes)
    t0 = time.perf_counter()
    twin = make_twin(root / "data/codebook/scs2020.twin.toml", root, overrides={"n": int(n)})
    data = prepare(twin.frame, load_codebook(root / spec.codebook), f"twin n={n}")
    t1 = time.perf_counter()
    idata, run = fit_survey(spec, data, progress=False)
    t2 = time.perf_counter()
    path = Path(out_dir) / f"{model}_{n}_{sampler}.nc"
    write_atomic(idata, path)
    t3 = time.perf_counter()
    d = run["diagnostics"]
    timing = run["timing_s"]
    r = {
        "n": int(n),
        "sampler": sampler,
        "simulate_s": t1 - t0,
        "fit_s": t2 - t1,
        "write_s": t3 - t2,
        "wall_s": t3 - t1,
        **{f"{k}": v for k, v in timing.items()},
        "rounds": len(run["rounds"]),
        "draws": spec.sampler.draws,
        "mean_leapfrog_steps": d["mean_leapfrog_steps"],
        "min_ess_bulk": d["min_ess_bulk"],
        "max_rhat": d["max_rhat"],
        "divergences": d["divergences"],
        "clean": run["diagnostics_ok"],
        "ess_per_s": run["ess_per_second"] if sampler != "advi" else None,
        "psis_khat": run["rounds"][0].get("psis_khat") if sampler == "advi" else None,
        "vi_steps": spec.sampler.vi_steps if sampler == "advi" else None,
        "file_mb": path.stat().st_size / 1e6,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }
    path.unlink()
    return r


def sweep(
    root, model: str, sizes, nuts_max: int, out: dict, path: Path, vi_steps: int = 10000, nuts_draws=None
) -> None:
    """Fit ``model`` on twins of each size, each in a fresh process: NUTS up to ``nuts_max``
    respondents (one round of ``nuts_draws`` per chain when given), the approximate mode
    (ADVI, ``vi_steps`` steps) above it."""
    import multiprocessing
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    print(f"== scaling: `{model}` on the twin by survey size, the whole fit in a fresh process each")
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(dir=Path(root)) as tmp:
        for n in sizes:
            sampler = "nutpie" if n <= nuts_max else "advi"
            try:
                with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                    job = pool.submit(fit_size, str(root), model, int(n), sampler, tmp, vi_steps, nuts_draws)
                    r = job.result()
            except Exception as err:  # a size that fails (memory) is reported, not fatal
                r = {"n": int(n), "sampler": sampler, "error": repr(err)[:200]}
            out["scaling"][str(n)] = r
            print(_size_row(r), flush=True)
            write_json_atomic(out, path)


def _size_row(r: dict) -> str:
    if "error" in r:
        return f"  n = {r['n']:>7} {r['sampler']:<6} failed: {r['error']}"
    quality = (
        f"ESS/s {r['ess_per_s']:6.2f}  R-hat {r['max_rhat']:.3f}  rounds {r['rounds']}  "
        f"{r['draws']} draws x {r['mean_leapfrog_steps']:.0f} steps"
        if r["sampler"] != "advi"
        else f"approximate ({r['vi_steps']} steps), PSIS k-hat {r['psis_khat']:.2f}"
    )
    return (
        f"  n = {r['n']:>7} {r['sampler']:<6} wall {r['wall_s']:7.0f} s (compile {r['compile_s']:5.0f}, "
        f"sampling {r['sample_s']:6.0f}, after {r['predictive_s'] + r['integrated_s'] + r['write_s']:5.0f})  "
        f"{quality}  {'clean' if r['clean'] else 'NOT clean'}  "
        f"peak {r['peak_rss_gb']:5.1f} GB  file {r['file_mb']:7.1f} MB"
    )
