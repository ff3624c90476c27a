"""Importing this module installs the non-Slack HTTP routes on every web app."""

from bot.web import ical, postmortems  # noqa: F401
