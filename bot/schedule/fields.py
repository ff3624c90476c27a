"""Parsing single rotation-file values (hours, days, dates, instants) and finding their lines."""

from __future__ import annotations

import re
from datetime import date, datetime, time

from bot.schedule.model import EVERY_DAY, WEEKDAY_NAMES
from bot.schedule.zones import UTC

_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_HOURS_HELP = (
    'use "HH:MM-HH:MM" in 24-hour local time, e.g. "09:00-17:00" ("22:00-06:00" crosses midnight)'
)
_DAYS_HELP = (
    'use day names or ranges, e.g. "mon-fri", "mon,wed,fri", "sat-sun" (default: every day)'
)
_DAY_ALIASES = {name: i for i, name in enumerate(WEEKDAY_NAMES)} | {
    full: i
    for i, full in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}
_TABLE_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]")
_SECTION_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")


def parse_hours(value: object) -> tuple[time, time]:
    """Parse "HH:MM-HH:MM" (end "24:00" allowed) into local start and end; ValueError if bad."""
    match = _HOURS.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a window; {_HOURS_HELP}")
    sh, sm, eh, em = (int(part) for part in match.groups())
    if eh == 24 and em == 0:
        eh = 0  # "16:00-24:00" ends at the next midnight
    if not (sh < 24 and sm < 60 and eh < 24 and em < 60):
        raise ValueError(f"{value!r} has an impossible time; {_HOURS_HELP}")
    return time(sh, sm), time(eh, em)


def parse_days(value: object) -> frozenset[int]:
    """Parse "mon-fri", "mon,wed,fri", "fri-mon" or a list of names into weekday numbers."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        value = ",".join(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a set of days; {_DAYS_HELP}")
    if value.strip().lower() in ("daily", "every day", "all"):
        return EVERY_DAY
    days: set[int] = set()
    for part in value.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in _DAY_ALIASES or (last and last not in _DAY_ALIASES):
            raise ValueError(f"{value!r}: unknown day {part!r}; {_DAYS_HELP}")
        low = _DAY_ALIASES[first]
        high = _DAY_ALIASES[last] if last else low
        # A range may wrap past Sunday: "fri-mon" is Friday to Monday.
        days.update((low + i) % 7 for i in range((high - low) % 7 + 1))
    return frozenset(days)


def parse_anchor_date(value: object) -> date:
    """A TOML date (or ISO date text) for `start`; ValueError otherwise."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    elif isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError(f"{show(value)} is not a date; write a TOML date like 2026-01-05 (no quotes)")


def parse_offset_datetime(value: object) -> datetime:
    """A TOML offset datetime (or ISO text with offset) as UTC; ValueError otherwise."""
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            when = None
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(
            f"{show(value)} is not a datetime with a UTC offset; write e.g. 2026-03-08T09:00:00+01:00"
        )
    return when.astimezone(UTC)


def show(value: object) -> str:
    """A value as it would look in the file, for error messages."""
    if isinstance(value, (date, time)):
        return value.isoformat()
    return repr(value)


def find_line(
    lines: list[str], key: str | None, *, table: str | None = None, index: int = 0
) -> int | None:
    """The 1-based line of key in the index-th [[table]] (top level when table is None).

    With key None, the line of the [[table]] header itself. None when it cannot be found (for
    instance inline tables), so messages still name the field.
    """
    current: tuple[str | None, int] = (None, 0)
    seen: dict[str, int] = {}
    key_pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
    for number, line in enumerate(lines, start=1):
        header = _TABLE_HEADER.match(line)
        if header:
            name = header.group(1)
            seen[name] = seen.get(name, -1) + 1
            current = (name, seen[name])
            if key is None and current == (table, index):
                return number
            continue
        section = _SECTION_HEADER.match(line)
        if section:
            current = (section.group(1), -1)
            continue
        if key_pattern and current == (table, index if table else 0) and key_pattern.match(line):
            return number
    return None
