"""The words of `/oncall away`: ISO dates or times, whole days in the asker's time zone, and a
zone name after END. Pure; `bot.slack.commands` hands the verb here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bot.schedule.zones import UnknownZone, canonical_zone, local_to_utc, suggest_zone
from bot.slack.incident_parsing import UsageError
from bot.text import excerpt, number

AWAY_FORM = (
    "`/oncall away START END [ZONE]` (ISO dates or times such as 2026-12-24 or "
    "2026-12-24T09:00, in your time zone unless an offset or ZONE is given; an END date is "
    "included), `/oncall away` or `/oncall away remove ID`"
)


@dataclass(frozen=True)
class AddAway:
    """`/oncall away START END [ZONE]`: each edge a date (a whole local day) or a datetime,
    naive ones in zone, else in the asker's zone."""

    start: date | datetime
    end: date | datetime
    zone: str | None = None

    def span(self, asker_zone: str) -> tuple[datetime, datetime]:
        """The period as UTC [start, end): a START date from that day's local midnight, an END
        date to the next day's (the END day is included); an edge with an offset as given."""
        zone = self.zone or asker_zone
        return _utc(self.start, zone), _utc(self.end, zone, day_end=True)


@dataclass(frozen=True)
class RemoveAway:
    away_id: int


@dataclass(frozen=True)
class ListAway:
    pass


def _fail(problem: str) -> UsageError:
    return UsageError(f"{problem}. Use {AWAY_FORM}.")


def _utc(when: date | datetime, zone: str, *, day_end: bool = False) -> datetime:
    """A date or datetime of an away period in UTC (see AddAway.span)."""
    if isinstance(when, datetime):
        if when.tzinfo is not None:
            return when.astimezone(UTC)
        return local_to_utc(zone, when)
    day = when + timedelta(days=1) if day_end else when
    return local_to_utc(zone, datetime.combine(day, time()))


def parse_away_time(token: str) -> date | datetime:
    """An ISO date (2026-12-24) or datetime (2026-12-24T09:00, with or without an offset)."""
    when: date | None = None
    try:
        if "T" not in token.upper() and ":" not in token:
            when = date.fromisoformat(token)
        else:
            when = datetime.fromisoformat(token.upper() if token[-1:] in "zZ" else token)
    except ValueError:
        pass
    # Years far out would overflow converting to UTC; none is meant.
    if when is None or not 1970 <= when.year <= 9000:
        raise _fail(
            f"`{excerpt(token)}` is not a date or time; write e.g. 2026-12-24 (a whole day), "
            "2026-12-24T09:00 or 2026-12-24T09:00+08:00"
        )
    return when


def parse_away(words: list[str]) -> AddAway | RemoveAway | ListAway:
    """The words after `/oncall away`."""
    if not words:
        return ListAway()
    if words[0].lower() == "remove":
        away_id = number(words[1]) if len(words) == 2 else None
        if away_id is None:
            raise _fail("Say which away period to remove by its number")
        return RemoveAway(away_id)
    zone = None
    if len(words) > 1 and _looks_like_zone(words[-1]):
        zone = _zone_word(words.pop())
    if len(words) == 1:
        day = parse_away_time(words[0])
        if isinstance(day, datetime):
            raise _fail("Say when it ends too")
        return AddAway(day, day, zone)
    if len(words) != 2:
        raise _fail("Time away needs a start and an end")
    return AddAway(parse_away_time(words[0]), parse_away_time(words[1]), zone)


def _looks_like_zone(word: str) -> bool:
    """True for a word meant as a zone name ("Asia/Singapore", "UTC"), not as a time."""
    if "/" in word:
        return True
    try:
        canonical_zone(word)
    except UnknownZone:
        return False
    return True


def _zone_word(word: str) -> str:
    """A time-zone name typed after END, in its IANA spelling."""
    try:
        return canonical_zone(word)
    except UnknownZone:
        close = suggest_zone(word)
        hint = f" (did you mean {close}?)" if close else ""
        raise _fail(f"`{excerpt(word)}` is not a time zone{hint}") from None
