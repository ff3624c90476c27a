"""Making user text safe and readable in Slack messages."""

from __future__ import annotations

import re
import unicodedata

_BROADCASTS = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
ZWSP = "\u200b"


def escape(text: str | None) -> str:
    """User text as data: Slack's control characters escaped, and no @here/@channel pings."""
    if not text:
        return ""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCASTS.sub(lambda m: "@" + ZWSP + m.group(1), text)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slugify(title: str) -> str:
    """Lowercase ASCII words joined by hyphens: only Slack's allowed channel-name characters."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def channel_name(number: int, title: str, suffix: int = 0) -> str:
    """`inc-<n>-<slug>`, at most 80 characters, with `-<suffix>` when the plain name is taken."""
    prefix = f"inc-{number}"
    tail = f"-{suffix}" if suffix else ""
    slug = slugify(title)
    room = 80 - len(prefix) - len(tail) - 1
    slug = slug[:room].strip("-") if room > 0 else ""
    return f"{prefix}-{slug}{tail}" if slug else f"{prefix}{tail}"


def user(user_id: str | None) -> str:
    """A mention that Slack renders as the person's name."""
    return f"<@{user_id}>" if user_id else "nobody"
