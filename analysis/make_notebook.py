"""Write inspect_posterior.ipynb (kept as code so that its cells stay reviewable)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# Inspecting a stored posterior\n\n"
        "Loads `models/<name>/posterior.nc` (refusing a stale one) with the model rebuilt "
        "from it, then walks through the "
        "summary, trace and rank plots, forest plots, posterior-predictive checks and the "
        "who-supports table. Everything here calls `scsurvey` functions: the report uses "
        "the same ones.\n\n"
        "Set `SCSURVEY_POSTERIOR` to a file to inspect it without the staleness check "
        "(the test suite runs this notebook on a small fixture that way).\n\n"
        "**The default data are a synthetic twin, not the survey.**"
    ),
    nbf.v4.new_code_cell(
        "import os\n"
        "from pathlib import Path\n\n"
        "import arviz as az\n"
        "import matplotlib.pyplot as plt\n\n"
        "import scsurvey as ss\n"
        "from scsurvey import checks, plots, summaries\n"
        "from scsurvey.report.plots import font_settings\n\n"
        "# constrained layout: the titles, labels and ticks of one panel never cover another's\n"
        'plt.rcParams["figure.constrained_layout.use"] = True\n'
        "plt.rcParams.update(font_settings())  # labels in Chinese, Japanese or Korean too\n"
        'ROOT = Path(os.environ.get("SCSURVEY_ROOT", "..")).resolve()\n'
        'MODEL = os.environ.get("SCSURVEY_MODEL", "full")\n'
        'path = os.environ.get("SCSURVEY_POSTERIOR")\n'
        "if path is None:\n"
        "    ss.load_posterior(MODEL, root=ROOT)  # refuses a posterior whose spec or data changed\n"
        '    path = ROOT / "models" / MODEL / "posterior.nc"\n'
        "model = ss.load(path)  # the model rebuilt from the file, with its codebook and data\n"
        "idata, codebook = model.idata, model.codebook\n"
        "idata"
    ),
    nbf.v4.new_markdown_cell("## Diagnostics and summary"),
    nbf.v4.new_code_cell(
        "import json\n\n"
        'diag = json.loads(idata.posterior.attrs["diagnostics"])\n'
        'print("diagnostics ok:", bool(idata.posterior.attrs["diagnostics_ok"]), diag["failures"])\n'
        'az.summary(idata, var_names=["mu_alpha", "sigma_alpha", "sigma_g", "lambda"], round_to=3)'
    ),
    nbf.v4.new_code_cell(
        "hyper = [\n"
        "    v\n"
        '    for v in ("mu_alpha", "sigma_alpha", "sigma_g", "sigma_region", "sigma_occupation")\n'
        "    if v in idata.posterior\n"
        "]\n"
        "az.plot_trace(idata, var_names=hyper[:3], compact=True);"
    ),
    nbf.v4.new_code_cell('az.plot_rank(idata, var_names=hyper[:3], kind="vlines");'),
    nbf.v4.new_markdown_cell("## Covariate effects per battery"),
    nbf.v4.new_code_cell(
        'if "beta" in idata.posterior:\n'
        '    az.plot_forest(idata, var_names=["beta"], combined=True, hdi_prob=0.9, figsize=(7, 9))\n'
        "summaries.covariate_effects(idata).round(3).head(10)"
    ),
    nbf.v4.new_markdown_cell("## Who supports: published findings against the model"),
    nbf.v4.new_code_cell("summaries.who_supports(idata, codebook).round(3)"),
    nbf.v4.new_markdown_cell("## Support per item: observed, model and published"),
    nbf.v4.new_code_cell("summaries.support_table(idata, codebook).round(3)"),
    nbf.v4.new_markdown_cell("## Posterior-predictive checks"),
    nbf.v4.new_code_cell("freq = checks.category_frequencies(idata)\nplots.category_frequencies(freq)"),
    nbf.v4.new_code_cell("plots.battery_index(checks.battery_index(idata))"),
    nbf.v4.new_code_cell(
        'pit = checks.randomized_pit(idata)\ndisplay(plots.pit(pit))\npit[["n", "p_uniform"]].round(3)'
    ),
    nbf.v4.new_markdown_cell(
        "Item fit (posterior predictive p-values of category counts and item-rest "
        "correlations) and person fit (respondents whose answers are less likely than 95% "
        "of their replicates)."
    ),
    nbf.v4.new_code_cell(
        "from scsurvey import fitstats\n\n"
        "items = fitstats.item_fit(idata)\n"
        "persons = fitstats.person_fit(idata)\n"
        'print("respondents flagged:", round(100 * persons.attrs["flagged_share"], 1), "%")\n'
        "items.round(3)"
    ),
    nbf.v4.new_markdown_cell("## Scores, information and reliability"),
    nbf.v4.new_code_cell(
        "scores = fitstats.scores(idata)\n"
        'print(scores["reliability"].to_series().round(3))\n'
        "plots.information(fitstats.information(idata))"
    ),
    nbf.v4.new_markdown_cell(
        "## Leave-one-respondent-out LOO\n\nWith each respondent's latent traits integrated "
        "out (the default); `checks.loo_respondents(idata, 'conditional')` shows why the "
        "conditional one is not used."
    ),
    nbf.v4.new_code_cell("loo, k_table = checks.loo_respondents(idata)\nprint(loo)\nk_table"),
]

nb = nbf.v4.new_notebook(
    cells=cells,
    metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    },
)
out = Path(__file__).parent / "inspect_posterior.ipynb"
nbf.write(nb, out)
print(f"wrote {out}")
