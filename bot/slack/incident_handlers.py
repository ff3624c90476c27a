"""`/incident` listeners: ack first, parse, call the incident service in one transaction,
queue the Slack side effects in that same transaction, reply."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from slack_bolt import Ack, App
from slack_sdk.errors import SlackApiError
from sqlalchemy import Connection
from sqlmodel import Session

from bot.incidents import service as incidents
from bot.incidents.numbering import NotSaved, SharedCommits
from bot.incidents.service import IncidentError, severity_label
from bot.jobs.scheduler import cancel_job, request_job
from bot.models import Incident
from bot.observability.slack_requests import mark_outcome
from bot.oncall import service as oncall
from bot.oncall.service import OncallError
from bot.outbox import enqueue
from bot.slack import blocks, commands
from bot.slack.commands import UsageError
from bot.slack.people import People
from bot.slack.text import escape, safe, user

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.slack.app import AfterAck

log = logging.getLogger(__name__)
NOT_SAVED = "Nothing was declared: the incident could not be saved just now. Please try again."
NOT_AN_INCIDENT_CHANNEL = (
    "This is not an incident channel. Run this inside the incident's channel, or "
    "`/incident list` to find it."
)


class IncidentFlows:
    """What each /incident command does, in one transaction each; returns the reply text."""

    def __init__(self, runtime: "Runtime", people: People) -> None:
        self.rt = runtime
        self.people = people
        self.numbers = SharedCommits(runtime.storage, "incident.declare")

    def enqueue(self, session: Session | Connection, kind: str, **payload: Any) -> None:
        enqueue(session, kind, payload, now=self.rt.clock.now())

    def post(self, session: Session, incident: Incident, text: str) -> None:
        """A message in the incident channel and a refreshed topic and pinned summary."""
        self.enqueue(session, "incident.post", incident_id=incident.id, text=text)
        self.enqueue(session, "incident.refresh", incident_id=incident.id)

    def schedule_reminder(self, session: Session, incident: Incident) -> None:
        """SEV1/SEV2 stay nudged for status updates every 30 minutes until resolved."""
        if incident.severity > 2 or incident.status == "resolved":
            return
        base = incident.last_update_at or incident.declared_at
        run_at = base + timedelta(minutes=self.rt.settings.status_reminder_minutes)
        request_job(
            session, kind="incident.reminder", key=f"reminder:{incident.id}:{run_at.isoformat()}",
            run_at=run_at, payload={"incident_id": incident.id},
        )

    def declare(self, *, title: str, severity: int, declarer: str, rotation_name: str | None,
                description: str | None = None) -> str:
        """Take the incident's number and record the declaration in one short transaction; the
        incident itself, its page and its channel follow from the outbox (`record_declaration`)."""
        now = self.rt.clock.now()
        title = incidents.check_declaration(title=title, severity=severity)
        rotation_note, invite, responder = "", [declarer], None
        try:
            rotation = oncall.find_rotation(self.rt.rotations, rotation_name) if (rotation_name or self.rt.rotations) else None
        except OncallError as exc:
            if rotation_name:
                raise IncidentError(str(exc)) from exc
            rotation, rotation_note = None, f"\nNobody was paged automatically: {exc} Use `/incident page ROTATION`."
        if rotation is not None:  # reads first: the write transaction below holds the number lock
            found = oncall.kept_overrides(self.rt.storage).of([rotation])[rotation.name]
            shift = oncall.shift_at(rotation, now, found)
            responder = self.people.resolve(shift.user)
            invite.append(responder)
            rotation_note = f"\nOn call for `{rotation.name}`: {user(responder)} (invited and paged)."
            if responder == declarer:
                rotation_note = f"\nYou are on call for `{rotation.name}` yourself."
        declaration = {
            "title": title, "severity": severity, "declarer": declarer, "rotation": rotation.name if rotation else None,
            "description": description, "invite": invite, "responder": responder if responder != declarer else None,
            "declared_at": now.isoformat(),
        }
        try:
            number = self.numbers.take(declaration, now)
        except NotSaved:
            log.exception("a declaration was not saved")
            mark_outcome("error")
            return NOT_SAVED
        self.rt.after_commit()
        log.info("incident %s declared by %s", number, declarer)
        return (
            f"Declared incident #{number} *{safe(title)}* ({severity_label(severity)}). "
            f"Its channel is being created; you will be invited.{rotation_note}"
        )

    def record_declaration(self, declaration: dict[str, Any]) -> None:
        """Outbox task: save the acknowledged incident with its first timeline entry, page whoever
        was named on call in the reply, and queue its channel. Run twice, it saves nothing twice."""
        now = datetime.fromisoformat(declaration["declared_at"])
        with self.rt.storage.session() as session:
            if session.get(Incident, declaration["number"]) is not None:
                return
            incident = incidents.declare_incident(
                db_session=session, number=declaration["number"], title=declaration["title"],
                severity=declaration["severity"], declarer=declaration["declarer"], now=now,
                rotation=declaration["rotation"], description=declaration["description"],
            )
            self.enqueue(session, "incident.open", incident_id=incident.id, invite=declaration["invite"])
            if declaration["responder"]:
                self.rt.extras["paging_flows"].page(
                    session, incident=incident, user_id=declaration["responder"], rotation=declaration["rotation"],
                    paged_by=incident.declarer, now=now, invite=False,  # incident.open invites them
                )
            self.schedule_reminder(session, incident)
        self.rt.after_commit()

    def in_channel(self, command: Any, channel_id: str, actor: str) -> str:
        """Run a command that acts on the incident whose channel this is."""
        now = self.rt.clock.now()
        with self.rt.storage.session() as session:
            incident = incidents.get_by_channel(db_session=session, channel_id=channel_id)
            if incident is None:
                raise IncidentError(NOT_AN_INCIDENT_CHANNEL)
            if not incidents.may_update(db_session=session, incident=incident, user_id=actor):
                if not self._in_channel_per_slack(channel_id, actor):
                    raise IncidentError(
                        f"Only the commander, the declarer and members of <#{channel_id}> may update "
                        f"incident #{incident.id}. Join the channel first."
                    )
                incidents.note_member(db_session=session, channel_id=channel_id, user_id=actor)
            reply = self._apply(session, incident, command, actor, now)
        self.rt.after_commit()
        return reply

    def _in_channel_per_slack(self, channel_id: str, user_id: str) -> bool:
        try:
            members = self.rt.client.conversations_members(channel=channel_id, limit=1000)["members"]
        except SlackApiError:
            return False
        return user_id in members

    def _apply(self, session: Session, incident: Incident, command: Any, actor: str, now: Any) -> str:
        if isinstance(command, commands.SetSeverity):
            raised = command.severity < incident.severity
            entry = incidents.set_severity(db_session=session, incident=incident, severity=command.severity, actor=actor, now=now)
            self.post(session, incident, f":rotating_light: {user(actor)} changed severity: {entry.old} → {entry.new}")
            if raised and command.severity <= 2:
                self.enqueue(session, "incident.broadcast", incident_id=incident.id, event="raised")
                self.schedule_reminder(session, incident)
            return f"Severity is now {entry.new}."
        if isinstance(command, commands.SetStatus):
            if command.status == "resolved":
                return self.resolve(session, incident, None, actor, now)
            entry = incidents.set_status(db_session=session, incident=incident, status=command.status, actor=actor, now=now)
            self.post(session, incident, f":information_source: {user(actor)} changed status: {entry.old} → {entry.new}")
            self.schedule_reminder(session, incident)
            return f"Status is now {command.status}."
        if isinstance(command, commands.AddNote):
            incidents.add_note(db_session=session, incident=incident, text=command.text, actor=actor, now=now)
            self.enqueue(session, "incident.post", incident_id=incident.id, text=f":memo: {user(actor)}: {safe(command.text)}")
            self.schedule_reminder(session, incident)
            return "Noted on the timeline."
        if isinstance(command, commands.SetCommander):
            incidents.set_commander(db_session=session, incident=incident, commander=command.user, actor=actor, now=now)
            if incident.channel_id and not incidents.is_member(db_session=session, channel_id=incident.channel_id, user_id=command.user):
                self.enqueue(session, "slack.invite", channel=incident.channel_id, users=[command.user])
            self.post(session, incident, f":crown: {user(command.user)} is now the incident commander (set by {user(actor)}).")
            return f"{user(command.user)} is now the commander."
        if isinstance(command, commands.AddAction):
            incidents.add_action_item(db_session=session, incident=incident, text=command.text, owner=command.owner, actor=actor, now=now)
            owner = f" (owner {user(command.owner)})" if command.owner else ""
            self.enqueue(session, "incident.post", incident_id=incident.id, text=f":white_check_mark: Action item{owner}: {safe(command.text)}")
            return "Action item added to the postmortem."
        if isinstance(command, commands.ShowTimeline):
            return self.timeline_text(session, incident)
        if isinstance(command, commands.Resolve):
            return self.resolve(session, incident, command.summary, actor, now)
        handler = self.rt.extras.get(type(command).__name__)
        if handler is not None:  # commands other packages add (page, postmortem)
            return str(handler(session, incident, command, actor, now))
        raise IncidentError("That command is not available yet.")

    def resolve(self, session: Session, incident: Incident, summary: str | None, actor: str, now: Any) -> str:
        incidents.set_status(db_session=session, incident=incident, status="resolved", actor=actor, now=now, summary=summary)
        cancel_job(session, key=f"reminder:{incident.id}:", prefix=True)
        cancel_job(session, key=f"escalate:{incident.id}:", prefix=True)
        text = f":white_check_mark: {user(actor)} resolved the incident."
        if summary:
            text += f"\n>{safe(summary)}"
        self.post(session, incident, text)
        on_resolve: Callable[..., None] | None = self.rt.extras.get("on_resolve")
        if on_resolve is not None:
            on_resolve(session, incident)
        else:
            self.enqueue(session, "incident.broadcast", incident_id=incident.id, event="resolved")
        return f"Incident #{incident.id} resolved."

    def timeline_text(self, session: Session, incident: Incident) -> str:
        entries = incidents.timeline(db_session=session, incident=incident)
        lines = [f"*Timeline of incident #{incident.id}* ({len(entries)} entries, UTC)"]
        for entry in entries[-50:]:
            lines.append(f"`{entry.at:%Y-%m-%d %H:%M}` {user(entry.actor)} · {entry.kind} · {safe(entry.text)[:300]}")
        if len(entries) > 50:
            lines.insert(1, f"_…{len(entries) - 50} earlier entries are in the postmortem draft._")
        return "\n".join(lines)

    def list_text(self) -> str:
        with self.rt.storage.read() as session:
            open_incidents = incidents.list_open_incidents(db_session=session)
        if not open_incidents:
            return ":sunny: No open incidents."
        return "*Open incidents*\n" + "\n".join(blocks.incident_line(i) for i in open_incidents)


def install(runtime: "Runtime") -> None:
    flows = IncidentFlows(runtime, runtime.extras["people"])
    runtime.extras["incident_flows"] = flows
    runtime.outbox.register("incident.declare", flows.record_declaration)


def register(app: App, runtime: "Runtime", people: People, after_ack: "AfterAck") -> None:
    flows: IncidentFlows = runtime.extras["incident_flows"]

    @app.command("/incident")
    def incident_command(ack: Ack, command: dict[str, Any], client: Any) -> None:
        try:
            parsed = commands.parse_incident(command.get("text", ""))
        except UsageError as exc:
            ack(text=str(exc))
            return
        actor, channel_id = command["user_id"], command.get("channel_id", "")
        if isinstance(parsed, commands.OpenDeclareForm):
            ack()  # the trigger_id lives 3 s: the form opens right behind the acknowledgement
            view = blocks.declare_modal(channel_id, sorted(runtime.rotations))
            after_ack(lambda: client.views_open(trigger_id=command["trigger_id"], view=view))
            return
        try:
            if isinstance(parsed, commands.Help):
                reply = commands.INCIDENT_HELP
            elif isinstance(parsed, commands.ListIncidents):
                reply = flows.list_text()
            elif isinstance(parsed, commands.Declare):
                reply = flows.declare(title=parsed.title, severity=parsed.severity, declarer=actor,
                                      rotation_name=None)
            else:
                reply = flows.in_channel(parsed, channel_id, actor)
        except (IncidentError, OncallError) as exc:
            mark_outcome("refused")
            reply = str(exc)
        ack(text=reply)

    @app.view("declare_incident")
    def declare_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        title = (values["title"]["value"].get("value") or "").strip()
        if not title:
            ack(response_action="errors", errors={"title": "The incident needs a title."})
            return
        ack()
        severity = int(values["severity"]["value"]["selected_option"]["value"])
        description = values.get("description", {}).get("value", {}).get("value")
        rotation = ((values.get("rotation", {}).get("value", {}) or {}).get("selected_option") or {}).get("value")
        actor = body["user"]["id"]
        try:  # form fields are raw text: keep them in Slack's form like slash-command text
            reply = flows.declare(title=escape(title), severity=severity, declarer=actor, rotation_name=rotation,
                                  description=escape(description) if description else None)
        except (IncidentError, OncallError) as exc:
            reply = str(exc)
        with runtime.storage.session() as session:
            enqueue(session, "slack.post", {"channel": actor, "text": reply}, now=runtime.clock.now())
        runtime.after_commit()
