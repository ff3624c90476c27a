"""Pages: `/incident page`, the Acknowledge and Escalate buttons, escalation by timeout.

A page is a DM with Acknowledge and Escalate. Unless acknowledged within the rotation's
`escalation_minutes`, it escalates to the rotation's `escalate_to` rotation, then that one's,
along the chain; each step is announced in the incident channel. Timers are one-off jobs in
the persistent store, cancelled by an acknowledgement, an escalation or a resolve."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond
from sqlmodel import Session

from bot.incidents import paging
from bot.incidents.service import IncidentError
from bot.jobs.scheduler import cancel_job, request_job
from bot.models import Incident, Page
from bot.oncall import service as oncall
from bot.oncall.service import OncallError
from bot.outbox import enqueue
from bot.slack import blocks, commands
from bot.slack.people import People
from bot.slack.text import safe, user

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.slack.app import AfterAck

log = logging.getLogger(__name__)
TIMEOUT_ACTOR = "escalation-timer"


def escalation_key(page: Page) -> str:
    return f"escalate:{page.incident_id or 0}:{page.id}"


class PagingFlows:
    def __init__(self, runtime: "Runtime", people: People) -> None:
        self.rt = runtime
        self.people = people

    def _enqueue(self, session: Session, kind: str, now: datetime, **payload: Any) -> None:
        enqueue(session, kind, payload, now=now)

    def page(self, session: Session, *, incident: Incident | None, user_id: str, rotation: str | None,
             paged_by: str, now: datetime, level: int = 0, reason: str | None = None,
             dedup_key: str | None = None, invite: bool = True) -> Page:
        """Page one person: the DM, an invite to the channel (unless the caller's own step
        invites them already), and the escalation timer."""
        page = paging.page_person(db_session=session, user=user_id, paged_by=paged_by, now=now, incident=incident,
                                  rotation=rotation, level=level, reason=reason, dedup_key=dedup_key)
        self._enqueue(session, "page.send", now, page_id=page.id)
        if incident is not None:
            if invite:
                self._enqueue(session, "incident.invite", now, incident_id=incident.id, users=[user_id])
            via = f" (on call for `{safe(rotation)}`)" if rotation else ""
            step = f" — escalation step {level}" if level else ""
            self._enqueue(session, "incident.post", now, incident_id=incident.id,
                          text=f":pager: Paged {user(user_id)}{via}{step}.")
        minutes = self._escalation_minutes(incident, rotation)
        if minutes:
            request_job(session, kind="page.escalate", key=escalation_key(page), run_at=now + timedelta(minutes=minutes),
                        payload={"page_id": page.id})
        return page

    def _escalation_minutes(self, incident: Incident | None, rotation: str | None) -> int | None:
        name = rotation or (incident.rotation if incident else None)
        found = self.rt.rotations.get(name) if name else None
        return found.escalation_minutes if found else None

    def page_rotation(self, session: Session, *, incident: Incident | None, rotation_name: str, paged_by: str,
                      now: datetime, level: int = 0, reason: str | None = None, dedup_key: str | None = None) -> Page:
        """Page whoever is on call for a rotation now."""
        rotation = oncall.find_rotation(self.rt.rotations, rotation_name)
        shift = oncall.on_call_at(db_session=session, rotation=rotation, at=now)
        return self.page(session, incident=incident, user_id=self.people.resolve(shift.user), rotation=rotation.name,
                         paged_by=paged_by, now=now, level=level, reason=reason, dedup_key=dedup_key)

    def command(self, session: Session, incident: Incident, command: commands.PageSomeone, actor: str, now: datetime) -> str:
        """`/incident page @user|ROTATION` inside the incident channel."""
        if command.user:
            page = self.page(session, incident=incident, user_id=command.user, rotation=None, paged_by=actor, now=now)
        else:
            assert command.rotation is not None
            try:
                page = self.page_rotation(session, incident=incident, rotation_name=command.rotation, paged_by=actor, now=now)
            except OncallError as exc:
                raise IncidentError(str(exc)) from exc
        return f"Paged {user(page.user)}; they get a DM with Acknowledge and Escalate."

    def acknowledge(self, page_id: int, actor: str) -> str:
        now = self.rt.clock.now()
        with self.rt.storage.session() as session:
            page = paging.get_page(db_session=session, page_id=page_id)
            if actor != page.user:
                raise IncidentError(f"This page is for {user(page.user)}.")
            paging.acknowledge_page(db_session=session, page=page, actor=actor, now=now)
            cancel_job(session, key=escalation_key(page))
            self._enqueue(session, "page.refresh", now, page_id=page.id)
            if page.incident_id is not None:
                self._enqueue(session, "incident.post", now, incident_id=page.incident_id,
                              text=f":white_check_mark: {user(actor)} acknowledged the page.")
        self.rt.after_commit()
        return "Acknowledged. Thank you!"

    def escalate(self, session: Session, page: Page, actor: str, now: datetime) -> str:
        """Close the page as escalated and page the next rotation of the chain."""
        if not paging.mark_escalated(db_session=session, page=page, actor=actor, now=now):
            if page.resolved_at is not None:
                return "This alert resolved by itself; there is nothing left to escalate."
            return "This page was already acknowledged or escalated."
        cancel_job(session, key=escalation_key(page))
        self._enqueue(session, "page.refresh", now, page_id=page.id)
        incident = session.get(Incident, page.incident_id) if page.incident_id else None
        why = "no acknowledgement in time" if actor == TIMEOUT_ACTOR else f"escalated by {user(actor)}"
        target = self._next_rotation(page, incident)
        if incident is not None:
            from bot.incidents.service import add_entry

            add_entry(db_session=session, incident=incident, at=now, actor=actor, kind="escalate",
                      text=f"Page to <@{page.user}> escalated ({why})" + (f" to {target}" if target else ""))
        if target is None:
            text = (f":warning: The page to {user(page.user)} was not answered ({why}) and the escalation chain "
                    f"has no further step. Page someone with `/incident page @user`.")
            if incident is not None:
                self._enqueue(session, "incident.post", now, incident_id=incident.id, text=text)
            self._enqueue(session, "slack.post", now, channel=page.paged_by if page.paged_by.startswith("U") else page.user, text=text)
            return "Escalated; the chain has no further step."
        if incident is not None:
            self._enqueue(session, "incident.post", now, incident_id=incident.id,
                          text=f":arrow_double_up: Escalating ({why}): paging `{safe(target)}`.")
        nxt = self.page_rotation(session, incident=incident, rotation_name=target, paged_by=page.paged_by or actor,
                                 now=now, level=page.level + 1, reason=page.reason, dedup_key=page.dedup_key)
        return f"Escalated to {user(nxt.user)} (on call for `{safe(target)}`)."

    def _next_rotation(self, page: Page, incident: Incident | None) -> str | None:
        """The next rotation of the chain; None at its end or where it would loop."""
        if page.rotation is None:  # a person paged by hand: fall back to the incident's rotation
            return incident.rotation if incident and incident.rotation else None
        current = self.rt.rotations.get(page.rotation)
        target = current.escalate_to if current else None
        if target is None or target not in self.rt.rotations or page.level + 1 >= len(self.rt.rotations):
            return None
        return target


def install(runtime: "Runtime") -> None:
    """Paging for every process: the escalation timer runs wherever the scheduler runs."""
    flows = PagingFlows(runtime, runtime.extras["people"])
    runtime.extras["paging_flows"] = flows
    runtime.extras["PageSomeone"] = flows.command

    def on_timeout(session: Session, payload: dict[str, Any]) -> None:
        page = session.get(Page, payload["page_id"])
        if page is not None:
            flows.escalate(session, page, TIMEOUT_ACTOR, runtime.clock.now())

    runtime.scheduler.register("page.escalate", on_timeout)


def register(app: App, runtime: "Runtime", people: People, after_ack: "AfterAck") -> None:
    flows: PagingFlows = runtime.extras["paging_flows"]

    def page_id_of(body: dict[str, Any]) -> int:
        value = str(body["actions"][0].get("value", ""))
        if not value.isascii() or not value.isdigit() or len(value) > 9:
            raise IncidentError("That button is not one of mine.")
        return int(value)

    @app.action("page_ack")
    def acknowledge(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        after_ack.answer(respond, lambda: flows.acknowledge(page_id_of(body), body["user"]["id"]),
                         refusals=(IncidentError, OncallError))

    @app.action("page_escalate")
    def escalate(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()

        def work() -> str:
            with runtime.storage.session() as session:
                page = paging.get_page(db_session=session, page_id=page_id_of(body))
                text = flows.escalate(session, page, body["user"]["id"], runtime.clock.now())
            runtime.after_commit()
            return text

        after_ack.answer(respond, work, refusals=(IncidentError, OncallError))


def page_message(page: Page, incident: Incident | None) -> tuple[str, list[dict[str, Any]]]:
    """The DM for a page, with buttons while it waits and its outcome once answered."""
    if incident is not None:
        text, dm_blocks = blocks.page_dm(incident, page.id or 0, page.paged_by)
    else:
        text = f":rotating_light: Alert: *{safe(page.reason or 'unnamed alert')}*" + (f" (on call for `{safe(page.rotation)}`)" if page.rotation else "")
        dm_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}, blocks.page_buttons(page.id or 0)]
    if page.acknowledged_at is not None:
        dm_blocks = dm_blocks[:1] + [{"type": "context", "elements": [{"type": "mrkdwn", "text": f":white_check_mark: Acknowledged by {user(page.acknowledged_by)}"}]}]
    elif page.escalated_at is not None:
        dm_blocks = dm_blocks[:1] + [{"type": "context", "elements": [{"type": "mrkdwn", "text": ":arrow_double_up: Escalated to the next responder"}]}]
    elif page.resolved_at is not None:
        dm_blocks = dm_blocks[:1] + [{"type": "context", "elements": [{"type": "mrkdwn", "text": ":white_check_mark: Resolved by itself before anyone answered"}]}]
    return text, dm_blocks
