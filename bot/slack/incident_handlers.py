"""`/incident` listeners: ack first, parse, hand the typed command to the incident flows
(one transaction each, Slack work queued in it), reply."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from bot.incidents.commands import severity_label
from bot.incidents.flows import NOT_SAVED, Declared, NotSaved
from bot.incidents.service import IncidentError, list_open_incidents
from bot.observability.slack_requests import mark_outcome
from bot.oncall.service import OncallError
from bot.outbox import enqueue
from bot.slack import blocks, commands
from bot.slack.commands import UsageError
from bot.text import escape, safe, user

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.slack.after_ack import AfterAck

log = logging.getLogger(__name__)


def declared_reply(declared: Declared, declarer: str) -> str:
    """What the declarer is told: the number, and who was paged or why nobody was."""
    if declared.nobody_paged:
        note = f"\nNobody was paged automatically: {declared.nobody_paged} Use `/incident page ROTATION`."
    elif declared.responder == declarer:
        note = f"\nYou are on call for `{declared.rotation}` yourself."
    elif declared.responder:
        note = f"\nOn call for `{declared.rotation}`: {user(declared.responder)} (invited and paged)."
    else:
        note = ""
    return (
        f"Declared incident #{declared.number} *{safe(declared.title)}* ({severity_label(declared.severity)}). "
        f"Its channel is being created; you will be invited.{note}"
    )


def list_text(runtime: "Runtime") -> str:
    with runtime.storage.read() as session:
        open_incidents = list_open_incidents(db_session=session)
    if not open_incidents:
        return ":sunny: No open incidents."
    return "*Open incidents*\n" + "\n".join(blocks.incident_line(i) for i in open_incidents)


def declare(runtime: "Runtime", **declaration: Any) -> str:
    """Declare, and the reply for the declarer (a refusal's message when it was refused)."""
    try:
        return declared_reply(runtime.incidents.declare(**declaration), declaration["declarer"])
    except NotSaved:
        mark_outcome("error")
        return NOT_SAVED


def register(app: App, runtime: "Runtime", after_ack: "AfterAck") -> None:
    flows = runtime.incidents

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
                reply = list_text(runtime)
            elif isinstance(parsed, commands.Declare):
                reply = declare(runtime, title=parsed.title, severity=parsed.severity, declarer=actor,
                                rotation_name=None)
            else:
                reply = flows.in_channel(parsed, channel_id=channel_id, actor=actor)
        except (IncidentError, OncallError) as exc:
            mark_outcome("refused")
            reply = str(exc)
        ack(text=reply)

    @app.view("declare_incident")
    def declare_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        form = blocks.read_declare_form(view["state"]["values"])  # the shape is checked: malformed.py
        title = form.title.strip()
        if not title:
            ack(response_action="errors", errors={"title": "The incident needs a title."})
            return
        ack()
        actor = body["user"]["id"]
        try:  # form fields are raw text: keep them in Slack's form like slash-command text
            reply = declare(runtime, title=escape(title), severity=form.severity, declarer=actor,
                            rotation_name=form.rotation, description=escape(form.description) if form.description else None)
        except (IncidentError, OncallError) as exc:
            reply = str(exc)
        with runtime.storage.session() as session:
            enqueue(session, "slack.post", {"channel": actor, "text": reply}, now=runtime.clock.now())
        runtime.after_commit()
