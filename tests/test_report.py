"""The generated report: renders from a stored posterior, every referenced file exists, a
real headless browser opens it without console errors; the notebook executes."""

import json
import os
import re
import shutil
from pathlib import Path

import arviz as az
import numpy as np
import pytest
from markupsafe import escape

from scsurvey.model.spec import load_spec
from scsurvey.posterior import summaries
from scsurvey.report.html import render_report
from scsurvey.report.screenshots import chromium_path, inspect_report

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_full.nc"


@pytest.fixture(scope="module")
def report(tmp_path_factory, root, codebook):
    idata = az.from_netcdf(FIXTURE)
    spec = load_spec(root / "models" / "full.toml")
    run = json.loads(FIXTURE.with_suffix(".run.json").read_text())
    out = tmp_path_factory.mktemp("report")
    worse = idata.copy()
    worse.log_likelihood_integrated["y"] = worse.log_likelihood_integrated["y"] - 0.5
    path = render_report(idata, spec, codebook, run, out, others={"full": idata, "worse": worse})
    return path, idata


def test_report_renders_and_every_file_exists(report):
    path, _ = report
    html = path.read_text()
    for section in (
        "The data",
        "Diagnostics",
        "Support per item",
        "Who supports",
        "Groups",
        "Posterior-predictive checks",
        "Model comparison",
    ):
        assert section in html, section
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) >= 10
    for src in sources:
        assert (path.parent / src).is_file(), src
    assert "Synthetic twin, not the survey" in html


def test_failed_diagnostics_are_shown_in_red(report):
    path, idata = report
    assert not idata.posterior.attrs["diagnostics_ok"]  # 2 x 60 draws cannot pass
    html = path.read_text()
    assert 'class="fail">Diagnostics FAILED' in html
    failures = json.loads(idata.posterior.attrs["diagnostics"])["failures"]
    assert all(str(escape(f)) in html for f in failures)  # escaped as every value is


def test_a_fit_with_overridden_settings_says_so(report):
    path, idata = report
    overrides = json.loads(idata.posterior.attrs["sampler_overrides"])
    assert overrides["draws"] == 60  # the fixture's fit overrode the spec (make_fixture.py)
    assert "with settings overriding the spec: " in path.read_text()
    assert "draws = 60" in path.read_text()


def test_table_numbers_come_from_the_posterior(report, codebook):
    path, idata = report
    html = path.read_text()
    table = summaries.support_table(idata, codebook)
    labels = {i.id: i.label for i in codebook.items}
    for item in ("surv_train", "pun_internet"):
        # rows are labelled from the codebook; shares read as percentages
        row = re.search(rf"<td>{re.escape(labels[item])}</td>(.*?)</tr>", html, re.S).group(1)
        cells = re.findall(r"<td>([^<]*)</td>", row)
        assert f"{100 * table.loc[item, 'observed']:.1f}%" in cells
        assert f"{100 * table.loc[item, 'model']:.1f}%" in cells
        assert f"{100 * table.loc[item, 'published']:.1f}%" in cells
    assert "worse" in html  # the comparison table lists both models


def test_tables_are_for_people(report):
    """No 0..N index column, no snake_case headers, counts without decimals."""
    html = report[0].read_text()
    headers = re.findall(r"<th>([^<]*)</th>", html)
    assert headers and not [h for h in headers if "_" in h], [h for h in headers if "_" in h]
    assert "<th></th>" not in html
    # counts as integers, not 0.000 divergences or a tree depth of 5.000
    assert re.search(r"<td>divergences</td>\s*<td>\d+</td>", html)
    assert re.search(r"<td>mean tree depth</td>\s*<td>\d+\.\d</td>", html)
    assert not re.search(r"<tr>\s*<th>0</th>", html)


def test_the_headline_comes_first_and_says_what_was_found(report, codebook):
    html = report[0].read_text()
    headline = re.search(r'<p class="headline" id="headline">(.*?)</p>', html, re.S).group(1)
    assert html.index('id="headline"') < html.index('id="support"') < html.index('id="diagnostics"')
    for battery in codebook.batteries:
        assert f"{battery.label or battery.id}: support ranges from" in headline
    assert "published findings" in headline and "Convergence diagnostics FAILED" in headline
    assert f"<h1>{escape(codebook.title)}</h1>" in html  # the title comes from the codebook
    from importlib.resources import files

    for template in ("report.html.j2", "index.html.j2"):  # nothing in them names this survey
        text = (files("scsurvey") / "report" / "templates" / template).read_text()
        assert "social credit" not in text.lower() and "china" not in text.lower(), template


def test_the_index_page_lists_every_reported_model(report, tmp_path):

    from scsurvey.report.html import write_index

    path, _ = report
    root = tmp_path / "project"
    shutil.copytree(path.parent, root / "reports" / "full")
    index = write_index(root)
    html = index.read_text()
    assert 'href="full/index.html"' in html and "diagnostics failed" in html
    assert str(escape(json.loads((path.parent / "summary.json").read_text())["headline"])) in html


@pytest.mark.browser
def test_a_real_browser_opens_the_report(report, codebook):
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found; .ci/run installs it")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from PIL import Image

    path, idata = report
    facts = inspect_report(path, executable=executable)
    assert facts.errors == [], facts.errors
    assert facts.overflow_px <= 0, facts.overflow_px
    assert facts.sections == ["data", "support", "who", "groups", "ppc", "diagnostics", "comparison"]
    assert facts.images_decoded and facts.images >= 10
    assert max(facts.image_heights) < 4000, facts.image_heights  # sized by what they show
    # the headline's numbers are the summaries': lowest and highest support per battery
    support = summaries.support_table(idata, codebook)
    for b in codebook.batteries:
        rows = support[support["battery"] == b.id]
        for item in (rows["model"].idxmin(), rows["model"].idxmax()):
            for col in ("model", "model_low", "model_high"):
                assert f"{100 * rows.loc[item, col]:.1f}%" in facts.headline, (item, col, facts.headline)
    # a screenshot per section, each a real picture of that section
    assert set(facts.screenshots) == set(facts.sections)
    for section, shot in facts.screenshots.items():
        pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
        assert pixels.shape[1] > 600 and pixels.shape[0] > 40, (section, pixels.shape)
        assert pixels.std() > 10, section  # not blank
    assert shot.parent == path.parent / "screenshots"
    page = np.asarray(Image.open(facts.page_screenshot).convert("L"), dtype=float)
    assert page.shape[0] > 2000  # a long page, not an error stub
    # printed through Chromium's print-to-PDF: a complete PDF holding the figures
    pdf = facts.pdf.read_bytes()
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-32:], pdf[:16]
    assert len(pdf) > 100_000, len(pdf)


def test_notebook_executes_against_the_fixture(root, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(root / "analysis" / "inspect_posterior.ipynb", as_version=4)
    # keep pyplot's figures open after they are shown, and at the end list the text that
    # overlaps between panels of any of them (the notebook's own cells are unchanged)
    nb.cells.insert(0, nbformat.v4.new_code_cell("%config InlineBackend.close_figures = False"))
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "from scsurvey.report.plots import overlapping_labels\n"
            "print('OVERLAPS', {n: overlapping_labels(plt.figure(n)) for n in plt.get_fignums()})"
        )
    )
    env = {"SCSURVEY_POSTERIOR": str(FIXTURE), "SCSURVEY_ROOT": str(root)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            nb,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(root / "analysis")}},
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps([o.get("data", {}).get("text/plain", "") for o in outputs])
    assert "agrees" in text or "uncertain" in text  # the who-supports table was shown
    # every figure cell shows its figure: ArviZ's (pyplot) and the project's (bare Figures)
    drawing = re.compile(r"\b(az\.plot_\w+|plots\.\w+)\(")
    figure_cells = [c for c in nb.cells if c.cell_type == "code" and drawing.search(c.source)]
    shown = [c for c in figure_cells if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert len(figure_cells) >= 5 and len(shown) == len(figure_cells), [c.source for c in figure_cells]
    report = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    figures = eval(report.split("OVERLAPS", 1)[1])  # {figure number: overlapping pairs}
    assert len(figures) >= 3 and not any(figures.values()), figures


def test_overlapping_labels_finds_panels_drawn_over_each_other():
    """The notebook test's layout check fails on ArviZ's default rank plot (each panel's title
    over the x label of the panel above) and passes on the same plot in constrained layout."""
    import arviz as az
    import matplotlib.pyplot as plt
    import numpy as np

    from scsurvey.report.plots import overlapping_labels

    rng = np.random.default_rng(1)
    shapes = {"a": (4, 200, 3), "b": (4, 200), "c": (4, 200, 2)}  # six panels in two rows
    idata = az.from_dict(posterior={k: rng.standard_normal(s) for k, s in shapes.items()})
    with plt.rc_context({"figure.constrained_layout.use": False}):
        fig = az.plot_rank(idata, kind="vlines").ravel()[0].figure
    assert overlapping_labels(fig)
    plt.close(fig)
    with plt.rc_context({"figure.constrained_layout.use": True}):
        fig = az.plot_rank(idata, kind="vlines").ravel()[0].figure
    assert overlapping_labels(fig) == []
    plt.close(fig)


def test_model_comparison_keeps_only_posteriors_of_the_same_data():
    import arviz as az
    import numpy as np

    from scsurvey.report.html import same_data

    def fake(data_hash):
        idata = az.from_dict(posterior={"x": np.zeros((1, 5))})
        idata.posterior.attrs["data_hash"] = data_hash
        return idata

    others = {"a": fake("twin"), "b": fake("twin"), "verbagg": fake("other")}
    assert sorted(same_data(fake("twin"), others)) == ["a", "b"]
    assert sorted(same_data(fake("other"), others)) == ["verbagg"]


def test_make_notebook_serves_jupyterlab_on_the_analysis_folder(root):
    """`make notebook` starts JupyterLab whose file browser opens on analysis/ (the notebook
    is there), as a user gets it, then is stopped."""
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "scsurvey-test"
    args = f"--no-browser --ip 127.0.0.1 --port {port} --IdentityProvider.token={token}"
    proc = subprocess.Popen(
        ["make", "-s", "notebook", f"NOTEBOOK_ARGS={args}"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        listing = None
        for _ in range(120):  # JupyterLab starts in a few seconds; 60 s at most
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}") as r:
                    listing = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        assert listing is not None, "JupyterLab did not answer"
        names = {item["name"] for item in listing["content"]}
        assert "inspect_posterior.ipynb" in names, names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}") as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
