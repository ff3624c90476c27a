"""`/oncall ical` and `/oncall ical reset`: the asker's secret calendar feed address."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.oncall.feeds import feed_secret
from bot.slack.commands import UsageError
from bot.text import excerpt

if TYPE_CHECKING:
    from bot.runtime import Runtime

FORM = "`/oncall ical` — my calendar feed address · `/oncall ical reset` — replace it (the old one stops working)"


def parse_ical(text: str) -> bool | None:
    """None when the text is not an `ical` command; else whether it asks for a reset.
    UsageError for anything else after `ical`."""
    words = text.split()
    if not words or words[0].lower() != "ical":
        return None
    if len(words) == 1:
        return False
    if len(words) == 2 and words[1].lower() == "reset":
        return True
    raise UsageError(f"`{excerpt(text)}` is not an /oncall ical command. Use {FORM}")


def feed_reply(runtime: Runtime, asker: str, *, reset: bool) -> str:
    """The ephemeral answer: the feed address, made (or replaced) for the asker."""
    with runtime.storage.session() as session:
        secret = feed_secret(db_session=session, key=runtime.settings.key("calendar-feed"), user_id=asker,
                             now=runtime.clock.now(), reset=reset)
    url = f"{runtime.settings.base_url}/ical/{secret}.ics"
    first = "Your new calendar feed (the old address no longer works)" if reset else "Your calendar feed"
    return (f"{first}: {url}\nIt lists your shifts; add `?rotation=NAME` for a whole rotation. Keep it to "
            "yourself: whoever has it sees the schedule. `/oncall ical reset` replaces it.")
