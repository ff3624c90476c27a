"""Importing this module installs the non-Slack HTTP routes on every web app."""

from bot.web import ical, postmortems  # noqa: F401
from bot.web import alerts  # noqa: F401
