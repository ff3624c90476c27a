"""Drafting a postmortem: facts in, Markdown out, through a team's Jinja2 template.

Templates run in Jinja2's sandbox and never see the raw facts: they get a ``View`` (defined in
``facts.py``, made in ``view.py``) in which every string a person typed is already redacted,
has its mentions defused, and (for one-line fields) is a safe Markdown table cell. User text is
passed as data and is never compiled, so a title of ``{{ 7*7 }}`` is printed as typed.

What a template can use (see ``templates/postmortem.md.j2``): ``incident``, ``zone``,
``milestones``, ``durations``, ``severity_history``, ``timeline``, ``pages``,
``participants`` and ``action_items``; ``None`` prints as an em dash.
"""

from __future__ import annotations

import functools
import os
import re
import traceback
from dataclasses import fields
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from bot.postmortem.facts import (
    Action,
    Durations,
    Entry,
    Incident,
    Milestone,
    Moment,
    Page,
    PostmortemFacts,
    Role,
    SeverityStep,
    View,
    example_incident,
    minimal_incident,
)
from bot.postmortem.redact import safe_text
from bot.postmortem.view import UNKNOWN, build_view

DEFAULT_TEMPLATE = "postmortem.md.j2"
_SEVERITY_TEMPLATE = re.compile(r"postmortem\.(sev[1-4])\.md\.j2")


class PostmortemError(Exception):
    """A postmortem template cannot be used; the message says which file, where and why."""


def _none_as_unknown(value: object) -> object:
    return UNKNOWN if value is None else value


_VIEW_TYPES = (Moment, Role, Incident, Milestone, Durations, SeverityStep, Entry, Page, Action)
_VIEW_FIELDS = {cls: frozenset(f.name for f in fields(cls)) for cls in _VIEW_TYPES}


class _Sandbox(SandboxedEnvironment):
    """The sandbox, minus its per-access checks (the bulk of a long render) for declared
    fields of our view values, which are plain data; anything else is checked as usual."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        known = _VIEW_FIELDS.get(type(obj))
        if known is not None and attribute in known:
            return object.__getattribute__(obj, attribute)
        return super().getattr(obj, attribute)


@functools.lru_cache(maxsize=32)
def _environment(directory: str) -> SandboxedEnvironment:
    """One sandbox per templates folder, so each template is compiled once (and on change)."""
    return _Sandbox(
        loader=FileSystemLoader(directory),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_none_as_unknown,
    )


def template_for(templates_dir: str | os.PathLike[str], severity: str) -> str:
    """``postmortem.sevN.md.j2`` when the folder has one for ``severity``, else the default."""
    wanted = f"postmortem.{severity.strip().lower()}.md.j2"
    if _SEVERITY_TEMPLATE.fullmatch(wanted) and (Path(templates_dir) / wanted).is_file():
        return wanted
    return DEFAULT_TEMPLATE


def render_postmortem(facts: PostmortemFacts, *, templates_dir: str | os.PathLike[str]) -> str:
    """Render the draft for ``facts`` as Markdown; a broken template raises PostmortemError."""
    view = build_view(facts)
    return _render(templates_dir, template_for(templates_dir, facts.severity), view)


def _render(templates_dir: str | os.PathLike[str], name: str, view: View) -> str:
    directory = str(Path(templates_dir).resolve())
    shown = os.fspath(templates_dir)
    try:
        template = _environment(directory).get_template(name)
        return template.render(view.names())
    except TemplateSyntaxError as exc:
        where = os.path.join(shown, exc.name or name)
        raise PostmortemError(f"{where}, line {exc.lineno}: {exc.message}") from exc
    except TemplateNotFound as exc:
        if exc.name == name:
            raise PostmortemError(f"{os.path.join(shown, name)} does not exist") from exc
        raise PostmortemError(
            f"{_where(exc, directory, shown)}: uses {exc.name}, which does not exist"
        ) from exc
    except SecurityError as exc:
        detail = f"{exc} (templates cannot reach Python internals)"
        raise PostmortemError(f"{_where(exc, directory, shown)}: {detail}") from exc
    except UndefinedError as exc:
        raise PostmortemError(
            f"{_where(exc, directory, shown)}: {_explain_undefined(exc)}"
        ) from exc
    except Exception as exc:  # anything else a template does wrong, e.g. {{ 1 + "a" }}
        detail = f"{type(exc).__name__}: {exc}"
        raise PostmortemError(f"{_where(exc, directory, shown)}: {detail}") from exc


def _where(exc: BaseException, directory: str, shown: str) -> str:
    """``folder/file, line N`` of the innermost template frame in ``exc``'s traceback."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith(directory + os.sep):
            relative = os.path.relpath(frame.filename, directory)
            return f"{os.path.join(shown, relative)}, line {frame.lineno}"
    return shown


_VIEWS = {cls.__name__: cls for cls in _VIEW_TYPES}
_MISSING_ATTRIBUTE = re.compile(r"'(?:[\w.]+\.)?(\w+) object' has no attribute '(\w+)'")


def _explain_undefined(exc: UndefinedError) -> str:
    message = exc.message or str(exc)
    found = _MISSING_ATTRIBUTE.search(message)
    if found and found.group(1) in _VIEWS:
        view = _VIEWS[found.group(1)]
        known = ", ".join(f.name for f in fields(view))
        return f"{view.__name__} has no {found.group(2)!r}; it has {known}"
    names = ", ".join(f.name for f in fields(View))
    return f"{message}; a postmortem template can use {names}"


def validate_templates(templates_dir: str | os.PathLike[str]) -> list[str]:
    """One readable error per postmortem template in the folder that cannot be rendered."""
    folder = Path(templates_dir)
    if not folder.is_dir():
        return [f"{os.fspath(templates_dir)}: templates folder not found"]
    names = sorted(p.name for p in folder.glob("postmortem*.j2"))
    errors = []
    if DEFAULT_TEMPLATE not in names:
        errors.append(f"{os.path.join(templates_dir, DEFAULT_TEMPLATE)} does not exist")
    samples = [build_view(example_incident()), build_view(minimal_incident())]
    for name in names:
        if name != DEFAULT_TEMPLATE and not _SEVERITY_TEMPLATE.fullmatch(name):
            errors.append(
                f"{os.path.join(templates_dir, name)}: never used; per-severity templates are "
                "named postmortem.sev1.md.j2 to postmortem.sev4.md.j2"
            )
            continue
        for view in samples:
            try:
                _render(templates_dir, name, view)
            except PostmortemError as exc:
                errors.append(str(exc))
                break
    return errors


def render_fallback(facts: PostmortemFacts, *, reason: str) -> str:
    """A plain draft that needs no template, for when the team's template is broken."""
    view = build_view(facts)
    incident = view.incident
    lines = [
        f"# INC-{incident.number} postmortem: {incident.title}",
        "",
        f"> The postmortem template failed, so this draft is plain: {safe_text(reason)}",
        "",
        f"- Severity: {incident.severity}",
        f"- Status: {incident.status}",
        f"- Commander: {incident.commander or UNKNOWN}",
        f"- Time to acknowledge: {view.durations.acknowledge}",
        f"- Time to mitigate: {view.durations.mitigate}",
        f"- Time to resolve: {view.durations.resolve}",
        "",
        "## Summary",
        "",
        incident.summary or UNKNOWN,
        "",
        "## Impact",
        "",
        incident.impact or UNKNOWN,
        "",
        "## Action items",
        "",
        *(f"- {a.text} (owner: {a.owner or 'unassigned'})" for a in view.action_items),
        "",
        "## Timeline (UTC)",
        "",
        *(f"- {e.utc} {e.actor}: {e.label}: {e.text}" for e in view.timeline),
    ]
    return "\n".join(lines) + "\n"
