"""Open a generated report in a real headless Chromium: what a reader's browser shows.

Used by the browser test and by ``make screenshots``: the page at 1280 px, a screenshot per
section under ``screenshots/`` beside the report, and the page printed to PDF through
Chromium's print-to-PDF. Needs Playwright (the ``test`` extra) and a Chromium binary
(Debian's ``chromium`` package; no browser download).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

VIEWPORT = {"width": 1280, "height": 900}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """The Chromium binary on this machine, or ``None``."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@dataclass
class PageFacts:
    """What the browser saw on the page."""

    errors: list = field(default_factory=list)  # console errors and uncaught exceptions
    overflow_px: int = 0  # page width beyond the viewport (horizontal scrolling)
    headline: str = ""
    sections: list = field(default_factory=list)  # ids of the h2 headings, in order
    images: int = 0
    images_decoded: bool = False
    image_heights: list = field(default_factory=list)
    screenshots: dict = field(default_factory=dict)  # section id -> PNG path
    page_screenshot: Path | None = None
    pdf: Path | None = None


def inspect_report(html: Path, out_dir: Path | None = None, executable: str | None = None) -> PageFacts:
    """Open ``html`` in headless Chromium, screenshot each section, print the page to PDF.

    Parameters
    ----------
    html : Path
        A report's ``index.html``.
    out_dir : Path, optional
        Where ``screenshots/<section>.png``, ``screenshots/page.png`` and ``report.pdf`` go
        (default: beside the report).
    executable : str, optional
        The Chromium binary (default :func:`chromium_path`).

    Returns
    -------
    PageFacts
    """
    from playwright.sync_api import sync_playwright

    html = Path(html).resolve()
    out_dir = Path(out_dir) if out_dir else html.parent
    shots = out_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    executable = executable or chromium_path()
    if executable is None:
        raise FileNotFoundError("no chromium binary found (Debian: apt-get install chromium)")
    facts = PageFacts()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("console", lambda m: facts.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: facts.errors.append(str(e)))
            page.goto(html.as_uri(), wait_until="load")
            facts.images = page.evaluate("document.images.length")
            facts.images_decoded = page.evaluate(
                "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
            )
            facts.image_heights = page.evaluate("Array.from(document.images).map(i => i.naturalHeight)")
            facts.overflow_px = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if page.locator("#headline").count():
                facts.headline = page.inner_text("#headline")
            facts.sections = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.id)")
            # a section runs from its h2 to the next: wrap each in a box to screenshot it
            page.evaluate(
                """() => {
                  for (const h of Array.from(document.querySelectorAll('h2'))) {
                    const box = document.createElement('div');
                    box.dataset.section = h.id;
                    h.parentNode.insertBefore(box, h);
                    let node = h;
                    while (node && !(node !== h && node.tagName === 'H2')) {
                      const next = node.nextSibling;
                      box.appendChild(node);
                      node = next;
                    }
                  }
                  for (const d of document.querySelectorAll('details')) d.open = true;
                }"""
            )
            for section in facts.sections:
                path = shots / f"{section}.png"
                page.locator(f'div[data-section="{section}"]').screenshot(path=str(path))
                facts.screenshots[section] = path
            facts.page_screenshot = shots / "page.png"
            page.screenshot(path=str(facts.page_screenshot), full_page=True)
            facts.pdf = out_dir / "report.pdf"
            page.emulate_media(media="print")
            page.pdf(path=str(facts.pdf), format="A4", print_background=True)
        finally:
            browser.close()
    return facts


__all__ = ["PageFacts", "chromium_path", "inspect_report"]
