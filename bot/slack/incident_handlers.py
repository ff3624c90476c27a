"""`/incident` listeners: ack first, parse, hand the typed command to the incident flows
(one transaction each, Slack work queued in it), reply."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot.incidents.commands import severity_label
from bot.incidents.flows import NOT_SAVED, Declared, Duplicate, NotSaved
from bot.incidents.service import IncidentError, get_incident, list_open_incidents
from bot.incidents.workflow import visible_to
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
    private = " It is private: its channel is private and nothing is posted outside it." if declared.private else ""
    return (
        f"Declared incident #{declared.number} *{safe(declared.title)}* ({severity_label(declared.severity)}). "
        f"Its channel is being created; you will be invited. To change the severity, "
        f"`/incident sev 1-4` there.{private}{note}"
    )


def list_text(runtime: "Runtime", viewer: str) -> str:
    with runtime.storage.read() as session:
        open_incidents = [i for i in list_open_incidents(db_session=session)
                          if visible_to(db_session=session, incident=i, user_id=viewer)]
    if not open_incidents:
        return ":sunny: No open incidents."
    return "*Open incidents*\n" + "\n".join(blocks.incident_line(i) for i in open_incidents)


def declare(runtime: "Runtime", **declaration: Any) -> tuple[str, list[Any] | None]:
    """Declare, and the reply for the declarer (a refusal's message when it was refused; the
    duplicate guard's question with its buttons when an open incident has the same title)."""
    try:
        return declared_reply(runtime.incidents.declare(**declaration), declaration["declarer"]), None
    except Duplicate as duplicate:
        mark_outcome("refused")
        with runtime.storage.read() as session:
            found = get_incident(db_session=session, number=duplicate.number)
        carried = {k: declaration.get(k) for k in ("title", "severity", "rotation_name", "description", "private")}
        return blocks.duplicate_prompt(found.id, found.title, found.channel_id, carried)
    except NotSaved:
        mark_outcome("error")
        return NOT_SAVED, None


def learn(runtime: "Runtime", parsed: Any) -> None:
    """Cache the profile (name, zone) of a person an action item or role names, before the
    transaction: the due-date reminder needs their zone, the topic and postmortem their name."""
    person = getattr(parsed, "owner", None) or getattr(parsed, "user", None)
    if person:
        try:
            runtime.people.profile(person)
        except Exception:  # Slack unreachable: the flow falls back to what is cached
            log.warning("looking up %s failed", person, exc_info=True)


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
        reply_blocks = None
        try:
            if isinstance(parsed, commands.Help):
                reply = commands.INCIDENT_HELP
            elif isinstance(parsed, commands.ListIncidents):
                reply = list_text(runtime, actor)
            elif isinstance(parsed, commands.Declare):
                reply, reply_blocks = declare(runtime, title=parsed.title, severity=parsed.severity, declarer=actor,
                                              rotation_name=None, private=parsed.private)
            else:
                if isinstance(parsed, commands.AddAction) or (
                        isinstance(parsed, commands.SetRole) and parsed.role in runtime.settings.incident_roles):
                    learn(runtime, parsed)
                reply = flows.in_channel(parsed, channel_id=channel_id, actor=actor)
        except (IncidentError, OncallError) as exc:
            mark_outcome("refused")
            reply = str(exc)
        ack(text=reply, blocks=reply_blocks)

    @app.view("declare_incident")
    def declare_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        form = blocks.read_declare_form(view["state"]["values"])  # the shape is checked: malformed.py
        title = form.title.strip()
        if not title:
            ack(response_action="errors", errors={"title": "The incident needs a title."})
            return
        ack()
        actor = body["user"]["id"]
        reply_blocks = None
        try:  # form fields are raw text: keep them in Slack's form like slash-command text
            reply, reply_blocks = declare(
                runtime, title=escape(title), severity=form.severity, declarer=actor, rotation_name=form.rotation,
                description=escape(form.description) if form.description else None, private=form.private)
        except (IncidentError, OncallError) as exc:
            reply = str(exc)
        where = str(view.get("private_metadata") or "")
        with runtime.storage.session() as session:
            if reply_blocks and where:  # the duplicate question, where the form was opened
                enqueue(session, "slack.ephemeral", {"channel": where, "user": actor, "text": reply,
                                                     "blocks": reply_blocks}, now=runtime.clock.now())
            else:
                enqueue(session, "slack.post", {"channel": actor, "text": reply, "blocks": reply_blocks},
                        now=runtime.clock.now())
        runtime.after_commit()

    @app.action("duplicate_join")
    def join_duplicate(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()

        def work() -> str:
            value, actor = str(body["actions"][0].get("value", "")), body["user"]["id"]
            if not value.isascii() or not value.isdigit() or len(value) > 9:
                raise IncidentError("That button is not one of mine.")
            with runtime.storage.read() as session:
                incident = get_incident(db_session=session, number=int(value))
            if not incident.channel_id:
                return "Its channel is still being created; try again in a moment."
            with runtime.storage.session() as session:
                enqueue(session, "slack.invite", {"channel": incident.channel_id, "users": [actor]},
                        now=runtime.clock.now())
            runtime.after_commit()
            return f"Nothing new was declared. You are being added to <#{incident.channel_id}> (#{incident.id})."

        after_ack.answer(respond, work, refusals=(IncidentError,))

    @app.action("duplicate_declare")
    def declare_anyway(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()

        def work() -> str:
            try:
                carried = json.loads(str(body["actions"][0].get("value", "")))
                declaration = {"title": str(carried["title"]), "severity": int(carried["severity"]),
                               "rotation_name": carried.get("rotation_name"), "private": bool(carried.get("private")),
                               "description": carried.get("description")}
                if not all(isinstance(declaration[k], (str, type(None))) for k in ("rotation_name", "description")):
                    raise TypeError("rotation and description are text")
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise IncidentError("That button is not one of mine.") from exc
            reply, _ = declare(runtime, declarer=body["user"]["id"], anyway=True, **declaration)
            return reply

        after_ack.answer(respond, work, refusals=(IncidentError, OncallError))
