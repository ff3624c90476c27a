"""Incident domain: service functions taking a session and plain values. Never imports Slack."""

from bot.incidents.service import IncidentError  # noqa: F401
