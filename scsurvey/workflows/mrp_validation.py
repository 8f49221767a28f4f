"""MRP validated on a population with known truth.

A population is simulated from the twin (its covariates, groups and true parameters), every
person's support probability known; a sample is drawn with a known selection bias (younger,
more educated and more eastern people more likely to take part, as in online samples); the
MRP spec is fitted to the sample and poststratified to the population's own margins. A
calibrated MRP interval covers the population's true support share; the raw sample share,
biased by the selection, does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scsurvey.core.tomlfile import read_toml
from scsurvey.inputs.codebook import load_codebook
from scsurvey.inputs.survey import prepare
from scsurvey.model.graph import build
from scsurvey.model.likelihood import category_probs, ordinal_random
from scsurvey.model.parameterisation import non_centred
from scsurvey.model.predictor import evaluate_graph
from scsurvey.model.spec import load_spec
from scsurvey.workflows import mrp
from scsurvey.workflows.twin import (
    _apply_missingness,
    load_twin_config,
    make_twin,
    simulate_respondents,
)

# log-odds of taking part, per unit: under 40, junior college and above, eastern region
SELECTION = {"young": 1.0, "university": 1.0, "east": 0.8}
# The twin's own effects of age and education are small, so a sample biased on them is
# hardly biased in support; the validation population makes support depend on education
# (per sd, latent scale, both batteries) so that the raw share is wrong and MRP has work.
EFFECTS = {"education": 0.8}


def biased_sample(
    root: Path | str, population: int = 200_000, n: int = 1173, seed: int = 7, effects: dict | None = None
) -> dict:
    """A population with known support and a sample drawn from it with a selection bias.

    Returns
    -------
    dict
        ``frame`` (the sample as a survey file would hold it), ``true_share`` (per item, the
        population's expected support share), ``margins`` (the population's census margins,
        counts) and ``selection`` (the sample's share of each selected trait against the
        population's).
    """
    root = Path(root)
    twin_path = root / "data" / "codebook" / "scs2020.twin.toml"
    twin = make_twin(twin_path, root)
    config = load_twin_config(twin_path)
    codebook = load_codebook(twin_path.parent / config["twin"]["codebook"])
    spec = load_spec(root / config["twin"]["spec"])
    rng_pop, rng_sel, rng_ans = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    frame = simulate_respondents(codebook, config, population, rng_pop)
    pop = prepare(frame, codebook, source="validation population", require_answers=False)
    beta = np.array(twin.truth["beta"], dtype=float)
    for name, value in (EFFECTS if effects is None else effects).items():
        beta[:, pop.covariate_names.index(name)] = value
    values = {
        **twin.truth,
        "beta": beta,
        "z_respondent": rng_pop.standard_normal((population, len(codebook.batteries))),
    }
    eta, cuts = evaluate_graph(build(spec, pop, non_centred(len(codebook.batteries))), values)
    support = np.asarray(codebook.scale.support_mask)
    true_share = category_probs(eta, cuts, spec.link)[..., support].sum(-1).mean(axis=0)
    traits = {
        "young": frame["age"].to_numpy() < 40,
        "university": frame["education"].to_numpy() >= 4,
        "east": frame["region"].to_numpy() == "East",
    }
    logit = sum(SELECTION[k] * v for k, v in traits.items())
    p = np.exp(logit - logit.max())
    chosen = np.sort(rng_sel.choice(population, size=n, replace=False, p=p / p.sum()))
    sample = frame.iloc[chosen].reset_index(drop=True)
    cat = ordinal_random(eta[chosen], cuts[chosen] if cuts.ndim == 3 else cuts, link=spec.link, rng=rng_ans)
    codes = _apply_missingness(cat, codebook, config, rng_ans)
    for j, item in enumerate(codebook.items):
        sample[item.column] = codes[:, j]
    sample[codebook.respondent_id] = np.arange(1, n + 1)

    def levels(gid):  # each person's level of a codebook group, as the survey reads it
        return pd.Series(np.asarray(codebook.group(gid).levels, dtype=object)[pop.groups[gid]])

    margins = {
        "sex": pd.Series(np.where(frame["female"] == 1, "female", "male")).value_counts(),
        "age": levels("age_band").value_counts(),
        "region": levels("region").value_counts(),
        "education": levels("education_level").value_counts(),
    }
    selection = pd.DataFrame(
        {
            "population": {k: v.mean() for k, v in traits.items()},
            "sample": {k: v[chosen].mean() for k, v in traits.items()},
        }
    )
    return {
        "frame": sample,
        "true_share": pd.Series(true_share, index=codebook.item_ids, name="true"),
        "margins": margins,
        "selection": selection,
        "codebook": codebook,
    }


def census_from_counts(margins: dict, path: str = "<validation population>") -> mrp.Census:
    """A :class:`scsurvey.workflows.mrp.Census` from population counts per category."""
    return mrp.Census(
        path=path,
        title="simulated population",
        source="simulated",
        caveat="",
        margins={k: (v / v.sum()).rename(k) for k, v in margins.items()},
    )


def validate(
    root: Path | str = ".",
    population: int = 200_000,
    n: int = 1173,
    seed: int = 7,
    sampler: dict | None = None,
    census_variables: tuple[str, ...] = ("sex", "age", "region", "education"),
    effects: dict | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Fit the MRP spec to a biased sample and compare MRP and raw shares with the truth.

    census_variables : tuple of str
        The poststratification variables used (a small sample may hold no one aged 60+).
    effects : dict, optional
        Covariate effects of the population (default :data:`EFFECTS`).

    Returns
    -------
    table : pandas.DataFrame
        Per item: true share, raw sample share (with its binomial 90% interval), MRP
        estimate and 90% interval, and whether each covers the truth.
    summary : dict
        Coverage of MRP's intervals, share of items the raw share misses, mean absolute
        errors, the selection (sample against population), and the fit's diagnostics.
    """
    from scsurvey.posterior.draws import HIGH, LOW
    from scsurvey.surveymodel import SurveyModel

    root = Path(root)
    sim = biased_sample(root, population, n, seed, effects)
    spec = load_spec(root / "models" / "mrp.toml")
    raw = read_toml(root / "models" / "mrp.toml", mrp.MRPError, "spec")["poststrat"]["variables"]
    setting = {"variables": {k: v for k, v in raw.items() if k in census_variables}}
    model_config = spec.model_config()
    columns = {v["column"] for v in setting["variables"].values()}
    model_config["groups"] = [g for g in model_config["groups"] if g in columns]
    sampler_config = {**spec.sampler_config(), **(sampler or {})}
    m = SurveyModel(sim["frame"], sim["codebook"], model_config=model_config, sampler_config=sampler_config)
    idata = m.fit(progress=False)
    vars_ = mrp.variables(setting, sim["codebook"], "models/mrp.toml")
    census = census_from_counts({k: v for k, v in sim["margins"].items() if k in census_variables})
    cells = mrp.respondent_cells(m.data, vars_, census)
    out = mrp.estimate(idata, sim["codebook"], mrp.synthetic_table(cells, census), vars_)
    table = mrp.summary_table(out, idata, sim["codebook"], LOW, HIGH)
    table["true"] = sim["true_share"]
    answered = (m.data.responses >= 0).sum(axis=0)
    se = np.sqrt(table["sample"] * (1 - table["sample"]) / answered)
    table["raw_covers"] = (table["true"] - table["sample"]).abs() <= 1.645 * se
    table["mrp_covers"] = (table["mrp_low"] <= table["true"]) & (table["true"] <= table["mrp_high"])
    summary = {
        "mrp_coverage": float(table["mrp_covers"].mean()),
        "raw_miss": float(1 - table["raw_covers"].mean()),
        "mrp_mae": float((table["mrp"] - table["true"]).abs().mean()),
        "raw_mae": float((table["sample"] - table["true"]).abs().mean()),
        "selection": sim["selection"].round(3).to_dict(),
        "diagnostics_ok": bool(m.diagnostics.ok),
        "max_rhat": float(m.diagnostics.max_rhat),
    }
    return table.drop(columns=["published"]), summary


__all__ = ["biased_sample", "census_from_counts", "validate"]
