"""Importing this module installs the non-Slack HTTP routes on every web app (in this order:
the request hooks of metrics first, then sign-in, which the pages use)."""

from bot.web import ack, alerts, ical, metrics, signin, pages  # noqa: F401  # isort: skip
