"""The Jinja environment every page is rendered with.

Codebooks, data files and specs come from other people, so every value is escaped; the
project's own HTML (tables it builds with escaped cells) is marked safe where it is made.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader
from markupsafe import Markup


def environment() -> Environment:
    """The project's templates (``scsurvey/report/templates``), escaping every value."""
    return Environment(loader=PackageLoader("scsurvey", "report/templates"), autoescape=True)


def safe(html: str) -> Markup:
    """HTML the project built itself from escaped parts (a table from ``to_html(escape=True)``)."""
    return Markup(html)
