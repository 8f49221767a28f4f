"""The bambi peer of `make bench`: what a Python user would fit with bambi.

Per battery, a cumulative-logit model of the answers in long format, ``answer ~ 0 + item +
<covariates> + (1|respondent) + (1|<group>) ...``: item locations as fixed effects, one set
of thresholds per battery, respondent and group intercepts, fitted with nutpie through
bambi. It is not the project's model: no item discriminations, no item-specific
thresholds or covariate effects, batteries fitted separately. That is the honest
comparison: the model a user gets from a formula package.

bambi 0.17 imports ``arviz_plots``, whose import fails beside this project's matplotlib
(3.11: no ``matplotlib.style.core``) and breaks ``import arviz`` with it, so bambi lives in
its own environment (``make bench`` builds ``.venv-peers``). This module is run there as
``python -m scsurvey.workflows.benchmark_bambi IN_DIR OUT_JSON``; :func:`write_inputs` writes ``IN_DIR``
from the main environment.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _name(text: str) -> str:
    """A formula-safe column name."""
    return re.sub(r"\W", "_", text)


def write_inputs(spec, data, folder: Path | str) -> Path:
    """Write one long-format Parquet file per battery and ``settings.json`` to ``folder``."""
    from scsurvey.model.graph import covariate_columns

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cb = data.codebook
    cols = covariate_columns(spec, data)
    covs = {_name(data.covariate_names[k]): data.X[:, k] for k in cols}
    groups = {_name(g): data.groups[g].astype(str) for g in spec.components.groups}
    resp, item = np.nonzero(data.mask)
    frame = pd.DataFrame(
        {
            "answer": data.responses[resp, item].astype(int),
            "item": np.asarray(cb.item_ids)[item],
            "battery": np.asarray(cb.item_battery_index)[item],
            "respondent": resp.astype(str),
            **{k: v[resp] for k, v in covs.items()},
            **{k: v[resp] for k, v in groups.items()},
        }
    )
    for b, battery in enumerate(cb.battery_ids):
        frame[frame["battery"] == b].drop(columns="battery").to_parquet(folder / f"{battery}.parquet")
    s = spec.sampler
    settings = {
        "batteries": list(cb.battery_ids),
        "covariates": list(covs),
        "groups": list(groups),
        "n_categories": cb.scale.n_categories,
        "draws": s.draws,
        "tune": s.tune,
        "chains": s.chains,
        "target_accept": s.target_accept,
        "seed": s.seed,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    return folder


def formula(settings: dict) -> str:
    """The bambi formula of one battery."""
    terms = ["0", "item", *settings["covariates"], "(1|respondent)"]
    terms += [f"(1|{g})" for g in settings["groups"]]
    return "answer ~ " + " + ".join(terms)


def fit(folder: Path | str) -> dict:
    """Fit every battery's bambi model (run inside the peers environment)."""
    import arviz as az
    import bambi as bmb

    from scsurvey.inference.diagnostics import diagnose

    folder = Path(folder)
    settings = json.loads((folder / "settings.json").read_text())
    out = {"formula": formula(settings), "batteries": {}}
    for battery in settings["batteries"]:
        frame = pd.read_parquet(folder / f"{battery}.parquet")
        levels = list(range(settings["n_categories"]))
        frame["answer"] = pd.Categorical(frame["answer"], categories=levels, ordered=True)
        t0 = time.perf_counter()
        model = bmb.Model(out["formula"], frame, family="cumulative")
        idata = model.fit(
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            target_accept=settings["target_accept"],
            random_seed=settings["seed"],
            inference_method="nutpie",
            progressbar=False,
        )
        wall = time.perf_counter() - t0
        post = idata.posterior[[v for v in idata.posterior.data_vars if not v.endswith("__")]]
        d = diagnose(az.InferenceData(posterior=post, sample_stats=idata.sample_stats))
        out["batteries"][battery] = {
            "wall_s": wall,
            "answers": len(frame),
            "min_ess_bulk": d.min_ess_bulk,
            "min_ess_bulk_var": d.min_ess_bulk_var,
            "max_rhat": d.max_rhat,
            "max_rhat_var": d.max_rhat_var,
            "divergences": d.divergences,
            "clean": d.ok,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m scsurvey.workflows.benchmark_bambi IN_DIR OUT_JSON``."""
    in_dir, out_json = (argv if argv is not None else sys.argv[1:])[:2]
    Path(out_json).write_text(json.dumps(fit(in_dir), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
