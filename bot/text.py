"""User text in the messages the bot writes (Slack's mrkdwn form).

Slash-command text arrives in Slack's own form (the app asks Slack to escape it): `&`, `<`, `>`
as entities, people as `<@U123|name>`, and @here/@channel as `<!here>`/`<!channel>`. We keep
user text in that form; `safe()` makes it harmless to post (no broadcast pings), `escape()`
brings raw text (form fields, alerts) into that form, `plain()` gives readable text back.
"""

from __future__ import annotations

import html
import re
from datetime import datetime

from bot.schedule.zones import utc_to_local

ZWSP = "\u200b"
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>|<!subteam\^[A-Z0-9]+(?:\|@?([^>]*))?>")
_BARE = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<(#C[A-Z0-9]+|https?://[^|>]+)(?:\|([^>]*))?>")


def _defuse(match: re.Match[str]) -> str:
    if match.group(1):
        return "@" + ZWSP + match.group(1)
    return "@" + ZWSP + (match.group(2) or "group")


def safe(text: str | None) -> str:
    """Slack-form user text made safe to post: @here, @channel, @everyone and group pings inert."""
    if not text:
        return ""
    text = _SPECIAL.sub(_defuse, text)
    return _BARE.sub(lambda m: "@" + ZWSP + m.group(1), text)


def escape(text: str | None) -> str:
    """Raw text (a form field, an alert) in Slack's form, safe to post."""
    if not text:
        return ""
    return safe(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def plain(text: str | None) -> str:
    """Readable text from Slack's form: entities decoded, people and links as their labels."""
    if not text:
        return ""
    text = _SPECIAL.sub(lambda m: "@" + (m.group(1) or m.group(2) or "group"), text)
    text = _MENTION.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    return html.unescape(text)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def user(user_id: str | None) -> str:
    """A mention that Slack renders as the person's name (other actors, e.g. alertmanager, as text)."""
    if not user_id:
        return "nobody"
    return f"<@{user_id}>" if re.fullmatch(r"[UW][A-Z0-9]+", user_id) else safe(user_id)


def when(instant: datetime, tz: str) -> str:
    """`Tue 24 Nov 09:00 SGT (01:00 UTC)`: the reader's local time with UTC beside it."""
    local = utc_to_local(tz, instant)
    return f"{local:%a %d %b %H:%M} {local.tzname()} ({instant:%H:%M} UTC)"
