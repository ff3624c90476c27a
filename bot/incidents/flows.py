"""What each incident command does, from declaration to resolution: one transaction each,
with the Slack work it causes queued on the outbox in that same transaction.

A declaration is acknowledged as soon as its number is taken (`declare`); the incident row,
its page and its channel follow from the outbox (`record_declaration`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from bot.clock import Clock
from bot.config import Settings
from bot.incidents import commands, workflow
from bot.incidents import service as incidents
from bot.incidents.commands import severity_label
from bot.incidents.followups import Followups
from bot.incidents.nudges import REMINDER, Nudges
from bot.incidents.numbering import GroupCommit, NotSaved
from bot.incidents.paging import PagingFlows
from bot.incidents.service import IncidentError
from bot.jobs.scheduler import cancel_job
from bot.models import Incident
from bot.oncall import service as oncall
from bot.oncall.service import Directory, OncallError
from bot.outbox import enqueue
from bot.redaction import mask_secrets
from bot.schedule import Rotation
from bot.storage import Storage
from bot.text import safe, user

log = logging.getLogger(__name__)
DECLARE = "incident.declare"
__all__ = ["REMINDER", "Declared", "Duplicate", "IncidentFlows", "NotSaved"]
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
    private: bool = False


class Duplicate(Exception):
    """The declaration looks like an open incident declared minutes ago: nothing was declared."""

    def __init__(self, number: int, title: str) -> None:
        super().__init__(f"Is this #{number} {title}?")
        self.number, self.title = number, title


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
        self.nudges = Nudges(settings=settings)
        self.followups = Followups(zone_of=people.tz,
                                   github=bool(settings.github_token and settings.github_repo))

    def post(self, session: Session, incident: Incident, text: str) -> None:
        """A message in the incident channel and a refreshed topic and pinned summary."""
        now = self.clock.now()
        enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
        enqueue(session, "incident.refresh", {"incident_id": incident.id}, now=now)

    def schedule_reminder(self, session: Session, incident: Incident, *, updated: bool = False,
                          declared: bool = False) -> None:
        """(Re)plan the status nudges of an open SEV1/SEV2 (bot.incidents.nudges)."""
        self.nudges.schedule(session, incident, now=self.clock.now(), updated=updated, declared=declared)

    def remind(self, session: Session, payload: dict[str, Any]) -> None:
        """Job: nudge an open SEV1/SEV2 with no status update (bot.incidents.nudges)."""
        self.nudges.remind(session, payload, self.clock.now())

    def remind_action(self, session: Session, payload: dict[str, Any]) -> None:
        """Job: remind an action item's owner on its due date."""
        self.followups.remind(session, payload, self.clock.now())

    def declare(self, *, title: str, severity: int, declarer: str, rotation_name: str | None,
                description: str | None = None, private: bool = False, anyway: bool = False) -> Declared:
        """Take the incident's number and record the declaration in one short transaction.
        Raises IncidentError for a bad declaration, Duplicate when an open incident declared in
        the last 30 minutes has the same title (unless `anyway`), NotSaved when the database failed."""
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
            "declared_at": now.isoformat(), "private": private,
        }

        def duplicate_of(connection: Connection) -> Duplicate | None:
            found = workflow.find_duplicate(connection=connection, title=title, now=now)
            return Duplicate(*found) if found is not None else None

        try:
            number = self.numbers.take(declaration, now, check=None if anyway else duplicate_of)
        except NotSaved:
            log.exception("a declaration was not saved")
            raise
        self.wake()
        log.info("incident %s declared by %s", number, declarer)
        return Declared(number=number, title=title, severity=severity, rotation=rotation.name if rotation else None,
                        responder=responder, nobody_paged=nobody_paged, private=private)

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
            incident.private = bool(declaration.get("private"))
            enqueue(session, "incident.open", {"incident_id": incident.id, "invite": declaration["invite"]}, now=now)
            if declaration["responder"]:
                self.paging.page(
                    session, incident=incident, user_id=declaration["responder"], rotation=declaration["rotation"],
                    paged_by=incident.declarer, now=now, invite=False,  # incident.open invites them
                )
            self.schedule_reminder(session, incident, declared=True)
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
            way = "raised" if raised else "lowered"
            self.post(session, incident, f":rotating_light: {user(actor)} {way} the severity: {entry.old} → {entry.new}")
            if not incident.private:
                enqueue(session, "incident.broadcast", {"incident_id": incident.id, "event": way}, now=now)
            self.schedule_reminder(session, incident)
            return f"Severity is now {entry.new}."
        if isinstance(command, commands.SetStatus):
            if command.status == "resolved":
                return self.resolve(session, incident, None, actor, now)
            entry = incidents.set_status(db_session=session, incident=incident, status=command.status, actor=actor,
                                         now=now)
            self.post(session, incident, f":information_source: {user(actor)} changed status: {entry.old} → {entry.new}")
            self.schedule_reminder(session, incident, updated=True)
            return f"Status is now {command.status}."
        if isinstance(command, commands.AddNote):
            incidents.add_note(db_session=session, incident=incident, text=command.text, actor=actor, now=now)
            enqueue(session, "incident.post", {"incident_id": incident.id,
                                               "text": f":memo: {user(actor)}: {safe(command.text)}"}, now=now)
            self.schedule_reminder(session, incident, updated=True)
            return "Noted on the timeline."
        if isinstance(command, commands.SetCommander):
            incidents.set_commander(db_session=session, incident=incident, commander=command.user, actor=actor, now=now)
            if incident.channel_id and not incidents.is_member(db_session=session, channel_id=incident.channel_id,
                                                               user_id=command.user):
                enqueue(session, "slack.invite", {"channel": incident.channel_id, "users": [command.user]}, now=now)
            self.post(session, incident, f":crown: {user(command.user)} is now the incident commander (set by {user(actor)}).")
            return f"{user(command.user)} is now the commander."
        if isinstance(command, commands.AddAction):
            return self.followups.add(session, incident, text=command.text, owner=command.owner, due=command.due,
                                      actor=actor, now=now)
        if isinstance(command, commands.CompleteAction):
            return self.followups.done(session, incident, number=command.item, actor=actor, now=now)
        if isinstance(command, (commands.SetRole, commands.PostUpdate, commands.Reopen)):
            return self._workflow(session, incident, command, actor, now)
        if isinstance(command, commands.ShowTimeline):
            return self.timeline_text(session, incident)
        if isinstance(command, commands.Resolve):
            return self.resolve(session, incident, command.summary, actor, now)
        if isinstance(command, commands.PageSomeone):
            return self.paging.page_someone(session, incident=incident, command=command, actor=actor, now=now)
        return self.postmortems.redraft(session, incident, mark=command.mark, now=now)

    def _workflow(self, session: Session, incident: Incident,
                  command: commands.SetRole | commands.PostUpdate | commands.Reopen, actor: str, now: datetime) -> str:
        if isinstance(command, commands.SetRole):
            workflow.set_role(db_session=session, incident=incident, role=command.role, user=command.user, actor=actor,
                              now=now, roles=self.settings.incident_roles)
            if incident.channel_id and not incidents.is_member(db_session=session, channel_id=incident.channel_id,
                                                               user_id=command.user):
                enqueue(session, "slack.invite", {"channel": incident.channel_id, "users": [command.user]}, now=now)
            self.post(session, incident, f":busts_in_silhouette: {user(command.user)} is now *{command.role}* "
                                         f"(set by {user(actor)}).")
            return f"{user(command.user)} is now {command.role}."
        if isinstance(command, commands.PostUpdate):
            workflow.post_update(db_session=session, incident=incident, text=command.text, actor=actor, now=now)
            text = (f":mega: *Update on incident #{incident.id}* ({severity_label(incident.severity)}, "
                    f"{incident.status}) from {user(actor)}:\n>{safe(command.text)}")
            enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
            if not incident.private:
                enqueue(session, "incident.thread", {"incident_id": incident.id, "text": text}, now=now)
            self.schedule_reminder(session, incident, updated=True)
            return "Update posted" + ("." if incident.private else " here and in the incidents channel's thread.")
        workflow.reopen(db_session=session, incident=incident, actor=actor, now=now)
        self.post(session, incident, f":leftwards_arrow_with_hook: {user(actor)} reopened the incident: "
                                     "status resolved → investigating.")
        if not incident.private:
            enqueue(session, "incident.broadcast", {"incident_id": incident.id, "event": "reopened"}, now=now)
        self.schedule_reminder(session, incident, updated=True)
        return f"Incident #{incident.id} is open again (investigating); resolving drafts a new postmortem version."

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
        if self.settings.web_pages:  # a private incident's page is shown to its channel's members only
            enqueue(session, "incident.bookmark", {"incident_id": incident.id, "title": "Postmortem",
                                                   "link": f"{self.settings.base_url}/postmortems/{incident.id}"},
                    now=now)
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

