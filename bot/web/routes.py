"""Importing this module installs the non-Slack HTTP routes on every web app."""

from bot.web import postmortems  # noqa: F401
