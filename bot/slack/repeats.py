"""Finding what an earlier attempt of an outbox task posted: every message the outbox posts
names its step in its metadata, and an attempt that may repeat a crashed one looks for it in
the history before posting again."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.outbox import current_task

log = logging.getLogger(__name__)
# Pages of a channel's history read to find a message an attempt that crashed had posted.
HISTORY_PAGES = 5


def repeated() -> bool:
    """Whether an earlier attempt of the running outbox task may have done its Slack call."""
    task = current_task()
    return task is not None and task[1]


def earlier_post(client: WebClient, bot_user: str, channel: str, step: str) -> str | None:
    """The ts of the bot's message in `channel` (a user ID: their DM) whose metadata names
    this step: posted by an attempt that stopped before it could save it. None if none."""
    try:
        if channel.startswith(("U", "W")):
            channel = str(client.conversations_open(users=channel)["channel"]["id"])
        cursor = None
        for _ in range(HISTORY_PAGES):
            page = client.conversations_history(channel=channel, limit=200, cursor=cursor, include_all_metadata=True)
            for message in page.get("messages", []):
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("step") == step and message.get("user") == bot_user:
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
    except SlackApiError as exc:  # not a member, or no such channel: nothing was posted there
        code = str(exc.response.get("error", "")) if exc.response is not None else ""
        if code == "missing_scope":  # an install from before im:history: post again
            log.warning("cannot read %s to find an earlier %s: %s", channel, step, exc.response.get("needed"))
        elif code not in ("not_in_channel", "channel_not_found"):
            raise
    return None
