"""A local stand-in for Slack's Web API, for tests and the ``console`` demo mode.

    from bot.standin import SlackStandIn
    from slack_sdk import WebClient

    with SlackStandIn(bot_token="xoxb-standin", bot_user_id="UBOT") as slack:
        slack.add_user("U0ALICE", "alice", tz="America/Los_Angeles", email="alice@example.com")
        client = WebClient(token="xoxb-standin", base_url=slack.api_url)
        client.chat_postMessage(channel="U0ALICE", text="hi")   # DM -> slack.dms("U0ALICE")

It answers over HTTP on 127.0.0.1 with Slack's response shapes and error codes and
records every call (``slack.calls``); ``bot.standin.render`` turns calls into the lines a
person would see in Slack.
"""

from bot.standin.methods import Workspace
from bot.standin.render import blocks_text, message_text, render, resolve_mentions
from bot.standin.server import Call, SlackStandIn
from bot.standin.workspace import SlackError

__all__ = [
    "Call",
    "SlackError",
    "SlackStandIn",
    "Workspace",
    "blocks_text",
    "message_text",
    "render",
    "resolve_mentions",
]
