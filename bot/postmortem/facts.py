"""What the bot knows about an incident when it drafts the postmortem.

Plain frozen values, filled by the incident domain from its database. Every datetime is aware
and in UTC; people are display strings (``"@alice"``) already resolved by the caller. Strings
typed by users (titles, notes, summaries) arrive here raw: rendering redacts and defuses them.

Below them is ``View``, what a postmortem template sees, made from the facts by
``view.build_view``: the field names here are the names a team's template can use.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
TIMELINE_KINDS = (
    "declared",
    "severity",
    "status",
    "commander",
    "page",
    "acknowledge",
    "escalate",
    "note",
    "action",
    "pinned",
    "resolved",
    "alert",
    "role",
    "update",
    "reopened",
    "command",
)


@dataclass(frozen=True)
class TimelineItem:
    """One line of the incident timeline: who did what, when."""

    at: datetime
    actor: str
    kind: str
    text: str
    permalink: str | None = None


@dataclass(frozen=True)
class SeverityChange:
    """A severity set at declaration (``old`` is None) or changed later."""

    at: datetime
    actor: str
    old: str | None
    new: str


@dataclass(frozen=True)
class PageFact:
    """One page sent to one person; ``level`` 1 is the first responder, 2 the escalation..."""

    user: str
    rotation: str | None
    paged_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalated_at: datetime | None
    level: int
    acknowledged_via: str | None = None  # "slack" (the DM button) or "link"
    notifications: tuple[NotificationFact, ...] = ()


@dataclass(frozen=True)
class NotificationFact:
    """The page sent to one of the person's contacts outside Slack."""

    contact: str  # the contact's name, never its URL
    at: datetime  # sent, or due when it never was
    outcome: str  # delivered, failed, cancelled (answered first), pending


@dataclass(frozen=True)
class ActionItem:
    """A follow-up recorded with ``/incident action``."""

    text: str
    owner: str | None
    created_at: datetime
    created_by: str
    number: int | None = None
    status: str = "open"
    due: date | None = None


@dataclass(frozen=True)
class PostmortemFacts:
    """Everything a postmortem draft is made from."""

    number: int
    title: str
    severity: str
    status: str
    channel_name: str | None
    commander: str | None
    declarer: str
    roles: dict[str, str]
    declared_at: datetime
    detected_at: datetime | None
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    summary: str | None
    impact: str | None
    commander_tz: str | None
    severity_history: tuple[SeverityChange, ...] = ()
    timeline: tuple[TimelineItem, ...] = ()
    participants: tuple[str, ...] = ()
    pages: tuple[PageFact, ...] = ()
    action_items: tuple[ActionItem, ...] = ()


# What a template sees, made from the facts by view.build_view. Every string a person typed
# is redacted and cannot notify anyone; all but Incident.summary and Incident.impact are one
# line with "|" escaped, so they are safe in a Markdown table cell. Times are "YYYY-MM-DD HH:MM".


@dataclass(frozen=True, slots=True)
class Moment:
    """An instant as people read it: ``utc``; ``local`` in the commander's zone (or None);
    ``both``, e.g. "2026-03-17 15:42 UTC (08:42 PDT)"."""

    utc: str
    local: str | None
    both: str


@dataclass(frozen=True, slots=True)
class Role:
    """A role in the incident (``name``, e.g. "Communications") and who holds it."""

    name: str
    person: str


@dataclass(frozen=True, slots=True)
class Incident:
    """The incident itself; ``summary`` and ``impact`` may span lines."""

    number: int
    title: str
    severity: str
    status: str
    channel: str | None
    commander: str | None
    declarer: str
    roles: tuple[Role, ...]
    summary: str | None
    impact: str | None


@dataclass(frozen=True, slots=True)
class Milestone:
    """Detected, Declared, Acknowledged, Mitigated or Resolved; ``at`` None if it never came."""

    name: str
    at: Moment | None
    since_declared: str


@dataclass(frozen=True, slots=True)
class Durations:
    """Human durations from declaration, or an em dash when the moment never came."""

    detect_to_declare: str
    acknowledge: str
    mitigate: str
    resolve: str


@dataclass(frozen=True, slots=True)
class SeverityStep:
    """One severity change; ``old`` is None for the severity given at declaration."""

    at: Moment
    actor: str
    old: str | None
    new: str


@dataclass(slots=True)  # not frozen: a draft makes one per timeline line, and frozen's
class Entry:  # __init__ costs three times as much; templates cannot assign attributes anyway
    """One timeline line: ``utc``/``local`` times, ``kind`` as recorded, ``label`` to show."""

    utc: str
    local: str | None
    actor: str
    kind: str
    label: str
    text: str
    permalink: str | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page; ``response`` is the time it took to acknowledge, or an em dash."""

    user: str
    rotation: str | None
    level: int
    paged: Moment
    acknowledged: Moment | None
    acknowledged_by: str | None
    response: str
    escalated: Moment | None
    acknowledged_via: str | None = None  # "Slack button" or "link"
    notifications: tuple[Sent, ...] = ()


@dataclass(frozen=True)
class Sent:
    """One notification of a page outside Slack, as shown."""

    at: Moment
    contact: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Action:
    """An action item; ``owner`` None when nobody took it yet."""

    text: str
    owner: str | None
    created: Moment
    created_by: str
    number: int | None = None
    status: str = "open"
    due: str | None = None


@dataclass(frozen=True, slots=True)
class View:
    """Everything a template sees; each field is one top-level template name."""

    incident: Incident
    zone: str | None
    milestones: tuple[Milestone, ...]
    durations: Durations
    severity_history: tuple[SeverityStep, ...]
    timeline: tuple[Entry, ...]
    pages: tuple[Page, ...]
    participants: tuple[str, ...]
    action_items: tuple[Action, ...]

    def names(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def example_incident() -> PostmortemFacts:
    """A realistic resolved SEV2 that touches every field.

    A checkout outage declared in Dublin and handed over to San Francisco. Used to validate
    templates before they are needed, by the golden-file test and by the benchmark.
    """
    t0 = datetime(2026, 3, 17, 15, 42, tzinfo=UTC)

    def at(minutes: int) -> datetime:
        return t0 + timedelta(minutes=minutes)

    link = "https://acme.slack.com/archives/C0INC42/p17737624"
    timeline = (
        TimelineItem(at(-4), "Alertmanager", "alert", "CheckoutErrorRateHigh firing: 5xx at 12%"),
        TimelineItem(at(0), "@aoife", "declared", "SEV3: Checkout failing for card payments"),
        TimelineItem(at(2), "@aoife", "page", "Paged @niamh (payments-primary)"),
        TimelineItem(at(6), "@niamh", "acknowledge", "Acknowledged the page"),
        TimelineItem(at(9), "@aoife", "severity", "SEV3 → SEV2: EU and US both affected"),
        TimelineItem(
            at(14),
            "@niamh",
            "note",
            "Card auth calls to the PSP time out after 30 s; connection pool at 100%. "
            "Config dump had PSP_API_KEY=sk_live_51HxQm2K9vZpLr8TnWq3eYb7 in it, rotating.",
        ),
        TimelineItem(at(21), "@niamh", "status", "investigating → identified"),
        TimelineItem(
            at(27),
            "@aoife",
            "pinned",
            "Rollback of payments-api 4.18.0 started; ETA 10 min. Please don't @channel.",
            f"{link}0001",
        ),
        TimelineItem(at(41), "@niamh", "status", "identified → monitoring"),
        TimelineItem(
            at(48), "@aoife", "action", "Alert on PSP connection-pool saturation (owner @niamh)"
        ),
        TimelineItem(
            at(78), "@aoife", "commander", "@aoife → @marcus (Dublin hands over to San Francisco)"
        ),
        TimelineItem(at(80), "@marcus", "page", "Paged @priya (payments-primary)"),
        TimelineItem(at(95), "oncall-bot", "escalate", "No acknowledgement in 15 min; paged @sam"),
        TimelineItem(at(97), "@sam", "acknowledge", "Acknowledged the page"),
        TimelineItem(
            at(110),
            "@marcus",
            "note",
            "Error rate back to baseline (0.2%) for 60 min | p99 checkout 850 ms",
        ),
        TimelineItem(
            at(125), "@marcus", "action", "Canary payments-api releases for 30 min (no owner yet)"
        ),
        TimelineItem(at(131), "@marcus", "resolved", "Rollback held for 90 min, PSP pool healthy"),
    )
    return PostmortemFacts(
        number=42,
        title="Checkout failing for card payments",
        severity="SEV2",
        status="resolved",
        channel_name="inc-42-checkout-failing-for-card-payments",
        commander="@marcus",
        declarer="@aoife",
        roles={"Communications": "@carol", "Scribe": "@niamh"},
        declared_at=t0,
        detected_at=at(-4),
        acknowledged_at=at(6),
        mitigated_at=at(41),
        resolved_at=at(131),
        summary=(
            "payments-api 4.18.0 shrank the PSP connection pool from 200 to 20. Under the "
            "afternoon peak, card authorisations queued and timed out, so checkout failed for "
            "card payments. Rolling back to 4.17.2 restored service."
        ),
        impact=(
            "From 15:38 to 16:23 UTC (45 minutes) about 12% of checkouts failed in the EU and "
            "US, roughly 3,100 orders. PayPal and gift-card payments were not affected."
        ),
        commander_tz="America/Los_Angeles",
        severity_history=(
            SeverityChange(at(0), "@aoife", None, "SEV3"),
            SeverityChange(at(9), "@aoife", "SEV3", "SEV2"),
        ),
        timeline=timeline,
        participants=("@aoife", "@niamh", "@carol", "@marcus", "@priya", "@sam"),
        pages=(
            PageFact("@niamh", "payments-primary", at(2), at(6), "@niamh", None, 1),
            PageFact("@priya", "payments-primary", at(80), None, None, at(95), 1),
            PageFact("@sam", "payments-secondary", at(95), at(97), "@sam", None, 2),
        ),
        action_items=(
            ActionItem("Alert on PSP connection-pool saturation", "@niamh", at(48), "@aoife", number=7,
                       due=date(2026, 3, 20)),
            ActionItem("Canary payments-api releases for 30 min", None, at(125), "@marcus", number=8),
        ),
    )


def minimal_incident() -> PostmortemFacts:
    """An incident with every optional fact missing, to check templates cope with gaps."""
    return PostmortemFacts(
        number=1,
        title="Something is wrong",
        severity="SEV4",
        status="investigating",
        channel_name=None,
        commander=None,
        declarer="@someone",
        roles={},
        declared_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        detected_at=None,
        acknowledged_at=None,
        mitigated_at=None,
        resolved_at=None,
        summary=None,
        impact=None,
        commander_tz=None,
    )
