"""Slack channel names for incidents."""

from __future__ import annotations

import re
import unicodedata

from bot.text import plain


def slugify(title: str) -> str:
    """Lowercase ASCII words joined by hyphens: only Slack's allowed channel-name characters."""
    readable = plain(title)
    ascii_text = unicodedata.normalize("NFKD", readable).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def channel_name(number: int, title: str, suffix: int = 0) -> str:
    """`inc-<n>-<slug>`, at most 80 characters, with `-<suffix>` when the plain name is taken."""
    prefix = f"inc-{number}"
    tail = f"-{suffix}" if suffix else ""
    slug = slugify(title)
    room = 80 - len(prefix) - len(tail) - 1
    slug = slug[:room].strip("-") if room > 0 else ""
    return f"{prefix}-{slug}{tail}" if slug else f"{prefix}{tail}"
