"""Outbox tasks that call Slack's Web API. Each is idempotent step by step: it saves what it
has done, so a retry after a failure or a crash continues instead of starting over."""

from __future__ import annotations

import logging
from http.client import HTTPException
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.models import Incident, Page
from bot.outbox import SETUP, PermanentError, Waiting, current_task
from bot.slack import blocks, repeats
from bot.slack.channel_setup import ChannelSetup, error_code
from bot.slack.pacing import retry_after
from bot.text import escape, safe

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


class Effects(ChannelSetup):
    """The outbox handlers, bound to one runtime."""

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
        incident = self._incident_with_channel(payload["incident_id"])
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
        incident = self._incident_with_channel(payload["incident_id"])
        self.post_message(incident.channel_id, payload["text"], payload.get("blocks"), incident_id=incident.id)

    def thread_reply(self, payload: dict[str, Any]) -> None:
        """A stakeholder update as a reply under the declaration's broadcast (waits for it)."""
        target = self.rt.settings.incidents_channel
        incident = self._incident(payload["incident_id"])
        if not target or incident.private:
            return
        if incident.broadcast_ts is None:
            raise Waiting(f"incident #{incident.id} has not been broadcast yet")
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
