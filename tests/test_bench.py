"""`make bench`'s arguments: what it is asked to run is checked before anything runs."""

import json

import numpy as np
import pytest

from scsurvey.workflows.benchmark import PEERS, SECTIONS, run_bench


@pytest.mark.parametrize(
    "kwargs, named",
    [({"sections": ("fits", "speed")}, "speed"), ({"peers": ("bambi", "brms")}, "brms")],
)
def test_an_unknown_section_or_peer_is_named_before_anything_runs(tmp_path, kwargs, named):
    # tmp_path has no models/: reaching the spec would fail with another error
    with pytest.raises(ValueError) as err:
        run_bench(root=tmp_path, **kwargs)
    assert named in str(err.value)
    known = SECTIONS if "sections" in kwargs else PEERS
    assert all(k in str(err.value) for k in known)


@pytest.mark.parametrize(("sampler", "draws", "rounds"), [("nutpie", 123, 1), ("advi", 123, None)])
def test_a_size_of_the_sweep_fits_the_draws_asked_in_one_round(root, monkeypatch, sampler, draws, rounds):
    """``--nuts-draws``: the NUTS sizes run one round of that many draws per chain (a timing);
    the approximate sizes keep their own settings."""
    from scsurvey.model.spec import load_spec
    from scsurvey.posterior import assemble
    from scsurvey.workflows import benchmark

    class Reached(Exception):
        pass

    seen = {}

    def fake_fit(spec, data, progress=True, **_):
        seen.update(sampler=spec.sampler, n=data.n_respondents)
        raise Reached

    monkeypatch.setattr(assemble, "fit_survey", fake_fit)
    with pytest.raises(Reached):
        benchmark.fit_size(str(root), "full", 80, sampler, "unused", draws=draws)
    spec = load_spec(root / "models" / "full.toml").sampler
    assert seen["n"] == 80 and seen["sampler"].name == sampler
    if rounds:
        assert (seen["sampler"].draws, seen["sampler"].rounds) == (draws, rounds)
    else:
        assert (seen["sampler"].draws, seen["sampler"].rounds) == (spec.draws, spec.rounds)


def test_the_targets_are_printed_beside_the_figures_they_replace(tmp_path, monkeypatch, capsys):
    """`make bench-targets`: each measured figure against the one it replaces and its goal,
    as ratios; a target missed, or a fit that is fast but not clean, is not met."""
    from scsurvey.workflows import bench_targets

    measured = {
        "gradient": {"value": 260.0},
        "compile_cold": {"value": 40.0},
        "twin_5000": {"value": 400.0, "clean": False},
        "sbc": {"value": 700.0, "clean": False, "failed": ["sigma_g"]},
    }
    monkeypatch.setattr(bench_targets, "_measure", lambda key, root, tmp: measured[key])
    keys = ("gradient", "compile_cold", "twin_5000", "sbc")
    results = bench_targets.run_targets(tmp_path, keys=keys)
    assert [results[k]["met"] for k in keys] == [False, True, False, False]
    out = capsys.readouterr().out
    assert "(not clean: sigma_g)" in out  # a fast study that does not calibrate
    line = next(row for row in out.splitlines() if row.startswith("gradient"))
    assert line.split()[-5:] == ["520us", "260us", "0.50", "200us", "1.30"]  # 260/520, 260/200
    assert "(not clean)" in out
    stored = json.loads((tmp_path / "reports" / "bench" / "targets.json").read_text())
    assert stored == results
    measured["fit_cached"] = {"value": 50.0}
    bench_targets.run_targets(tmp_path, keys=("fit_cached",))  # a later run adds to the record
    stored = json.loads((tmp_path / "reports" / "bench" / "targets.json").read_text())
    assert set(stored) == {*keys, "fit_cached"} and stored["fit_cached"]["met"]
    assert tuple(bench_targets.run_targets(tmp_path)) == bench_targets.QUICK  # the default: the quick ones
    with pytest.raises(ValueError, match=r"\['speed'\].*compile_cold"):
        bench_targets.run_targets(tmp_path, keys=("speed",))


def _write_study(folder, ranks_of, n_sims=200, L=99, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for sim in range(n_sims):
        record = {
            "sim": sim,
            "L": L,
            "ranks": {q: int(draw(rng)) for q, draw in ranks_of.items()},
            "wall_s": 1.0,
            "max_rhat": 1.001,
            "min_ess_bulk": 500.0,
            "divergences": 0,
            "converged": True,
        }
        (folder / f"sim_{sim:04d}.json").write_text(json.dumps(record))


def test_the_sbc_target_counts_only_a_study_that_calibrates(tmp_path):
    """Uniform ranks pass; ranks piled at the top (a posterior biased low) fail and are named.
    200 simulations as the study runs: the summary's family-wise level is 5%, and a pile of
    every rank in the top fifth is far outside it."""
    from scsurvey.workflows.bench_targets import sbc_verdict

    uniform = {q: (lambda rng: rng.integers(0, 100)) for q in ("mu", "sigma")}
    _write_study(tmp_path / "good" / "a1", uniform)
    verdict = sbc_verdict(tmp_path / "good")
    assert verdict["clean"] and verdict["failed"] == [] and verdict["sims"] == 200

    biased = {**uniform, "sigma": lambda rng: rng.integers(80, 100)}
    _write_study(tmp_path / "bad" / "a1", biased)
    verdict = sbc_verdict(tmp_path / "bad")
    assert not verdict["clean"] and verdict["failed"] == ["sigma"]

    (tmp_path / "bad" / "a2").mkdir()  # two studies: which one is the bench's is unknown
    with pytest.raises(RuntimeError, match="expected one SBC study"):
        sbc_verdict(tmp_path / "bad")
