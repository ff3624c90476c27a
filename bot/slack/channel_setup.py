"""Creating an incident's channel and setting it up: the channel (or the one a crash left),
its members, then topic, pinned summary, bookmarks and broadcast. The base of the outbox's
Slack handlers (bot/slack/effects.py), with the helpers they share."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlmodel import Session, col, select

from bot.incidents import service as incidents
from bot.incidents import workflow
from bot.models import ChannelMember, Incident, OutboxTask
from bot.outbox import SETUP, PermanentError, Waiting, current_task, enqueue
from bot.slack import blocks, repeats
from bot.slack.pacing import PacedWebClient, Pacer, retry_after
from bot.slack.text import channel_name

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
# Errors of bookmarks.* that retrying cannot cure (the app lacks bookmarks:write, or the
# workspace does not allow them); the incident goes on without them.
BOOKMARKS_REFUSED = {"missing_scope", "not_allowed", "not_allowed_token_type", "restricted_action", "invalid_link"}


def error_code(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "")) if exc.response is not None else ""


class ChannelSetup:
    """Channel handlers and the helpers every Slack handler shares, bound to one runtime."""

    def __init__(self, runtime: "Runtime") -> None:
        self.rt = runtime
        self.client = without_rate_limit_sleeps(runtime.client, runtime.pacer)
        self.pacer = runtime.pacer

    def _incident(self, incident_id: int) -> Incident:
        with self.rt.storage.read() as session:
            incident = session.get(Incident, incident_id)
        if incident is None:
            raise PermanentError(f"incident {incident_id} does not exist")
        return incident

    def _incident_with_channel(self, incident_id: int) -> Incident:
        """The incident, once its channel exists: until then the task waits (not an attempt)."""
        incident = self._incident(incident_id)
        if incident.channel_id is None:
            raise Waiting(f"incident #{incident.id} has no channel yet")
        return incident

    def _save(self, incident_id: int, **values: Any) -> None:
        with self.rt.storage.session() as session:
            incident = session.get(Incident, incident_id)
            assert incident is not None
            for name, value in values.items():
                setattr(incident, name, value)
            session.add(incident)

    def _roles(self, incident: Incident) -> dict[str, str]:
        with self.rt.storage.read() as session:
            return workflow.roles_of(db_session=session, incident=incident)

    def _topic(self, incident: Incident) -> str:
        names = {role: self.rt.people.profile(who).name for role, who in self._roles(incident).items()}
        return blocks.topic(incident, self.rt.people.profile(incident.commander).name, names)

    def open_incident(self, payload: dict[str, Any]) -> None:
        """Create the channel and invite, then queue the rest of its setup (incident.setup),
        which waits for the pages made before it. A retry goes on from the step that failed."""
        incident = self._incident(payload["incident_id"])
        done: list[str] = payload.setdefault("done", [])
        self._wait_for_slots(("conversations.create", {}) if incident.channel_id is None else None)
        brand_new = False  # a channel created just now cannot hold a summary yet
        if incident.channel_id is None:
            incident, brand_new = self._create_channel(incident)
        if "invite" not in done:
            self.invite({"channel": incident.channel_id,
                         "users": self._not_members(incident.channel_id, payload.get("invite", []))})
            done.append("invite")
        rest = {"incident_id": incident.id, "source": payload.get("source"), "fresh": brand_new}
        with self.rt.storage.session() as session:
            if not (repeats.repeated() and self._setup_queued(session, incident.id)):
                # dated from the declaration: it runs in incident order, behind earlier pages
                enqueue(session, SETUP, rest, now=incident.declared_at)
        self.rt.outbox.notify()  # the pass looks again: the summary goes before the posts it had fetched

    def _setup_queued(self, session: Session, incident_id: int) -> bool:
        """Whether an earlier attempt of this incident.open task queued the rest of the setup."""
        task = current_task()
        since = task[0] if task is not None else 0  # queued by this task: after it
        payloads = session.exec(select(OutboxTask.payload).where(OutboxTask.kind == SETUP, col(OutboxTask.id) > since)).all()
        return any(json.loads(p).get("incident_id") == incident_id for p in payloads)

    def set_up_incident(self, payload: dict[str, Any]) -> None:
        """Set the topic, post and pin the summary, add the bookmarks, then broadcast. Steps
        done are noted in the payload (the outbox saves it when a later step fails), so a retry
        after a rate limit goes on from the step that failed."""
        incident = self._incident_with_channel(payload["incident_id"])
        done: list[str] = payload.setdefault("done", [])
        self._wait_for_slots(None if "topic" in done else ("conversations.setTopic", {}), ("pins.add", {}))
        if "topic" not in done:
            self.client.conversations_setTopic(channel=incident.channel_id, topic=self._topic(incident))
            done.append("topic")
        if incident.summary_ts is None:
            # an earlier attempt, or an adopted channel, may hold a summary whose ts was not saved
            look = repeats.repeated() or not payload.get("fresh", False)
            ts = self._posted_summary(incident) if look else None
            if ts is None:
                text, summary_blocks = blocks.summary(incident, self._roles(incident), blocks.web_link(self.rt.settings, f"/incidents/{incident.id}"))
                ts = self.client.chat_postMessage(channel=incident.channel_id, text=text, blocks=summary_blocks,
                                                  metadata=blocks.metadata(incident.id, "summary"))["ts"]
            with self.rt.storage.session() as session:
                stored = session.get(Incident, incident.id)
                assert stored is not None
                stored.summary_ts = ts
                enqueue(session, "incident.broadcast", {"incident_id": incident.id, "event": "declared"}, now=self.rt.clock.now())
            incident.summary_ts = ts
        if "pin" not in done:
            try:
                self.client.pins_add(channel=incident.channel_id, timestamp=incident.summary_ts)
            except SlackApiError as exc:
                if error_code(exc) != "already_pinned":
                    raise
            done.append("pin")
        self._bookmark(incident, self._first_bookmarks(incident, payload.get("source")))

    def _wait_for_slots(self, *calls: tuple[str, dict[str, Any]] | None) -> None:
        """Put the task back (Paced) unless each of its paced steps finds a slot now, so a retry
        does not repeat the steps before the one that had to wait."""
        if self.pacer is not None:
            self.pacer.check([call for call in calls if call is not None])

    def _not_members(self, channel: str, users: list[str]) -> list[str]:
        """Those not known to be in the channel yet (a retry invites nobody twice)."""
        with self.rt.storage.read() as session:
            present = set(session.exec(select(ChannelMember.user_id).where(ChannelMember.channel_id == channel)).all())
        return [u for u in users if u not in present]

    def _first_bookmarks(self, incident: Incident, source: str | None) -> list[tuple[str, str]]:
        """The incident's web page (when the pages are on), its rotation's runbook and its alert's
        source."""
        marks = []
        if self.rt.settings.web_pages:
            marks.append((f"Incident #{incident.id}", f"{self.rt.settings.base_url}/incidents/{incident.id}"))
        rotation = self.rt.rotations.get(incident.rotation or "")
        if rotation is not None and rotation.runbook:
            marks.append(("Runbook", rotation.runbook))
        if source and source.startswith(("http://", "https://")):
            marks.append(("Alert source", source))
        return marks

    def _bookmark(self, incident: Incident, marks: list[tuple[str, str]]) -> None:
        """Add the bookmarks the channel does not have yet (a retry adds none twice). A workspace
        that refuses bookmarks (a missing scope) is logged, not retried."""
        if not marks:
            return
        try:
            present = {b.get("link") for b in self.client.bookmarks_list(channel_id=incident.channel_id)["bookmarks"]}
            for title, link in marks:
                if link not in present:
                    self.client.bookmarks_add(channel_id=incident.channel_id, title=title, type="link", link=link)
        except SlackApiError as exc:
            if retry_after(exc) is not None or error_code(exc) not in BOOKMARKS_REFUSED:
                raise
            log.warning("bookmarks for incident #%s refused: %s", incident.id, error_code(exc))

    def add_bookmark(self, payload: dict[str, Any]) -> None:
        """A bookmark in the incident's channel (the postmortem, on resolve)."""
        incident = self._incident_with_channel(payload["incident_id"])
        self._bookmark(incident, [(payload["title"], payload["link"])])

    def _create_channel(self, incident: Incident) -> tuple[Incident, bool]:
        """The incident with its channel saved, and whether the channel was created just now
        (False when one the bot created before a crash was adopted)."""
        for suffix in range(0, 50):
            name = channel_name(incident.id, incident.title, suffix)
            try:
                channel = self.client.conversations_create(name=name, is_private=incident.private)["channel"]
                created = True
            except SlackApiError as exc:
                if error_code(exc) != "name_taken":
                    raise
                # Ours already, when a crash came between creating it and saving its id.
                channel, created = self._own_channel(name, incident), False
                if channel is None:
                    continue
            self._save(incident.id, channel_id=channel["id"], channel_name=channel["name"])
            incident.channel_id, incident.channel_name = channel["id"], channel["name"]
            return incident, created
        raise PermanentError(f"no free channel name for incident #{incident.id}")

    def _bot_user(self) -> str:
        if "bot_user_id" not in self.__dict__:
            self.bot_user_id = str(self.client.auth_test()["user_id"])
        return self.bot_user_id

    def _own_channel(self, name: str, incident: Incident) -> dict[str, Any] | None:
        """The channel of that name if this bot created it since the incident was declared."""
        cursor = None
        while True:
            page = self.client.conversations_list(limit=1000, exclude_archived=True, cursor=cursor,
                                                  types="private_channel" if incident.private else "public_channel")
            for channel in page.get("channels", []):
                if channel.get("name") == name:
                    created = int(channel.get("created", 0))
                    mine = channel.get("creator") == self._bot_user() and created >= int(incident.declared_at.timestamp()) - 60
                    return dict(channel) if mine else None
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    def _posted_summary(self, incident: Incident) -> str | None:
        """The ts of a summary posted before a crash kept us from saving it."""
        assert incident.channel_id is not None
        return self._earlier_post(incident.channel_id, "summary")

    def _earlier_post(self, channel: str, step: str) -> str | None:
        return repeats.earlier_post(self.client, self._bot_user(), channel, step)

    def invite(self, payload: dict[str, Any]) -> None:
        """Invite people to a channel; those already there or unknown are skipped."""
        channel = payload["channel"]
        users = [u for u in dict.fromkeys(payload.get("users", [])) if u]
        if not users:
            return
        try:
            self.client.conversations_invite(channel=channel, users=",".join(users))
        except SlackApiError as exc:
            if error_code(exc) not in ("already_in_channel", "user_not_found", "cant_invite_self", "user_is_restricted"):
                raise
            if len(users) > 1:  # one bad ID fails the batch: invite the rest one by one
                for one in users:
                    self.invite({"channel": channel, "users": [one]})
                return
        with self.rt.storage.transaction() as connection:
            incidents.note_members(db_session=connection, channel_id=channel, user_ids=users)
        for one in users:  # names and zones cached now, so postmortems and timelines show them
            self.rt.people.profile(one)

    def invite_to_incident(self, payload: dict[str, Any]) -> None:
        """Invite people to an incident's channel (waits for the channel to exist)."""
        incident = self._incident_with_channel(payload["incident_id"])
        self.invite({"channel": incident.channel_id, "users": payload["users"]})


def without_rate_limit_sleeps(client: WebClient, pacer: Pacer | None = None) -> WebClient:
    """A copy of the client that answers 429 at once instead of sleeping out Retry-After, and
    paces its calls by `pacer`: the outbox puts the task back until a slot frees, and its
    workers get on with other incidents."""
    copy = PacedWebClient.like(client, getattr(client, "metrics", None))
    copy.retry_handlers = [h for h in copy.retry_handlers if not isinstance(h, RateLimitErrorRetryHandler)]
    copy.pacer = pacer
    return copy
