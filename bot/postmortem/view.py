"""What a postmortem template sees: ``build_view`` makes a ``View`` from ``PostmortemFacts``.

Instants are shown in UTC and the commander's zone, durations are counted from the
declaration (``format_duration``), and every string a person typed is redacted, has its
mentions defused and, for one-line fields, is a safe Markdown table cell.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytz

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
    Sent,
    SeverityStep,
    View,
)
from bot.postmortem.redact import hinted, safe_text

UNKNOWN = "—"
# Timeline kinds read as their own word capitalised, except these.
_VIA = {"slack": "Slack button", "link": "link"}
_OUTCOMES = {"cancelled": "not sent (answered first)", "pending": "not sent yet"}
_KIND_LABELS = {"acknowledge": "Acknowledged", "escalate": "Escalated", "action": "Action item",
                "responding": "Responding", "update": "Stakeholder update", "command": "Command"}


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
    """Turns user strings into view strings; names repeat a lot, so they are remembered, and
    so are the heads of links that differ only in their trailing digits (message permalinks)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._plain_heads: set[str] = set()

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
        # A link that ends in digits and comes out unchanged, with no redaction hint in its
        # head (what comes before those digits), comes out unchanged with any other digits
        # after that head: no hint holds a digit, no mention, mask, strip or escape can be
        # completed by digits alone. So a draft looks at its permalinks' common head once.
        head = url.rstrip("0123456789")
        if head != url and head in self._plain_heads:
            return url
        cleaned = safe_text(url).strip()
        shown = cleaned.replace(" ", "%20").replace(")", "%29").replace("|", "%7C")
        if shown == url and head != url and not hinted(head):
            self._plain_heads.add(head)
        return shown


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
            acknowledged_via=_VIA.get(p.acknowledged_via or ""),
            notifications=tuple(
                Sent(clock.moment(n.at), text.name(n.contact) or "", _OUTCOMES.get(n.outcome, n.outcome))
                for n in sorted(p.notifications, key=lambda n: n.at)
            ),
        )
        for p in sorted(facts.pages, key=lambda p: p.paged_at)
    )
    actions = tuple(
        Action(
            text=text.inline(a.text) or "",
            owner=text.name(a.owner),
            created=clock.moment(a.created_at),
            created_by=text.name(a.created_by) or "",
            number=a.number,
            status=a.status,
            due=a.due.isoformat() if a.due else None,
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
