"""Importing this module installs the non-Slack HTTP routes on every web app."""

from bot.web import alerts, ical, metrics, postmortems  # noqa: F401
