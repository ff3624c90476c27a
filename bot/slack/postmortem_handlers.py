"""Postmortem drafts in Slack: drafted on resolve, uploaded to the channel, redrafted on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.slack.people import People

if TYPE_CHECKING:
    from bot.runtime import Runtime


def register(app: App, runtime: "Runtime", people: People) -> None:
    """Install the resolve hook, `/incident postmortem` and the upload outbox task."""


def install(runtime: "Runtime") -> None:
    """Outbox tasks and hooks for postmortems (being built)."""
