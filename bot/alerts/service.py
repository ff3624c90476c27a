"""What an alert notification does: page the on-call person, declare an incident when the
severity maps to one, attach what follows to what is already open, note resolutions.

A notification is handled in one transaction that also queues its Slack work in the outbox,
so the sender gets its answer at once. Repeats act once: every firing of an alert (its
identity and start time) is claimed the first time it is seen, all of a notification's alerts
in one statement, and a body already acted on is answered from a read without taking the
write lock. A group's notifications are serialised on a counter row, so two deliveries of one
group never both page. Decisions where Alertmanager says nothing are written down in
docs/alerts.md; what the messages say is bot/alerts/messages.py.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.alerts.alertmanager import Alert, Notification
from bot.alerts.messages import details, listing, title_of
from bot.clock import Clock
from bot.incidents import paging
from bot.incidents import service as incidents
from bot.incidents.commands import severity_from_word
from bot.incidents.flows import IncidentFlows
from bot.incidents.paging import PagingFlows, escalation_key
from bot.jobs.scheduler import cancel_job, claim, claim_many
from bot.models import Claim, Counter, Incident, Page
from bot.oncall import service as oncall
from bot.oncall.service import Directory, OncallError
from bot.outbox import enqueue
from bot.schedule import Rotation
from bot.storage import Storage
from bot.text import escape, truncate

log = logging.getLogger(__name__)
DEFAULT_SEVERITIES: Mapping[str, int] = {"critical": 1}


@dataclass(frozen=True)
class AlertPolicy:
    """Which alert severities declare an incident, and of which SEV; the rest only page.
    `sev1`…`sev4` always mean that SEV; other labels go through `severities` (any case)."""

    severities: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_SEVERITIES))

    @classmethod
    def from_settings(cls, configured: Mapping[str, int]) -> AlertPolicy:
        """ALERT_SEVERITIES (parsed by bot.config.parse_severity_map), else the default."""
        return cls(dict(configured)) if configured else cls()

    def incident_severity(self, label: str) -> int | None:
        text = label.strip().lower()
        named = severity_from_word(text) if text.startswith("sev") else None
        return named if named is not None else {k.lower(): v for k, v in self.severities.items()}.get(text)


@dataclass
class Outcome:
    """What a notification did, as the sender is told."""

    action: str = "duplicate"  # declared | paged | attached | noted | unrouted | duplicate | ignored
    incident: int | None = None
    paged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"ok": True, "action": self.action, "incident": self.incident, "paged": self.paged,
                "warnings": self.warnings}


@dataclass(frozen=True)
class Group:
    """One alert group as stored: the dedup key on incidents and pages, and a short hash."""

    key: str
    hash: str

    @classmethod
    def of(cls, notification: Notification) -> Group:
        key = f"{notification.kind}:{notification.dedup_key}"
        if len(key) > 200:  # indexed column: long group keys are stored by their hash
            key = f"{notification.kind}:sha256:{hashlib.sha256(notification.dedup_key.encode()).hexdigest()}"
        return cls(key=key, hash=hashlib.sha256(key.encode()).hexdigest()[:24])

    def body_key(self, episode: int, digest: str) -> str:
        """Once-only marker of a notification body acted on in this episode of the group."""
        return f"alert:{self.hash}:body:{episode}:{digest[:32]}"

    def claim_key(self, what: str, alert: Alert, episode: int) -> str:
        """Once-only marker of one firing (or resolution) of an alert of this group."""
        identity = alert.identity if alert.starts_at else f"{alert.identity}#{episode}"
        return f"alert:{self.hash}:{what}:{hashlib.sha256(identity.encode()).hexdigest()[:32]}"


# --- the group's state, from incidents, pages and once-only markers -------------------------


def _take(free: set[str], key: str) -> bool:
    """True the first time a free key is asked for (one alert listed twice acts once)."""
    if key in free:
        free.discard(key)
        return True
    return False


def lock_group(*, db_session: Session, group: Group) -> None:
    """Count the group's notifications; on PostgreSQL the row lock queues concurrent ones."""
    incidents.next_number(db_session=db_session, name=f"alerts:{group.hash}")


def episode_of(*, db_session: Session, group: Group) -> tuple[int, datetime | None]:
    """How many times the group resolved after firing, and when it last did."""
    count = db_session.exec(select(Counter.value).where(Counter.name == f"alert-resolutions:{group.hash}")).first() or 0
    if not count:
        return 0, None
    marker = db_session.get(Claim, f"alert:{group.hash}:resolved:{count}")
    return count, marker.claimed_at if marker else None


def record_resolution(*, db_session: Session, group: Group, now: datetime) -> None:
    """The group resolved: what fires next is a new episode (pages and incidents start over)."""
    count = incidents.next_number(db_session=db_session, name=f"alert-resolutions:{group.hash}")
    claim(db_session, f"alert:{group.hash}:resolved:{count}", now)


def open_incident(*, db_session: Session, group: Group) -> Incident | None:
    """The newest open incident of the group."""
    return db_session.exec(
        select(Incident).where(Incident.dedup_key == group.key, col(Incident.status).in_(incidents.OPEN))
        .order_by(col(Incident.id).desc())
    ).first()


def incident_since(*, db_session: Session, group: Group, since: datetime | None) -> Incident | None:
    """The newest incident of the group declared after `since` (open or not)."""
    query = select(Incident).where(Incident.dedup_key == group.key)
    if since is not None:
        query = query.where(col(Incident.declared_at) > since)
    return db_session.exec(query.order_by(col(Incident.id).desc())).first()


def open_alert_page(*, db_session: Session, group: Group, since: datetime | None) -> Page | None:
    """The group's page without an incident that still waits for an answer (escalations of
    it carry the same key, so the newest one is where the chain stands)."""
    page = db_session.exec(
        select(Page).where(Page.dedup_key == group.key, col(Page.incident_id).is_(None)).order_by(col(Page.id).desc())
    ).first()
    if page is None or page.acknowledged_at is not None or page.escalated_at is not None or page.resolved_at is not None:
        return None
    if since is not None and page.paged_at <= since:
        return None  # paged before the group last resolved: that episode is over
    return page


def lead_alert(alerts: list[Alert], policy: AlertPolicy) -> tuple[Alert, int | None]:
    """The alert that speaks for the group (the worst severity, first wins) and its SEV."""
    ranked = sorted(alerts, key=lambda a: policy.incident_severity(a.severity) or 5)
    lead = ranked[0]
    return lead, policy.incident_severity(lead.severity)


# --- flows ------------------------------------------------------------------------------------


class AlertFlows:
    """Alert notifications in, pages, incidents and timeline entries out."""

    def __init__(self, *, storage: Storage, clock: Clock, rotations: dict[str, Rotation], people: Directory,
                 incidents: IncidentFlows, paging: PagingFlows, incidents_channel: str | None,
                 wake: Callable[[], None]) -> None:
        self.storage = storage
        self.clock = clock
        self.rotations = rotations
        self.people = people
        self.incidents = incidents
        self.paging = paging
        self.incidents_channel = incidents_channel
        self.wake = wake  # after a commit: the outbox and scheduler have new work

    def receive(self, notification: Notification, policy: AlertPolicy) -> Outcome:
        """Act on one notification in one transaction; returns what it did. A body already
        acted on in this episode of its group (Alertmanager repeats a notification until it
        changes) is answered from a read, without the write lock."""
        repeat = self._repeat(notification)
        if repeat is not None:
            return repeat
        for attempt in range(3):
            try:
                with self.storage.session() as session:
                    outcome = self._receive(session, notification, policy, self.clock.now())
                break
            except IntegrityError:  # two first notifications of a group raced to create its counter
                if attempt == 2:
                    raise
        self.wake()
        log.info("%s notification for %s: %s (incident %s, paged %s)", notification.kind,
                 Group.of(notification).hash, outcome.action, outcome.incident, outcome.paged)
        return outcome

    def _repeat(self, n: Notification) -> Outcome | None:
        """The answer to a body already acted on in the group's current episode, else None."""
        if not n.body_digest:
            return None
        group = Group.of(n)
        with self.storage.read() as session:
            episode, _ = episode_of(db_session=session, group=group)
            if session.get(Claim, group.body_key(episode, n.body_digest)) is None:
                return None
            incident = open_incident(db_session=session, group=group)
        log.info("%s notification for %s: a repeat (incident %s)", n.kind, group.hash, incident.id if incident else None)
        return Outcome(action="duplicate", incident=incident.id if incident else None)

    def _receive(self, session: Session, n: Notification, policy: AlertPolicy, now: datetime) -> Outcome:
        group = Group.of(n)
        lock_group(db_session=session, group=group)
        episode, resolved_at = episode_of(db_session=session, group=group)
        active = f"alert:{group.hash}:active:{episode}"
        if n.firing:
            claim(session, active, now)
        # every alert's marker in one statement: an alert is new when its marker was free
        firing_keys = [group.claim_key("fired", a, episode) for a in n.firing]
        timed = [a for a in n.resolved if a.starts_at]
        resolved_keys = [group.claim_key("resolved", a, episode) for a in timed]
        free = claim_many(session, [*firing_keys, *resolved_keys, group.body_key(episode, n.body_digest)], now)
        new_firing = [a for a, key in zip(n.firing, firing_keys) if _take(free, key)]
        # the group resolves once per episode, and only after something fired in it
        group_resolved = n.status == "resolved" and session.get(Claim, active) is not None
        new_timed = {id(a) for a, key in zip(timed, resolved_keys) if _take(free, key)}
        new_resolved = [a for a in n.resolved if (id(a) in new_timed if a.starts_at else group_resolved)]
        outcome = Outcome()
        if new_firing:
            self._fire(session, n, group, new_firing, policy, now, resolved_at, outcome)
        if new_resolved or group_resolved:
            self._resolve(session, n, group, new_resolved, group_resolved, now, resolved_at, outcome)
        if group_resolved:
            record_resolution(db_session=session, group=group, now=now)
        if outcome.action == "duplicate":
            incident = open_incident(db_session=session, group=group)
            outcome.incident = incident.id if incident else None
        return outcome

    def _fire(self, session: Session, n: Notification, group: Group, alerts: list[Alert], policy: AlertPolicy,
              now: datetime, resolved_at: datetime | None, outcome: Outcome) -> None:
        lead, severity = lead_alert(alerts, policy)
        incident = open_incident(db_session=session, group=group)
        if incident is not None:
            incidents.add_entry(db_session=session, incident=incident, at=now, actor=n.source, kind="alert",
                                text=f"Alert firing: {listing(alerts, n.truncated)}")
            enqueue(session, "incident.post", {"incident_id": incident.id,
                                               "text": f":rotating_light: Also firing: {listing(alerts, n.truncated)}"}, now=now)
            outcome.action, outcome.incident = "attached", incident.id
            return
        page = open_alert_page(db_session=session, group=group, since=resolved_at) if severity is None else None
        if page is not None:
            text = f":rotating_light: Also firing in this alert group: {listing(alerts)}"
            enqueue(session, "slack.post", {"channel": page.user, "text": text}, now=now)
            outcome.action = "attached"
            return
        rotation, note = self._route(lead, outcome)
        if severity is not None:
            self._declare(session, n, group, alerts, lead, severity, rotation, note, now, outcome)
        elif rotation is not None:
            self._page(session, n, group, alerts, lead, rotation, note, now, outcome)
        else:
            self._unrouted(session, n, alerts, lead, note, now, outcome)

    def _route(self, lead: Alert, outcome: Outcome) -> tuple[Rotation | None, str | None]:
        """The rotation named by the alert's label, else the default one, and a note saying so."""
        name = lead.rotation
        if name and name in self.rotations:
            return self.rotations[name], None
        unknown = f"The rotation label `{escape(truncate(name, 80))}` names no rotation" if name else None
        try:
            default = oncall.find_rotation(self.rotations, None)
        except OncallError as exc:
            note = f"{unknown}; nobody was paged: {exc}" if unknown else f"Nobody was paged: {exc}"
            outcome.warnings.append(note)
            return None, note
        if unknown:
            note = f"{unknown}; paged the default rotation `{default.name}`."
            outcome.warnings.append(note)
            return default, note
        return default, None

    def _responder(self, session: Session, rotation: Rotation, now: datetime) -> str:
        shift = oncall.on_call_at(db_session=session, rotation=rotation, at=now)
        return str(self.people.resolve(shift.user))

    def _declare(self, session: Session, n: Notification, group: Group, alerts: list[Alert], lead: Alert,
                 severity: int, rotation: Rotation | None, note: str | None, now: datetime, outcome: Outcome) -> None:
        """Declare an incident as `/incident declare` does; the on-call person commands it."""
        incident = incidents.declare_incident(
            db_session=session, title=title_of(lead, n), severity=severity, declarer=n.source, now=now,
            rotation=rotation.name if rotation else None, description=details(n, alerts, lead, note),
            dedup_key=group.key,
        )
        incidents.add_entry(db_session=session, incident=incident, at=now, actor=n.source, kind="alert",
                            text=f"Alert firing: {listing(alerts, n.truncated)}" + (f". {note}" if note else ""))
        responder = self._responder(session, rotation, now) if rotation is not None else None
        enqueue(session, "incident.open", {"incident_id": incident.id, "invite": [responder] if responder else [],
                                           "source": lead.generator_url or None}, now=now)
        if responder is not None and rotation is not None:
            incidents.set_commander(db_session=session, incident=incident, commander=responder, actor=n.source, now=now)
            self.paging.page(session, incident=incident, user_id=responder, rotation=rotation.name,
                                                paged_by=n.source, now=now, reason=title_of(lead, n), dedup_key=group.key)
            outcome.paged.append(responder)
        self.incidents.schedule_reminder(session, incident, declared=True)
        outcome.action, outcome.incident = "declared", incident.id

    def _page(self, session: Session, n: Notification, group: Group, alerts: list[Alert], lead: Alert,
              rotation: Rotation, note: str | None, now: datetime, outcome: Outcome) -> None:
        """Page the rotation's on-call person about an alert that declares no incident."""
        responder = self._responder(session, rotation, now)
        label = f"[{escape(truncate(lead.severity.upper(), 20))}] " if lead.severity else ""
        reason = label + title_of(lead, n) + (f" — {note}" if note else "")
        self.paging.page(session, incident=None, user_id=responder, rotation=rotation.name,
                                            paged_by=n.source, now=now, reason=reason, dedup_key=group.key)
        enqueue(session, "slack.post", {"channel": responder, "text": details(n, alerts, lead, None)}, now=now)
        outcome.action = "paged"
        outcome.paged.append(responder)

    def _unrouted(self, session: Session, n: Notification, alerts: list[Alert], lead: Alert, note: str | None,
                  now: datetime, outcome: Outcome) -> None:
        """Nobody to page: say so where people look, so the alert is not lost."""
        channel = self.incidents_channel
        if channel:
            text = (f":warning: Alert firing with nobody to page: *{title_of(lead, n)}*\n"
                    f"{details(n, alerts, lead, note)}")
            enqueue(session, "slack.post", {"channel": channel, "text": text}, now=now)
        outcome.action = "unrouted"

    def _resolve(self, session: Session, n: Notification, group: Group, alerts: list[Alert], group_resolved: bool,
                 now: datetime, resolved_at: datetime | None, outcome: Outcome) -> None:
        """Note resolutions on the group's incident; an unanswered alert page stops escalating."""
        names = listing(alerts or list(n.resolved))
        incident = open_incident(db_session=session, group=group) or \
            incident_since(db_session=session, group=group, since=resolved_at)
        if incident is not None:
            incidents.add_entry(db_session=session, incident=incident, at=now, actor=n.source, kind="alert",
                                text=f"alert resolved: {names}")
            if incident.status != "resolved":
                text = (f":white_check_mark: Alert resolved: {names}. The incident stays open until someone "
                        f"runs `/incident resolve`.")
                enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
            outcome.incident = incident.id
            if outcome.action == "duplicate":
                outcome.action = "noted"
            return
        page = open_alert_page(db_session=session, group=group, since=resolved_at) if group_resolved else None
        if page is not None:
            cancel_job(session, key=escalation_key(page))
            paging.resolve_page(db_session=session, page=page, now=now)
            enqueue(session, "page.refresh", {"page_id": page.id}, now=now)  # its buttons go
            text = f":white_check_mark: Resolved: {names}. The page above stops escalating."
            enqueue(session, "slack.post", {"channel": page.user, "text": text}, now=now)
            if outcome.action == "duplicate":
                outcome.action = "noted"
        elif outcome.action == "duplicate":
            outcome.action = "ignored"
