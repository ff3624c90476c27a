"""Drafting a postmortem: facts in, Markdown out, through a team's Jinja2 template.

Templates run in Jinja2's sandbox and never see the raw facts: they get a ``View`` (defined in
``facts.py``, made here) in which every string a person typed is already redacted, has its
mentions defused, and (for one-line fields) is a safe Markdown table cell. User text is passed as data and is never
compiled, so a title of ``{{ 7*7 }}`` is printed as typed.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytz
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

DEFAULT_TEMPLATE = "postmortem.md.j2"
UNKNOWN = "—"
_SEVERITY_TEMPLATE = re.compile(r"postmortem\.(sev[1-4])\.md\.j2")
# Timeline kinds read as their own word capitalised, except these.
_KIND_LABELS = {"acknowledge": "Acknowledged", "escalate": "Escalated", "action": "Action item"}


class PostmortemError(Exception):
    """A postmortem template cannot be used; the message says which file, where and why."""


def format_duration(delta: timedelta | None) -> str:
    """``"45 s"``, ``"23 min"``, ``"1 h 23 min"``, ``"2 d 3 h"`` (rounded down), or ``"—"``."""
    if delta is None or delta < timedelta(0):
        return UNKNOWN
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60 % 60, seconds // 3600 % 24, seconds // 86400
    if seconds < 3600:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{days} d {hours} h" if hours else f"{days} d"


def _since(start: datetime, moment: datetime | None) -> str:
    if moment is None:
        return UNKNOWN
    if moment < start:
        return f"{format_duration(start - moment)} before"
    return format_duration(moment - start)


def _minute(dt: datetime) -> str:
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d}"


class _Clock:
    """Formats instants in UTC and the commander's zone; remembers repeated minutes."""

    def __init__(self, zone: str | None) -> None:
        self.tz: pytz.BaseTzInfo | None = None
        if zone:
            try:
                self.tz = pytz.timezone(zone)
            except pytz.UnknownTimeZoneError:
                self.tz = None  # a bad profile zone must not cost the draft; show UTC only
        self.zone = self.tz.zone if self.tz else None
        self._cache: dict[int, Moment] = {}

    def moment(self, dt: datetime) -> Moment:
        if dt.tzinfo is None:
            raise ValueError(f"naive datetime in postmortem facts: {dt!r}")
        key = int(dt.timestamp()) // 60
        found = self._cache.get(key)
        if found is None:
            utc = _minute(dt.astimezone(UTC))
            local = None
            both = f"{utc} UTC"
            if self.tz is not None:
                shown = dt.astimezone(self.tz)
                local = f"{_minute(shown)} {shown.tzname()}"
                same_day = local[:10] == utc[:10]
                both = f"{utc} UTC ({local[11:] if same_day else local})"
            found = self._cache[key] = Moment(utc, local, both)
        return found

    def maybe(self, dt: datetime | None) -> Moment | None:
        return None if dt is None else self.moment(dt)


_BLANKS = re.compile(r"\s*[\r\n]+\s*")


class _Text:
    """Turns user strings into view strings; names repeat a lot, so they are remembered."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    @staticmethod
    def inline(text: str | None) -> str | None:
        if text is None:
            return None
        cleaned = safe_text(text).strip()
        if "\n" in cleaned or "\r" in cleaned:
            cleaned = _BLANKS.sub(" ", cleaned)
        return cleaned.replace("|", "\\|")

    def name(self, text: str | None) -> str | None:
        """A person, rotation or other short label: inline text, remembered."""
        if text is None:
            return None
        found = self._names.get(text)
        if found is None:
            found = self._names[text] = self.inline(text) or ""
        return found

    @staticmethod
    def block(text: str | None) -> str | None:
        if text is None or not text.strip():
            return None
        return safe_text(text).strip()

    def link(self, url: str | None) -> str | None:
        if not url:
            return None
        cleaned = safe_text(url).strip()
        return cleaned.replace(" ", "%20").replace(")", "%29").replace("|", "%7C")


def build_view(facts: PostmortemFacts) -> View:
    """What a template sees of ``facts``: sorted, formatted, every user string made safe."""
    clock, text = _Clock(facts.commander_tz), _Text()
    start = facts.declared_at
    first_ack = facts.acknowledged_at or min(
        (p.acknowledged_at for p in facts.pages if p.acknowledged_at), default=None
    )
    incident = Incident(
        number=facts.number,
        title=text.inline(facts.title) or "",
        severity=text.inline(facts.severity) or "",
        status=text.inline(facts.status) or "",
        channel=text.inline(facts.channel_name),
        commander=text.inline(facts.commander),
        declarer=text.inline(facts.declarer) or "",
        roles=tuple(
            Role(text.inline(r) or "", text.inline(p) or "") for r, p in facts.roles.items()
        ),
        summary=text.block(facts.summary),
        impact=text.block(facts.impact),
    )
    milestones = tuple(
        Milestone(name, clock.maybe(at), UNKNOWN if name == "Declared" else _since(start, at))
        for name, at in (
            ("Detected", facts.detected_at),
            ("Declared", start),
            ("Acknowledged", first_ack),
            ("Mitigated", facts.mitigated_at),
            ("Resolved", facts.resolved_at),
        )
    )
    detect = None if facts.detected_at is None else start - facts.detected_at
    durations = Durations(
        detect_to_declare=format_duration(detect),
        acknowledge=_since(start, first_ack),
        mitigate=_since(start, facts.mitigated_at),
        resolve=_since(start, facts.resolved_at),
    )
    history = tuple(
        SeverityStep(
            clock.moment(c.at),
            text.name(c.actor) or "",
            text.name(c.old),
            text.name(c.new) or "",
        )
        for c in sorted(facts.severity_history, key=lambda c: c.at)
    )
    timeline = []
    for item in sorted(facts.timeline, key=lambda i: i.at):
        at = clock.moment(item.at)
        kind = text.name(item.kind) or ""
        timeline.append(
            Entry(
                utc=at.utc,
                local=at.local,
                actor=text.name(item.actor) or "",
                kind=kind,
                label=_KIND_LABELS.get(item.kind, kind.capitalize()),
                text=text.inline(item.text) or "",
                permalink=text.link(item.permalink),
            )
        )
    pages = tuple(
        Page(
            user=text.name(p.user) or "",
            rotation=text.name(p.rotation),
            level=p.level,
            paged=clock.moment(p.paged_at),
            acknowledged=clock.maybe(p.acknowledged_at),
            acknowledged_by=text.name(p.acknowledged_by),
            response=_since(p.paged_at, p.acknowledged_at),
            escalated=clock.maybe(p.escalated_at),
        )
        for p in sorted(facts.pages, key=lambda p: p.paged_at)
    )
    actions = tuple(
        Action(
            text=text.inline(a.text) or "",
            owner=text.name(a.owner),
            created=clock.moment(a.created_at),
            created_by=text.name(a.created_by) or "",
        )
        for a in facts.action_items
    )
    participants = tuple(dict.fromkeys(text.inline(p) or "" for p in facts.participants))
    return View(
        incident=incident,
        zone=clock.zone,
        milestones=milestones,
        durations=durations,
        severity_history=history,
        timeline=tuple(timeline),
        pages=pages,
        participants=participants,
        action_items=actions,
    )


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
