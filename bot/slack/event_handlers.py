"""Events, buttons and shortcuts: timeline capture, membership, incident buttons."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from slack_bolt import Ack, App, Respond
from slack_sdk.errors import SlackApiError
from sqlmodel import select

from bot.incidents import service as incidents
from bot.incidents.commands import InChannelCommand, Resolve, SetCommander
from bot.incidents.service import IncidentError
from bot.models import Incident, TimelineEntry
from bot.outbox import enqueue
from bot.text import user

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.slack.after_ack import AfterAck

log = logging.getLogger(__name__)


def take_command_offer(body: dict[str, Any]) -> tuple[int, str, str]:
    """(incident number, the person offered command, the commander going off shift) of a
    "Take command" button; IncidentError for any other value."""
    number, _, rest = str(body["actions"][0].get("value", "")).partition(":")
    offered_to, _, outgoing = rest.partition(":")
    if not (number.isascii() and number.isdigit() and len(number) <= 9 and offered_to and outgoing):
        raise IncidentError("That offer is out of date; ask the commander to hand over with /incident commander.")
    return int(number), offered_to, outgoing


def slack_ts_to_datetime(ts: str) -> datetime:
    """A Slack message ts ("1767225600.000100") as an aware UTC datetime."""
    return datetime.fromtimestamp(float(ts), tz=timezone.utc)


class TimelineCapture:
    """Pinned (:pushpin:) or shortcut-picked messages become timeline entries, once each."""

    def __init__(self, runtime: "Runtime") -> None:
        self.rt = runtime

    def fetch_and_record(self, payload: dict[str, Any]) -> None:
        """Outbox task: read the message from Slack and record it (a re-run records nothing new)."""
        channel, ts = payload["channel"], payload["ts"]
        history = self.rt.client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
        messages = [m for m in history.get("messages", []) if m.get("ts") == ts]
        if not messages:
            log.info("pinned message %s in %s is gone; nothing recorded", ts, channel)
            return
        message = messages[0]
        if self.record(channel, message, self._permalink(channel, ts)):
            try:  # show the channel it was captured
                self.rt.client.reactions_add(channel=channel, timestamp=ts, name="memo")
            except SlackApiError as exc:
                if exc.response.get("error") != "already_reacted":
                    raise

    def _permalink(self, channel: str, ts: str) -> str | None:
        try:
            return str(self.rt.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
        except SlackApiError:
            return None

    def record(self, channel: str, message: dict[str, Any], permalink: str | None) -> bool:
        """True when the message was added; False when it was already on the timeline."""
        ts = message["ts"]
        with self.rt.storage.session() as session:
            incident = incidents.get_by_channel(db_session=session, channel_id=channel)
            if incident is None:
                return False
            entry = incidents.record_message(
                db_session=session, incident=incident, author=message.get("user") or message.get("bot_id") or "unknown",
                text=message.get("text", ""), posted_at=slack_ts_to_datetime(ts), permalink=permalink,
                source_key=f"message:{channel}:{ts}",
            )
        return entry is not None


def register(app: App, runtime: "Runtime", after_ack: "AfterAck") -> None:
    capture = TimelineCapture(runtime)

    @app.event("reaction_added")
    def reaction_added(event: dict[str, Any]) -> None:
        item = event["item"]  # with a message's channel and ts: checked in malformed.py
        if event.get("reaction") != "pushpin" or item.get("type") != "message":
            return
        channel, ts = item["channel"], item["ts"]
        with runtime.storage.session() as session:
            if incidents.get_by_channel(db_session=session, channel_id=channel) is None:
                return
            enqueue(session, "timeline.capture", {"channel": channel, "ts": ts}, now=runtime.clock.now())
        runtime.after_commit()

    @app.shortcut("add_to_timeline")
    def add_to_timeline(ack: Ack, body: dict[str, Any], client: Any) -> None:
        ack()
        channel = body.get("channel", {}).get("id", "")
        actor = body.get("user", {}).get("id", "")
        message = body.get("message") or {}

        def add() -> None:  # a permalink and an ephemeral reply: Slack calls, after the ack
            with runtime.storage.read() as session:
                incident = incidents.get_by_channel(db_session=session, channel_id=channel)
            if incident is None:
                text = "That message is not in an incident channel, so it has no timeline to join."
            elif capture.record(channel, message, capture._permalink(channel, message.get("ts", ""))):
                text = f"Added to the timeline of incident #{incident.id}."
            else:
                text = f"That message is already on the timeline of incident #{incident.id}."
            try:
                client.chat_postEphemeral(channel=channel, user=actor, text=text)
            except SlackApiError:
                client.chat_postMessage(channel=actor, text=text)

        after_ack(add)

    def member_event(event: dict[str, Any]) -> tuple[str, str] | None:
        """(channel, user) of a member event; None when either is missing (not Slack's shape)."""
        channel, member = event.get("channel"), event.get("user")
        return (channel, member) if isinstance(channel, str) and isinstance(member, str) else None

    @app.event("member_joined_channel")
    def member_joined(event: dict[str, Any]) -> None:
        if (found := member_event(event)) is not None:
            with runtime.storage.session() as session:
                incidents.note_member(db_session=session, channel_id=found[0], user_id=found[1])

    @app.event("member_left_channel")
    def member_left(event: dict[str, Any]) -> None:
        if (found := member_event(event)) is not None:
            with runtime.storage.session() as session:
                incidents.note_member(db_session=session, channel_id=found[0], user_id=found[1], present=False)

    def button_incident(body: dict[str, Any]) -> tuple[Incident, str]:
        """The incident a summary button belongs to, and who pressed it."""
        value = str(body["actions"][0].get("value", ""))
        if not value.isascii() or not value.isdigit() or len(value) > 9:
            raise IncidentError("That button is not one of mine.")
        with runtime.storage.read() as session:
            return incidents.get_incident(db_session=session, number=int(value)), body["user"]["id"]

    # "I'm responding" on the pinned summary (incident_ack: the button's id on summaries pinned
    # before it was renamed). It never acknowledges: only a paged person acknowledges their page.
    @app.action("incident_respond")
    @app.action("incident_ack")
    def responding(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()

        def work() -> str | None:
            incident, actor = button_incident(body)  # anyone who sees the summary may join in, as with Join
            now = runtime.clock.now()
            with runtime.storage.session() as session:
                stored = incidents.get_incident(db_session=session, number=incident.id)
                if stored.status == "resolved":
                    return f"Incident #{stored.id} is resolved."
                if session.exec(select(TimelineEntry.id).where(TimelineEntry.incident_id == stored.id,
                                                               TimelineEntry.source_key == f"responding:{actor}")).first():
                    return f"You are already responding to incident #{stored.id}."
                incidents.add_entry(db_session=session, incident=stored, at=now, actor=actor, kind="responding",
                                    text=f"<@{actor}> is responding", source_key=f"responding:{actor}")
                if stored.channel_id:
                    enqueue(session, "slack.invite", {"channel": stored.channel_id, "users": [actor]}, now=now)
                enqueue(session, "incident.post", {"incident_id": stored.id,
                                                   "text": f":raising_hand: {user(actor)} is responding."}, now=now)
            runtime.after_commit()
            return None

        after_ack.answer(respond, work, refusals=(IncidentError,))

    @app.action("incident_join")
    def join_incident(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()

        def work() -> str | None:
            incident, actor = button_incident(body)
            if not incident.channel_id:
                return "Its channel is still being created; try again in a moment."
            with runtime.storage.session() as session:
                enqueue(session, "slack.invite", {"channel": incident.channel_id, "users": [actor]}, now=runtime.clock.now())
            runtime.after_commit()
            return None

        after_ack.answer(respond, work, refusals=(IncidentError,))

    def in_channel_button(body: dict[str, Any], respond: Respond, command: Callable[[str], InChannelCommand]) -> None:
        """A button that runs an /incident command in the incident's channel as the presser."""

        def work() -> str:
            incident, actor = button_incident(body)
            return runtime.incidents.in_channel(command(actor), channel_id=incident.channel_id or "", actor=actor)

        after_ack.answer(respond, work, refusals=(IncidentError,))

    @app.action("take_command")
    def take_command(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()

        def work() -> str:
            number, offered_to, outgoing = take_command_offer(body)
            actor = body["user"]["id"]
            if actor != offered_to:
                raise IncidentError(f"This offer to take command of incident #{number} was made to "
                                    f"{user(offered_to)} only.")
            with runtime.storage.read() as session:
                incident = incidents.get_incident(db_session=session, number=number)
            if incident.commander != outgoing:  # taken already, or someone else was named since
                raise IncidentError(f"{user(incident.commander)} commands incident #{number} now; "
                                    "this offer is closed.")
            return runtime.incidents.in_channel(SetCommander(actor), channel_id=incident.channel_id or "", actor=actor)

        after_ack.answer(respond, work, refusals=(IncidentError,))

    @app.action("incident_resolve")
    def resolve_incident(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        in_channel_button(body, respond, lambda actor: Resolve(None))
