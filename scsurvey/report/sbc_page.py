"""The page of a simulation-based calibration study: verdicts, rank histograms and ECDF
differences (``reports/<model>/sbc/index.html``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scsurvey.report import plots
from scsurvey.report.rendering import environment, safe


def write_page(
    name: str,
    folder: Path,
    summary: pd.DataFrame,
    pit: pd.DataFrame,
    band,
    diag: pd.DataFrame,
    out_dir: Path,
) -> Path:
    """reports/<name>/sbc/index.html: verdicts, rank histograms, ECDF differences.

    Parameters
    ----------
    name : str
        The model.
    folder : Path
        The study's folder (its ``study.json`` holds the settings shown).
    summary : pandas.DataFrame
        Verdicts per quantity (:func:`scsurvey.workflows.sbc.summarize`).
    pit : pandas.DataFrame
        Each quantity's ranks as PIT values in (0, 1), one row per simulation.
    band : tuple of arrays
        The simultaneous 95% ECDF band (:func:`scsurvey.workflows.sbc.ecdf_band`).
    diag : pandas.DataFrame
        Per simulation: wall time, convergence.
    out_dir : Path
        Where the page and its figures go.
    """

    out_dir.mkdir(parents=True, exist_ok=True)
    failed = set(summary.index[summary["verdict"] == "fail"])
    hist, ecdf = plots.sbc_ranks(pit, band, failed)
    hist.savefig(out_dir / "ranks.png", dpi=80)
    ecdf.savefig(out_dir / "ecdf_diff.png", dpi=80)
    settings = json.loads((folder / "study.json").read_text())
    table = summary.to_html(float_format=lambda v: f"{v:.3f}", border=0)
    table = safe(table.replace("<td>fail</td>", '<td class="fail">fail</td>'))

    html = (
        environment()
        .get_template("sbc.html.j2")
        .render(
            model=name,
            settings=settings,
            summary=summary,
            table=table,
            failed=list(summary.index[summary["verdict"] == "fail"]),
            failed_converged=list(
                summary.index[summary.get("verdict_converged", summary["verdict"]) == "fail"]
            ),
            wall=float(diag["wall_s"].sum()),
            attrs=summary.attrs,
        )
    )
    target = out_dir / "index.html"
    target.write_text(html)
    return target
