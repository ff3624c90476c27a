"""The web pages' Jinja2 templates (bot/web/templates), every value escaped."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

_TEMPLATES = Environment(loader=PackageLoader("bot.web", "templates"), autoescape=select_autoescape(default=True))


def render(template: str, **context: Any) -> str:
    return _TEMPLATES.get_template(template).render(**context)
