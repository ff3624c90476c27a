"""Pages and escalation chains: the page's service functions, and the paging flows that
chain them (page, acknowledge, escalate by hand or by timeout) and queue their Slack work.

A page is a DM with Acknowledge and Escalate. Unless acknowledged within the rotation's
`escalation_minutes`, it escalates to the rotation's `escalate_to` rotation, then that one's,
along the chain; each step is announced in the incident channel. Timers are one-off jobs in
the persistent store, cancelled by an acknowledgement, an escalation or a resolve."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.clock import Clock
from bot.incidents.commands import PageSomeone
from bot.incidents.service import IncidentError, add_entry
from bot.jobs.scheduler import cancel_job, request_job
from bot.models import Incident, Page
from bot.oncall import service as oncall
from bot.oncall.service import Directory, OncallError
from bot.outbox import enqueue
from bot.schedule import Rotation
from bot.storage import Storage
from bot.text import safe, user

TIMEOUT_ACTOR = "escalation-timer"
ESCALATE = "page.escalate"


def page_person(
    *, db_session: Session, user: str, paged_by: str, now: datetime, incident: Incident | None = None,
    rotation: str | None = None, level: int = 0, reason: str | None = None, dedup_key: str | None = None,
) -> Page:
    """Record a page (and its timeline entry when it belongs to an incident)."""
    if incident is not None and incident.status == "resolved":
        raise IncidentError(f"Incident #{incident.id} is resolved; nobody needs paging for it.")
    page = Page(
        incident_id=incident.id if incident else None, user=user, rotation=rotation, level=level,
        paged_by=paged_by, reason=reason, dedup_key=dedup_key, paged_at=now,
    )
    db_session.add(page)
    db_session.flush()
    if incident is not None:
        via = f" (on call for {rotation})" if rotation else ""
        step = f", escalation step {level}" if level else ""
        add_entry(db_session=db_session, incident=incident, at=now, actor=paged_by, kind="page",
                  text=f"Paged <@{user}>{via}{step}", new=user)
    return page


def get_page(*, db_session: Session, page_id: int) -> Page:
    page = db_session.get(Page, page_id)
    if page is None:
        raise IncidentError(f"There is no page #{page_id}.")
    return page


def acknowledge_page(*, db_session: Session, page: Page, actor: str, now: datetime) -> Page:
    """The paged person is on it; a second press says so and changes nothing."""
    if page.acknowledged_at is not None:
        raise IncidentError(f"Already acknowledged by <@{page.acknowledged_by}>.")
    if page.escalated_at is not None:
        raise IncidentError("This page was already escalated to the next responder.")
    if page.resolved_at is not None:
        raise IncidentError("This alert resolved by itself; there is nothing left to acknowledge.")
    page.acknowledged_at, page.acknowledged_by = now, actor
    db_session.add(page)
    if page.incident_id is not None:
        incident = db_session.get(Incident, page.incident_id)
        assert incident is not None
        if incident.acknowledged_at is None:
            incident.acknowledged_at = now
            db_session.add(incident)
        add_entry(db_session=db_session, incident=incident, at=now, actor=actor, kind="acknowledge",
                  text=f"<@{actor}> acknowledged the page")
    return page


def mark_escalated(*, db_session: Session, page: Page, actor: str, now: datetime) -> bool:
    """Close a page as escalated; False when it was acknowledged, escalated or resolved already."""
    if page.acknowledged_at is not None or page.escalated_at is not None or page.resolved_at is not None:
        return False
    if page.incident_id is not None:
        incident = db_session.get(Incident, page.incident_id)
        if incident is not None and incident.status == "resolved":
            return False
    page.escalated_at, page.escalated_by = now, actor
    db_session.add(page)
    return True


def pages_of(*, db_session: Session, incident: Incident) -> list[Page]:
    return list(db_session.exec(select(Page).where(Page.incident_id == incident.id).order_by(col(Page.id))).all())


def resolve_page(*, db_session: Session, page: Page, now: datetime) -> None:
    """The alert behind an unanswered page resolved by itself: the page needs no answer now."""
    page.resolved_at = now
    db_session.add(page)


def escalation_key(page: Page) -> str:
    """The key of a page's escalation timer."""
    return f"escalate:{page.incident_id or 0}:{page.id}"


class PagingFlows:
    """Paging people and walking the escalation chain; each step queues its Slack work."""

    def __init__(self, *, storage: Storage, clock: Clock, rotations: dict[str, Rotation], people: Directory,
                 wake: Callable[[], None]) -> None:
        self.storage = storage
        self.clock = clock
        self.rotations = rotations
        self.people = people
        self.wake = wake  # after a commit: the outbox and scheduler have new work

    def page(self, session: Session, *, incident: Incident | None, user_id: str, rotation: str | None,
             paged_by: str, now: datetime, level: int = 0, reason: str | None = None,
             dedup_key: str | None = None, invite: bool = True) -> Page:
        """Page one person: the DM, an invite to the channel (unless the caller's own step
        invites them already), and the escalation timer."""
        page = page_person(db_session=session, user=user_id, paged_by=paged_by, now=now, incident=incident,
                           rotation=rotation, level=level, reason=reason, dedup_key=dedup_key)
        enqueue(session, "page.send", {"page_id": page.id}, now=now)
        if incident is not None:
            if invite:
                enqueue(session, "incident.invite", {"incident_id": incident.id, "users": [user_id]}, now=now)
            via = f" (on call for `{safe(rotation)}`)" if rotation else ""
            step = f" — escalation step {level}" if level else ""
            enqueue(session, "incident.post", {"incident_id": incident.id,
                                               "text": f":pager: Paged {user(user_id)}{via}{step}."}, now=now)
        minutes = self._escalation_minutes(incident, rotation)
        if minutes:
            request_job(session, kind=ESCALATE, key=escalation_key(page), run_at=now + timedelta(minutes=minutes),
                        payload={"page_id": page.id})
        return page

    def _escalation_minutes(self, incident: Incident | None, rotation: str | None) -> int | None:
        name = rotation or (incident.rotation if incident else None)
        found = self.rotations.get(name) if name else None
        return found.escalation_minutes if found else None

    def page_rotation(self, session: Session, *, incident: Incident | None, rotation_name: str, paged_by: str,
                      now: datetime, level: int = 0, reason: str | None = None, dedup_key: str | None = None) -> Page:
        """Page whoever is on call for a rotation now."""
        rotation = oncall.find_rotation(self.rotations, rotation_name)
        shift = oncall.on_call_at(db_session=session, rotation=rotation, at=now)
        return self.page(session, incident=incident, user_id=self.people.resolve(shift.user), rotation=rotation.name,
                         paged_by=paged_by, now=now, level=level, reason=reason, dedup_key=dedup_key)

    def page_someone(self, session: Session, *, incident: Incident, command: PageSomeone, actor: str,
                     now: datetime) -> str:
        """`/incident page @user|ROTATION` inside the incident channel; returns the reply."""
        if command.user:
            page = self.page(session, incident=incident, user_id=command.user, rotation=None, paged_by=actor, now=now)
        else:
            assert command.rotation is not None
            try:
                page = self.page_rotation(session, incident=incident, rotation_name=command.rotation,
                                          paged_by=actor, now=now)
            except OncallError as exc:
                raise IncidentError(str(exc)) from exc
        return f"Paged {user(page.user)}; they get a DM with Acknowledge and Escalate."

    def acknowledge(self, *, page_id: int, actor: str) -> str:
        """The paged person has it: the timer stops and the DM shows who answered."""
        now = self.clock.now()
        with self.storage.session() as session:
            page = get_page(db_session=session, page_id=page_id)
            if actor != page.user:
                raise IncidentError(f"This page is for {user(page.user)}.")
            acknowledge_page(db_session=session, page=page, actor=actor, now=now)
            cancel_job(session, key=escalation_key(page))
            enqueue(session, "page.refresh", {"page_id": page.id}, now=now)
            if page.incident_id is not None:
                enqueue(session, "incident.post", {"incident_id": page.incident_id,
                                                   "text": f":white_check_mark: {user(actor)} acknowledged the page."},
                        now=now)
        self.wake()
        return "Acknowledged. Thank you!"

    def escalate_by_hand(self, *, page_id: int, actor: str) -> str:
        """The Escalate button: page the next rotation of the chain now; only the paged person
        may (the button is in their DM)."""
        with self.storage.session() as session:
            page = get_page(db_session=session, page_id=page_id)
            if actor != page.user:
                raise IncidentError(f"Only {user(page.user)}, who was paged, may escalate this page.")
            text = self.escalate(session, page, actor, self.clock.now())
        self.wake()
        return text

    def escalate_on_timeout(self, session: Session, payload: dict[str, Any]) -> None:
        """Job: nobody acknowledged the page in time."""
        page = session.get(Page, payload["page_id"])
        if page is not None:
            self.escalate(session, page, TIMEOUT_ACTOR, self.clock.now())

    def escalate(self, session: Session, page: Page, actor: str, now: datetime) -> str:
        """Close the page as escalated and page the next rotation of the chain."""
        if not mark_escalated(db_session=session, page=page, actor=actor, now=now):
            if page.resolved_at is not None:
                return "This alert resolved by itself; there is nothing left to escalate."
            return "This page was already acknowledged or escalated."
        cancel_job(session, key=escalation_key(page))
        enqueue(session, "page.refresh", {"page_id": page.id}, now=now)
        incident = session.get(Incident, page.incident_id) if page.incident_id else None
        why = "no acknowledgement in time" if actor == TIMEOUT_ACTOR else f"escalated by {user(actor)}"
        target = self._next_rotation(page, incident)
        if incident is not None:
            add_entry(db_session=session, incident=incident, at=now, actor=actor, kind="escalate",
                      text=f"Page to <@{page.user}> escalated ({why})" + (f" to {target}" if target else ""))
        if target is None:
            text = (f":warning: The page to {user(page.user)} was not answered ({why}) and the escalation chain "
                    f"has no further step. Page someone with `/incident page @user`.")
            if incident is not None:
                enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
            told = page.paged_by if page.paged_by.startswith("U") else page.user
            enqueue(session, "slack.post", {"channel": told, "text": text}, now=now)
            return "Escalated; the chain has no further step."
        if incident is not None:
            enqueue(session, "incident.post", {"incident_id": incident.id,
                                               "text": f":arrow_double_up: Escalating ({why}): paging `{safe(target)}`."},
                    now=now)
        nxt = self.page_rotation(session, incident=incident, rotation_name=target, paged_by=page.paged_by or actor,
                                 now=now, level=page.level + 1, reason=page.reason, dedup_key=page.dedup_key)
        return f"Escalated to {user(nxt.user)} (on call for `{safe(target)}`)."

    def _next_rotation(self, page: Page, incident: Incident | None) -> str | None:
        """The next rotation of the chain; None at its end or where it would loop."""
        if page.rotation is None:  # a person paged by hand: fall back to the incident's rotation
            return incident.rotation if incident and incident.rotation else None
        current = self.rotations.get(page.rotation)
        target = current.escalate_to if current else None
        if target is None or target not in self.rotations or page.level + 1 >= len(self.rotations):
            return None
        return target
