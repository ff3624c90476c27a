"""What each incident command does, from declaration to resolution: one transaction each,
with the Slack work it causes queued on the outbox in that same transaction.

A declaration is acknowledged as soon as its number is taken (`declare`); the incident row,
its page and its channel follow from the outbox (`record_declaration`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from bot.clock import Clock
from bot.config import Settings
from bot.incidents import commands
from bot.incidents import service as incidents
from bot.incidents.numbering import GroupCommit, NotSaved
from bot.redaction import mask_secrets
from bot.incidents.paging import PagingFlows
from bot.incidents.service import IncidentError
from bot.jobs.scheduler import cancel_job, request_job
from bot.models import Incident
from bot.oncall import service as oncall
from bot.oncall.service import Directory, OncallError
from bot.outbox import enqueue
from bot.schedule import Rotation
from bot.storage import Storage
from bot.text import safe, user

log = logging.getLogger(__name__)
DECLARE = "incident.declare"
REMINDER = "incident.reminder"
NOT_SAVED = "Nothing was declared: the incident could not be saved just now. Please try again."
NOT_AN_INCIDENT_CHANNEL = (
    "This is not an incident channel. Run this inside the incident's channel, or "
    "`/incident list` to find it."
)


@dataclass(frozen=True)
class Declared:
    """A declaration that was saved: its number, and who was paged (None: nobody, and why)."""

    number: int
    title: str
    severity: int
    rotation: str | None
    responder: str | None  # the on-call person paged; the declarer when they are on call
    nobody_paged: str | None = None  # why nobody was paged automatically


class Postmortems(Protocol):
    """What resolving asks of the postmortem package (bot.postmortem.flows)."""

    def on_resolve(self, session: Session, incident: Incident) -> None: ...

    def redraft(self, session: Session, incident: Incident, *, mark: str | None, now: datetime) -> str: ...


class IncidentFlows:
    def __init__(self, *, storage: Storage, clock: Clock, settings: Settings, rotations: dict[str, Rotation],
                 people: Directory, paging: PagingFlows, postmortems: Postmortems, wake: Callable[[], None],
                 is_channel_member: Callable[[str, str], bool]) -> None:
        self.storage = storage
        self.clock = clock
        self.settings = settings
        self.rotations = rotations
        self.people = people
        self.paging = paging
        self.postmortems = postmortems
        self.wake = wake  # after a commit: the outbox and scheduler have new work
        self.is_channel_member = is_channel_member  # asks Slack, for members we have not seen join
        self.numbers = GroupCommit(storage, DECLARE)

    def post(self, session: Session, incident: Incident, text: str) -> None:
        """A message in the incident channel and a refreshed topic and pinned summary."""
        now = self.clock.now()
        enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
        enqueue(session, "incident.refresh", {"incident_id": incident.id}, now=now)

    def schedule_reminder(self, session: Session, incident: Incident) -> None:
        """SEV1/SEV2 stay nudged for status updates every STATUS_REMINDER_MINUTES until resolved."""
        if incident.severity > 2 or incident.status == "resolved":
            return
        base = incident.last_update_at or incident.declared_at
        run_at = base + timedelta(minutes=self.settings.status_reminder_minutes)
        request_job(session, kind=REMINDER, key=f"reminder:{incident.id}:{run_at.isoformat()}", run_at=run_at,
                    payload={"incident_id": incident.id})

    def remind(self, session: Session, payload: dict[str, Any]) -> None:
        """Job: nudge an open SEV1/SEV2 with no status update for STATUS_REMINDER_MINUTES."""
        incident = session.get(Incident, payload["incident_id"])
        if incident is None or incident.status == "resolved" or incident.severity > 2:
            return
        every = timedelta(minutes=self.settings.status_reminder_minutes)
        now = self.clock.now()
        last = incident.last_update_at or incident.declared_at
        if now - last >= every:
            text = (
                f":alarm_clock: {user(incident.commander)}, no status update for "
                f"{int((now - last).total_seconds() // 60)} minutes on this SEV{incident.severity}. "
                f"Post one with `/incident note TEXT` or `/incident status ...`."
            )
            enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
            next_at = now + every
        else:
            next_at = last + every
        request_job(session, kind=REMINDER, key=f"reminder:{incident.id}:{next_at.isoformat()}", run_at=next_at,
                    payload={"incident_id": incident.id})

    def declare(self, *, title: str, severity: int, declarer: str, rotation_name: str | None,
                description: str | None = None) -> Declared:
        """Take the incident's number and record the declaration in one short transaction.
        Raises IncidentError for a bad declaration, NotSaved when the database failed."""
        now = self.clock.now()
        title = incidents.check_declaration(title=title, severity=severity, description=description)
        description = mask_secrets(description) if description else description
        invite, responder, nobody_paged = [declarer], None, None
        try:
            rotation = oncall.find_rotation(self.rotations, rotation_name) if (rotation_name or self.rotations) else None
        except OncallError as exc:
            if rotation_name:
                raise IncidentError(str(exc)) from exc
            rotation, nobody_paged = None, str(exc)
        if rotation is not None:  # reads first: the write transaction below holds the number lock
            try:
                found = oncall.cached_adjustments(self.storage).of([rotation])[rotation.name]
            except SQLAlchemyError as exc:  # nothing written yet: the person is told to try again
                log.exception("a declaration could not read who is on call")
                raise NotSaved(f"declaration not saved: {exc!r}") from exc
            responder = self.people.resolve(oncall.shift_at(rotation, now, found).user)
            invite.append(responder)
        declaration = {
            "title": title, "severity": severity, "declarer": declarer, "rotation": rotation.name if rotation else None,
            "description": description, "invite": invite, "responder": responder if responder != declarer else None,
            "declared_at": now.isoformat(),
        }
        try:
            number = self.numbers.take(declaration, now)
        except NotSaved:
            log.exception("a declaration was not saved")
            raise
        self.wake()
        log.info("incident %s declared by %s", number, declarer)
        return Declared(number=number, title=title, severity=severity, rotation=rotation.name if rotation else None,
                        responder=responder, nobody_paged=nobody_paged)

    def record_declaration(self, declaration: dict[str, Any]) -> None:
        """Outbox task: save the acknowledged incident with its first timeline entry, page whoever
        was named on call in the reply, and queue its channel. Run twice, it saves nothing twice."""
        now = datetime.fromisoformat(declaration["declared_at"])
        with self.storage.session() as session:
            if session.get(Incident, declaration["number"]) is not None:
                return
            incident = incidents.declare_incident(
                db_session=session, number=declaration["number"], title=declaration["title"],
                severity=declaration["severity"], declarer=declaration["declarer"], now=now,
                rotation=declaration["rotation"], description=declaration["description"],
            )
            enqueue(session, "incident.open", {"incident_id": incident.id, "invite": declaration["invite"]}, now=now)
            if declaration["responder"]:
                self.paging.page(
                    session, incident=incident, user_id=declaration["responder"], rotation=declaration["rotation"],
                    paged_by=incident.declarer, now=now, invite=False,  # incident.open invites them
                )
            self.schedule_reminder(session, incident)
        self.wake()

    def in_channel(self, command: commands.InChannelCommand, *, channel_id: str, actor: str) -> str:
        """Run a command on the incident whose channel this is; returns the reply."""
        now = self.clock.now()
        with self.storage.session() as session:
            incident = incidents.get_by_channel(db_session=session, channel_id=channel_id)
            if incident is None:
                raise IncidentError(NOT_AN_INCIDENT_CHANNEL)
            if not incidents.may_update(db_session=session, incident=incident, user_id=actor):
                if not self.is_channel_member(channel_id, actor):
                    raise IncidentError(
                        f"Only the commander, the declarer and members of <#{channel_id}> may update "
                        f"incident #{incident.id}. Join the channel first."
                    )
                incidents.note_member(db_session=session, channel_id=channel_id, user_id=actor)
            reply = self._apply(session, incident, command, actor, now)
        self.wake()
        return reply

    def _apply(self, session: Session, incident: Incident, command: commands.InChannelCommand, actor: str,
               now: datetime) -> str:
        if isinstance(command, commands.SetSeverity):
            raised = command.severity < incident.severity
            entry = incidents.set_severity(db_session=session, incident=incident, severity=command.severity,
                                           actor=actor, now=now)
            self.post(session, incident, f":rotating_light: {user(actor)} changed severity: {entry.old} → {entry.new}")
            if raised and command.severity <= 2:
                enqueue(session, "incident.broadcast", {"incident_id": incident.id, "event": "raised"}, now=now)
                self.schedule_reminder(session, incident)
            return f"Severity is now {entry.new}."
        if isinstance(command, commands.SetStatus):
            if command.status == "resolved":
                return self.resolve(session, incident, None, actor, now)
            entry = incidents.set_status(db_session=session, incident=incident, status=command.status, actor=actor,
                                         now=now)
            self.post(session, incident, f":information_source: {user(actor)} changed status: {entry.old} → {entry.new}")
            self.schedule_reminder(session, incident)
            return f"Status is now {command.status}."
        if isinstance(command, commands.AddNote):
            incidents.add_note(db_session=session, incident=incident, text=command.text, actor=actor, now=now)
            enqueue(session, "incident.post", {"incident_id": incident.id,
                                               "text": f":memo: {user(actor)}: {safe(command.text)}"}, now=now)
            self.schedule_reminder(session, incident)
            return "Noted on the timeline."
        if isinstance(command, commands.SetCommander):
            incidents.set_commander(db_session=session, incident=incident, commander=command.user, actor=actor, now=now)
            if incident.channel_id and not incidents.is_member(db_session=session, channel_id=incident.channel_id,
                                                               user_id=command.user):
                enqueue(session, "slack.invite", {"channel": incident.channel_id, "users": [command.user]}, now=now)
            self.post(session, incident, f":crown: {user(command.user)} is now the incident commander (set by {user(actor)}).")
            return f"{user(command.user)} is now the commander."
        if isinstance(command, commands.AddAction):
            incidents.add_action_item(db_session=session, incident=incident, text=command.text, owner=command.owner,
                                      actor=actor, now=now)
            owner = f" (owner {user(command.owner)})" if command.owner else ""
            enqueue(session, "incident.post", {"incident_id": incident.id,
                                               "text": f":white_check_mark: Action item{owner}: {safe(command.text)}"},
                    now=now)
            return "Action item added to the postmortem."
        if isinstance(command, commands.ShowTimeline):
            return self.timeline_text(session, incident)
        if isinstance(command, commands.Resolve):
            return self.resolve(session, incident, command.summary, actor, now)
        if isinstance(command, commands.PageSomeone):
            return self.paging.page_someone(session, incident=incident, command=command, actor=actor, now=now)
        return self.postmortems.redraft(session, incident, mark=command.mark, now=now)

    def resolve(self, session: Session, incident: Incident, summary: str | None, actor: str, now: datetime) -> str:
        """Resolve: timers stop, the channel is told, the postmortem is drafted (it broadcasts)."""
        incidents.set_status(db_session=session, incident=incident, status="resolved", actor=actor, now=now,
                             summary=summary)
        cancel_job(session, key=f"reminder:{incident.id}:", prefix=True)
        cancel_job(session, key=f"escalate:{incident.id}:", prefix=True)
        text = f":white_check_mark: {user(actor)} resolved the incident."
        if summary:
            text += f"\n>{safe(summary)}"
        self.post(session, incident, text)
        self.postmortems.on_resolve(session, incident)
        return f"Incident #{incident.id} resolved."

    def timeline_text(self, session: Session, incident: Incident) -> str:
        entries = incidents.timeline(db_session=session, incident=incident)
        lines = [f"*Timeline of incident #{incident.id}* ({len(entries)} entries, UTC)"]
        for entry in entries[-50:]:
            lines.append(f"`{entry.at:%Y-%m-%d %H:%M}` {user(entry.actor)} · {entry.kind} · {safe(entry.text)[:300]}")
        if len(entries) > 50:
            lines.insert(1, f"_…{len(entries) - 50} earlier entries are in the postmortem draft._")
        return "\n".join(lines)

