"""Pages and escalation chains: the page's service functions, and the paging flows that
chain them (page, acknowledge, escalate by hand or by timeout) and queue their Slack work.

A page is a DM with Acknowledge and Escalate. Unless acknowledged within the rotation's
`escalation_minutes`, it escalates to the rotation's `escalate_to` rotation, then that one's,
along the chain (again from its start, `escalation_repeat` more times); each step is one
message in the incident channel. Timers are one-off jobs in the persistent store, cancelled
by an acknowledgement, an escalation or a resolve. A page also goes to the person's contacts
outside Slack through the notifier (bot.notify), which it cancels when the page is answered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

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
    chain: str | None = None, chain_round: int = 0,
) -> Page:
    """Record a page (and its timeline entry when it belongs to an incident)."""
    if incident is not None and incident.status == "resolved":
        raise IncidentError(f"Incident #{incident.id} is resolved; nobody needs paging for it.")
    page = Page(
        incident_id=incident.id if incident else None, user=user, rotation=rotation, level=level,
        paged_by=paged_by, reason=reason, dedup_key=dedup_key, paged_at=now, chain=chain or rotation,
        chain_round=chain_round,
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


def acknowledge_page(*, db_session: Session, page: Page, actor: str, now: datetime, via: str = "slack") -> Page:
    """The paged person is on it; a second press says so and changes nothing. The incident's
    acknowledgement is its first acknowledged page."""
    if page.acknowledged_at is not None:
        raise IncidentError(f"Already acknowledged by <@{page.acknowledged_by}>.")
    if page.escalated_at is not None:
        raise IncidentError("This page was already escalated to the next responder.")
    if page.resolved_at is not None:
        raise IncidentError("This alert resolved by itself; there is nothing left to acknowledge.")
    page.acknowledged_at, page.acknowledged_by, page.acknowledged_via = now, actor, via
    db_session.add(page)
    if page.incident_id is not None:
        incident = db_session.get(Incident, page.incident_id)
        assert incident is not None
        if incident.acknowledged_at is None:
            incident.acknowledged_at = now
            db_session.add(incident)
        add_entry(db_session=db_session, incident=incident, at=now, actor=actor, kind="acknowledge",
                  text=f"<@{actor}> acknowledged the page" + (" from the acknowledgement link" if via == "link" else ""))
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


class PageNotifier(Protocol):
    """Notifications outside Slack (bot.notify): planned with a page, dropped when it is answered."""

    def plan(self, session: Session, *, page: Page, now: datetime) -> None: ...

    def cancel(self, session: Session, *, page: Page) -> None: ...


def escalation_key(page: Page) -> str:
    """The key of a page's escalation timer."""
    return f"escalate:{page.incident_id or 0}:{page.id}"


class PagingFlows:
    """Paging people and walking the escalation chain; each step queues its Slack work."""

    def __init__(self, *, storage: Storage, clock: Clock, rotations: dict[str, Rotation], people: Directory,
                 wake: Callable[[], None], notifier: PageNotifier | None = None) -> None:
        self.storage = storage
        self.clock = clock
        self.rotations = rotations
        self.people = people
        self.wake = wake  # after a commit: the outbox and scheduler have new work
        self.notifier = notifier

    def page(self, session: Session, *, incident: Incident | None, user_id: str, rotation: str | None,
             paged_by: str, now: datetime, level: int = 0, reason: str | None = None,
             dedup_key: str | None = None, invite: bool = True, announce: str | None = None,
             chain: str | None = None, chain_round: int = 0) -> Page:
        """Page one person: the DM, their contacts outside Slack at their delays, an invite to
        the channel (unless the caller's own step invites them already), one message in the
        channel (`announce` replaces its wording: an escalation step says why), and the
        escalation timer."""
        page = page_person(db_session=session, user=user_id, paged_by=paged_by, now=now, incident=incident,
                           rotation=rotation, level=level, reason=reason, dedup_key=dedup_key, chain=chain,
                           chain_round=chain_round)
        enqueue(session, "page.send", {"page_id": page.id}, now=now)
        if self.notifier is not None:
            self.notifier.plan(session, page=page, now=now)
        if incident is not None:
            if invite:
                enqueue(session, "incident.invite", {"incident_id": incident.id, "users": [user_id]}, now=now)
            via = f" (on call for `{safe(rotation)}`)" if rotation else ""
            step = f", escalation step {level}" if level else ""
            text = f"{announce}: paged {user(user_id)}{via}{step}." if announce else f":pager: Paged {user(user_id)}{via}."
            enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
        minutes = self._escalation_minutes(incident, rotation, page.chain)
        if minutes:
            request_job(session, kind=ESCALATE, key=escalation_key(page), run_at=now + timedelta(minutes=minutes),
                        payload={"page_id": page.id})
        return page

    def _escalation_minutes(self, incident: Incident | None, rotation: str | None, chain: str | None) -> int | None:
        """The rotation's own minutes; on a chain that repeats, the chain's first rotation's
        when the rotation has none (else the walk would stop there)."""
        name = rotation or (incident.rotation if incident else None)
        found = self.rotations.get(name) if name else None
        if found is not None and found.escalation_minutes:
            return found.escalation_minutes
        first = self.rotations.get(chain) if chain else None
        if first is not None and first.escalation_repeat:
            return first.escalation_minutes
        return None

    def page_rotation(self, session: Session, *, incident: Incident | None, rotation_name: str, paged_by: str,
                      now: datetime, level: int = 0, reason: str | None = None, dedup_key: str | None = None,
                      announce: str | None = None, chain: str | None = None, chain_round: int = 0) -> Page:
        """Page whoever is on call for a rotation now."""
        rotation = oncall.find_rotation(self.rotations, rotation_name)
        shift = oncall.on_call_at(db_session=session, rotation=rotation, at=now)
        return self.page(session, incident=incident, user_id=self.people.resolve(shift.user), rotation=rotation.name,
                         paged_by=paged_by, now=now, level=level, reason=reason, dedup_key=dedup_key,
                         announce=announce, chain=chain, chain_round=chain_round)

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

    def acknowledge(self, *, page_id: int, actor: str, via: str = "slack",
                    before: Callable[[Session, Page], None] | None = None) -> str:
        """The paged person has it: the timer and the notifications stop, the DM shows who
        answered. via: "slack" (the DM button) or "link" (the acknowledgement link); `before`
        runs first in the same transaction (the link marks itself used)."""
        now = self.clock.now()
        with self.storage.session() as session:
            page = get_page(db_session=session, page_id=page_id)
            if actor != page.user:
                raise IncidentError(f"This page is for {user(page.user)}; only they can acknowledge it.")
            if before is not None:
                before(session, page)
            acknowledge_page(db_session=session, page=page, actor=actor, now=now, via=via)
            cancel_job(session, key=escalation_key(page))
            if self.notifier is not None:
                self.notifier.cancel(session, page=page)
            enqueue(session, "page.refresh", {"page_id": page.id}, now=now)
            if page.incident_id is not None:
                how = " from the acknowledgement link" if via == "link" else ""
                enqueue(session, "incident.post", {"incident_id": page.incident_id,
                                                   "text": f":white_check_mark: {user(actor)} acknowledged the page{how}."},
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
        """Close the page as escalated and page the next rotation of the chain (again from its
        start while the chain's escalation_repeat allows); one message in the channel."""
        if not mark_escalated(db_session=session, page=page, actor=actor, now=now):
            if page.resolved_at is not None:
                return "This alert resolved by itself; there is nothing left to escalate."
            return "This page was already acknowledged or escalated."
        cancel_job(session, key=escalation_key(page))
        if self.notifier is not None:
            self.notifier.cancel(session, page=page)
        enqueue(session, "page.refresh", {"page_id": page.id}, now=now)
        incident = session.get(Incident, page.incident_id) if page.incident_id else None
        why = "no acknowledgement in time" if actor == TIMEOUT_ACTOR else f"escalated by {user(actor)}"
        target, chain, chain_round = self._next_step(page, incident)
        if incident is not None:
            add_entry(db_session=session, incident=incident, at=now, actor=actor, kind="escalate",
                      text=f"Page to <@{page.user}> escalated ({why})" + (f" to {target}" if target else ""))
        if target is None:
            text = (f":warning: The page to {user(page.user)} was not answered ({why}) and the escalation chain "
                    f"has no further step. Page someone with `/incident page @user`.")
            if incident is not None:
                enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
            told = incident.commander if incident is not None else (
                page.paged_by if page.paged_by.startswith("U") else page.user)
            enqueue(session, "slack.post", {"channel": told, "text": text}, now=now)
            return "Escalated; the chain has no further step."
        again = f", round {chain_round + 1} of the chain" if chain_round > page.chain_round else ""
        nxt = self.page_rotation(session, incident=incident, rotation_name=target, paged_by=page.paged_by or actor,
                                 now=now, level=page.level + 1, reason=page.reason, dedup_key=page.dedup_key,
                                 announce=f":arrow_double_up: Escalating ({why}{again})", chain=chain,
                                 chain_round=chain_round)
        return f"Escalated to {user(nxt.user)} (on call for `{safe(target)}`)."

    def chain_of(self, start: str | None) -> list[str]:
        """The rotations of the escalation chain from `start`, each once, in order."""
        chain: list[str] = []
        name = start
        while name is not None and name in self.rotations and name not in chain:
            chain.append(name)
            name = self.rotations[name].escalate_to
        return chain

    def _next_step(self, page: Page, incident: Incident | None) -> tuple[str | None, str | None, int]:
        """(next rotation, chain start, round); None at the chain's end once its repeats are used."""
        if page.rotation is None:  # a person paged by hand: fall back to the incident's rotation
            start = incident.rotation if incident and incident.rotation in self.rotations else None
            return start, start, page.chain_round
        first = page.chain if page.chain in self.rotations else page.rotation
        chain = self.chain_of(first)
        position = chain.index(page.rotation) if page.rotation in chain else len(chain) - 1
        if position + 1 < len(chain):
            return chain[position + 1], first, page.chain_round
        repeats = self.rotations[first].escalation_repeat if first in self.rotations else 0
        if chain and page.chain_round < repeats:
            return chain[0], first, page.chain_round + 1
        return None, first, page.chain_round
