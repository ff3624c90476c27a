"""Importing this module installs the non-Slack HTTP routes on every web app."""

from bot.web import ack, alerts, ical, metrics, postmortems  # noqa: F401
