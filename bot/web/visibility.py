"""Who may see an incident on the web pages."""

from __future__ import annotations

from collections.abc import Callable

from bot.models import Incident


def visible_to(user: str, incident: Incident, is_member: Callable[[str, str], bool]) -> bool:
    """Whether `user` may see `incident`: an incident known to be public is shown to everyone
    signed in; any other incident with a channel only to that channel's members
    (`is_member(channel, user)`, from what the bot saw or `conversations.members`), so a
    private incident is never shown to anyone outside its channel."""
    if getattr(incident, "private", None) is False or getattr(incident, "is_private", None) is False:
        return True
    if not incident.channel_id:
        return True
    return is_member(incident.channel_id, user)
