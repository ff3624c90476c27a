"""User text in the messages the bot writes (Slack's mrkdwn form).

Slash-command text arrives in Slack's own form (the app asks Slack to escape it): `&`, `<`, `>`
as entities, people as `<@U123|name>`, and @here/@channel as `<!here>`/`<!channel>`. We keep
user text in that form; `safe()` makes it harmless to post (no broadcast pings), `escape()`
brings raw text (form fields, alerts) into that form, `plain()` gives readable text back.
"""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import datetime

from bot.schedule.zones import utc_to_local

ZWSP = "\u200b"
QUOTED = 80  # characters of a person's input that a refusal quotes back
# Letters that draw nothing (Hangul and halfwidth fillers, the blank Braille pattern).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
ZWJ = "\u200d"
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


def visible(text: str) -> str:
    """The text without characters that draw nothing or reorder what follows: format
    characters (zero-width spaces, direction marks, embeddings, overrides and isolates, byte
    order marks...), control characters and blank letters. A zero-width joiner between two
    symbols stays: it makes one emoji of them."""
    kept = []
    for i, char in enumerate(text):
        category = unicodedata.category(char)
        if char == ZWJ and 0 < i < len(text) - 1 and _joins(text[i - 1], text[i + 1]):
            kept.append(char)
        elif char in "\t\n\r":
            kept.append(" ")
        elif category not in ("Cf", "Cc", "Cs", "Co", "Cn") and char not in _BLANK_LETTERS:
            kept.append(char)
    return "".join(kept)


def _joins(before: str, after: str) -> bool:
    return (unicodedata.category(before) in ("So", "Sk") or before == "\ufe0f") and unicodedata.category(after) == "So"


def shows_anything(text: str) -> bool:
    """True when some character draws on screen (not only spaces and combining marks)."""
    return any(unicodedata.category(char)[0] not in "MZC" and char not in _BLANK_LETTERS for char in text)


def excerpt(text: str, limit: int = QUOTED) -> str:
    """At most `limit` characters of a person's input, on one line, for a refusal to quote."""
    return truncate(" ".join(text.split()), limit)


def number(token: str) -> int | None:
    """A plain ASCII number of at most 9 digits (`str.isdigit` also accepts `²`, which `int`
    refuses, and `int` refuses over 4300 digits), else None."""
    return int(token) if re.fullmatch(r"[0-9]{1,9}", token) else None


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
