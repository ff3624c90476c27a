"""Outbox tasks that call Slack's Web API. Each is idempotent step by step: it saves what it
has done, so a retry after a failure or a crash continues instead of starting over."""

from __future__ import annotations

import json
import logging
from http.client import HTTPException
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlmodel import Session, col, select

from bot.incidents import service as incidents
from bot.incidents import workflow
from bot.models import ChannelMember, Incident, OutboxTask, Page
from bot.outbox import SETUP, PermanentError, current_task, enqueue
from bot.slack import blocks, repeats
from bot.slack.pacing import PacedWebClient, Pacer, retry_after
from bot.slack.text import channel_name
from bot.text import escape, safe

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
# Errors of bookmarks.* that retrying cannot cure (the app lacks bookmarks:write, or the
# workspace does not allow them); the incident goes on without them.
BOOKMARKS_REFUSED = {"missing_scope", "not_allowed", "not_allowed_token_type", "restricted_action", "invalid_link"}


def error_code(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "")) if exc.response is not None else ""


class Effects:
    """The outbox handlers, bound to one runtime."""

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
        incident = self._incident(payload["incident_id"])
        if incident.channel_id is None:
            raise RuntimeError(f"incident #{incident.id} has no channel yet")
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
        incident = self._incident(payload["incident_id"])
        if incident.channel_id is None:
            raise RuntimeError(f"incident #{incident.id} has no channel yet")
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
        incident = self._incident(payload["incident_id"])
        if incident.channel_id is None:
            raise RuntimeError(f"incident #{incident.id} has no channel yet")
        self.invite({"channel": incident.channel_id, "users": payload["users"]})

    def send_page(self, payload: dict[str, Any]) -> None:
        """DM the page with its buttons; remembers the DM so the buttons can be retired."""
        page, incident = self._page(payload["page_id"])
        if page.dm_ts:
            return
        text, page_blocks = blocks.page_message(page, incident)
        step = f"page-{page.id}"
        ts = self._earlier_post(page.user, step) if repeats.repeated() else None
        if ts is None:
            response = self.client.chat_postMessage(channel=page.user, text=text, blocks=page_blocks,
                                                    metadata=blocks.metadata(incident.id if incident else None, step))
            dm_channel, ts = str(response["channel"]), str(response["ts"])
        else:
            dm_channel = str(self.client.conversations_open(users=page.user)["channel"]["id"])
        with self.rt.storage.session() as session:
            stored = session.get(Page, page.id)
            assert stored is not None
            stored.dm_channel, stored.dm_ts = dm_channel, ts

    def refresh_page(self, payload: dict[str, Any]) -> None:
        """Show the page's outcome in its DM instead of the buttons."""
        page, incident = self._page(payload["page_id"])
        if not page.dm_ts:
            raise RuntimeError(f"page {page.id} has not been sent yet")
        text, page_blocks = blocks.page_message(page, incident)
        self.client.chat_update(channel=page.dm_channel, ts=page.dm_ts, text=text, blocks=page_blocks)

    def _page(self, page_id: int) -> tuple[Page, Incident | None]:
        with self.rt.storage.read() as session:
            page = session.get(Page, page_id)
            incident = session.get(Incident, page.incident_id) if page and page.incident_id else None
        if page is None:
            raise PermanentError(f"page {page_id} does not exist")
        return page, incident

    def refresh_incident(self, payload: dict[str, Any]) -> None:
        """Bring the topic and the pinned summary up to date."""
        incident = self._incident(payload["incident_id"])
        if incident.channel_id is None:
            raise RuntimeError(f"incident #{incident.id} has no channel yet")
        self._wait_for_slots(("conversations.setTopic", {}), ("chat.update", {}) if incident.summary_ts else None)
        self.client.conversations_setTopic(channel=incident.channel_id, topic=self._topic(incident))
        if incident.summary_ts:
            text, summary_blocks = blocks.summary(incident, self._roles(incident), blocks.web_link(self.rt.settings, f"/incidents/{incident.id}"))
            self.client.chat_update(channel=incident.channel_id, ts=incident.summary_ts, text=text, blocks=summary_blocks)

    def post_message(self, channel: str, text: str, blocks: Any = None, *, incident_id: int | None = None,
                     thread_ts: str | None = None) -> str:
        """chat.postMessage (with the incident and the outbox task in its metadata); joins a
        public channel first when the bot is not in it yet. A repeated task whose message was
        posted by an attempt that stopped before finishing gets that message's ts instead."""
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        task = current_task()
        step = None if task is None or thread_ts else f"task-{task[0]}"  # replies: not in the history
        if incident_id is not None or step is not None:
            extra["metadata"] = metadata(incident_id, step)
        if step is not None and repeats.repeated():
            earlier = self._earlier_post(channel, step)
            if earlier is not None:
                return earlier
        try:
            return str(self.client.chat_postMessage(channel=channel, text=text, blocks=blocks, **extra)["ts"])
        except SlackApiError as exc:
            if error_code(exc) != "not_in_channel":
                raise
        self.client.conversations_join(channel=channel)
        return str(self.client.chat_postMessage(channel=channel, text=text, blocks=blocks, **extra)["ts"])

    def post_to_incident(self, payload: dict[str, Any]) -> None:
        """A message in the incident's channel (waits for the channel to exist)."""
        incident = self._incident(payload["incident_id"])
        if incident.channel_id is None:
            raise RuntimeError(f"incident #{incident.id} has no channel yet")
        self.post_message(incident.channel_id, payload["text"], payload.get("blocks"), incident_id=incident.id)

    def thread_reply(self, payload: dict[str, Any]) -> None:
        """A stakeholder update as a reply under the declaration's broadcast (waits for it)."""
        target = self.rt.settings.incidents_channel
        incident = self._incident(payload["incident_id"])
        if not target or incident.private:
            return
        if incident.broadcast_ts is None:
            raise RuntimeError(f"incident #{incident.id} has not been broadcast yet")
        self.post_message(target, payload["text"], incident_id=incident.id, thread_ts=incident.broadcast_ts)

    def broadcast(self, payload: dict[str, Any]) -> None:
        """Announce a declaration, a severity change, a reopening or a resolution in
        INCIDENTS_CHANNEL; never for a private incident."""
        target = self.rt.settings.incidents_channel
        if not target:
            return
        incident = self._incident(payload["incident_id"])
        event = payload.get("event", "")
        if incident.private or (event == "declared" and incident.broadcast_ts is not None):
            return
        verb = {"declared": "declared", "raised": "raised to", "lowered": "lowered to", "reopened": "reopened",
                "resolved": "resolved"}.get(event, "updated")
        text = f":rotating_light: Incident {verb}: {blocks.incident_line(incident)}"
        page = blocks.web_link(self.rt.settings, f"/incidents/{incident.id}")
        if page:
            text += f" · <{page}|incident page>"
        if payload.get("event") == "resolved":
            text = f":white_check_mark: Incident resolved: {blocks.incident_line(incident)}"
            if payload.get("postmortem"):
                text += f"\nPostmortem draft: {payload['postmortem']}"
        ts = self.post_message(target, text, incident_id=incident.id)
        if event == "declared" and incident.broadcast_ts is None:
            self._save(incident.id, broadcast_ts=ts)

    def post(self, payload: dict[str, Any]) -> None:
        self.post_message(payload["channel"], payload["text"], payload.get("blocks"))

    def ephemeral(self, payload: dict[str, Any]) -> None:
        try:
            self.client.chat_postEphemeral(channel=payload["channel"], user=payload["user"], text=payload["text"],
                                           blocks=payload.get("blocks"))
        except SlackApiError as exc:  # they left, or the channel is gone: tell them directly
            if error_code(exc) not in ("user_not_in_channel", "channel_not_found", "not_in_channel"):
                raise
            self.client.chat_postMessage(channel=payload["user"], text=payload["text"], blocks=payload.get("blocks"))

    def set_usergroup(self, payload: dict[str, Any]) -> None:
        self.client.usergroups_users_update(usergroup=payload["usergroup"], users=",".join(payload["users"]))

    def report_failure(self, kind: str, payload: dict[str, Any], error: str) -> None:
        """Tell the declarer when Slack work for their incident could not be done."""
        incident_id = payload.get("incident_id")
        if incident_id is None:
            return
        incident = self._incident(incident_id)
        where = f" in <#{incident.channel_id}>" if incident.channel_id else ""
        text = (
            f":warning: I could not finish `{kind}` for incident #{incident.id} "
            f"*{safe(incident.title)}*{where}: {escape(error)[:300]}. The incident is saved; "
            f"`/incident list` shows it."
        )
        self.client.chat_postMessage(channel=incident.declarer, text=text)


def metadata(incident_id: int | None, step: str | None = None) -> dict[str, Any]:
    """blocks.metadata, for where a parameter named `blocks` hides the module."""
    return blocks.metadata(incident_id, step)



def without_rate_limit_sleeps(client: WebClient, pacer: Pacer | None = None) -> WebClient:
    """A copy of the client that answers 429 at once instead of sleeping out Retry-After, and
    paces its calls by `pacer`: the outbox puts the task back until a slot frees, and its
    workers get on with other incidents."""
    copy = PacedWebClient.like(client, getattr(client, "metrics", None))
    copy.retry_handlers = [h for h in copy.retry_handlers if not isinstance(h, RateLimitErrorRetryHandler)]
    copy.pacer = pacer
    return copy


def slack_unavailable(exc: Exception) -> bool:
    """True when Slack is down or out of reach (a 5xx, a timeout, a refused or dropped
    connection), not refusing this call: the outbox holds every Slack task until it is back."""
    if isinstance(exc, SlackApiError):
        return exc.response is not None and exc.response.status_code >= 500
    return isinstance(exc, (OSError, HTTPException))  # URLError and socket timeouts are OSErrors


SLACK = "slack"  # the outbox service of every task that calls Slack


def install(runtime: "Runtime") -> None:
    """Register every Slack outbox task on the runtime's outbox."""
    effects = Effects(runtime)
    outbox = runtime.outbox
    for kind, handler in {
        "incident.open": effects.open_incident,
        SETUP: effects.set_up_incident,
        "incident.refresh": effects.refresh_incident,
        "incident.post": effects.post_to_incident,
        "incident.invite": effects.invite_to_incident,
        "page.send": effects.send_page,
        "page.refresh": effects.refresh_page,
        "incident.broadcast": effects.broadcast,
        "incident.thread": effects.thread_reply,
        "incident.bookmark": effects.add_bookmark,
        "slack.invite": effects.invite,
        "slack.post": effects.post,
        "slack.ephemeral": effects.ephemeral,
        "slack.usergroup": effects.set_usergroup,
    }.items():
        outbox.register(kind, handler, service=SLACK)
    outbox.on_failure = effects.report_failure
    outbox.retry_after = retry_after  # a paced call's wait, or Slack's 429 Retry-After
    outbox.unavailable = slack_unavailable
