"""The Jinja environment every page is rendered with."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape


def environment() -> Environment:
    """The project's templates (``scsurvey/report/templates``)."""
    return Environment(loader=PackageLoader("scsurvey", "report/templates"), autoescape=select_autoescape())
