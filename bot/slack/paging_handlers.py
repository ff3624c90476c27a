"""Pages: `/incident page`, the Acknowledge and Escalate buttons, escalation by timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.slack.people import People

if TYPE_CHECKING:
    from bot.runtime import Runtime


def register(app: App, runtime: "Runtime", people: People) -> None:
    pass
