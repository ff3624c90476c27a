"""The one place that converts between local wall-clock time and UTC.

Everything else in the schedule computes in UTC. Local times live here only as naive wall-clock
values, turned into UTC instants with pytz's ``localize`` (never ``tzinfo=`` with a pytz zone,
never a timedelta added to an aware local time).
"""

from __future__ import annotations

import difflib
from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache

import pytz

# A local day spans at most UTC [day - 14h, day + 1 day + 12h]; a clock change anywhere in
# [day - 16h, day + 40h] sends that day's conversions through pytz's localize.
_BEFORE_DAY, _AFTER_DAY = timedelta(hours=-16), timedelta(hours=40)
_PROBE_EVERY = timedelta(days=3)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_DAY = timedelta(days=1)
_UTC_MIDNIGHT = time(0, tzinfo=UTC)  # datetime.combine(day, this) is the fast way to a UTC midnight


class UnknownZone(ValueError):
    """A time-zone name that is not in the IANA database."""


@cache
def get_zone(name: str) -> pytz.BaseTzInfo:
    """The pytz zone called name (case-insensitive); UnknownZone when there is none."""
    try:
        return pytz.timezone(name)
    except (pytz.UnknownTimeZoneError, AttributeError, TypeError, ValueError):
        raise UnknownZone(name) from None


def canonical_zone(name: str) -> str:
    """The IANA spelling of a zone name; UnknownZone when there is none."""
    zone = get_zone(name).zone
    if zone is None:  # never for pytz.timezone's zones; the stubs allow it for FixedOffset
        raise UnknownZone(name)
    return zone


def suggest_zone(name: str) -> str | None:
    """The closest IANA zone name to a misspelt one, if any is close."""
    matches = difflib.get_close_matches(name, pytz.all_timezones, n=1, cutoff=0.75)
    return matches[0] if matches else None


def require_utc(when: datetime, *, name: str = "datetime") -> datetime:
    """when as a UTC datetime; ValueError when it is naive (a time without a zone is a guess)."""
    if not isinstance(when, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.tzinfo.utcoffset(when) is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {when.isoformat()}")
    return when.astimezone(UTC)


def utc_now() -> datetime:
    """The current instant, in UTC."""
    return datetime.now(UTC)


def local_to_utc(zone: str, wall: datetime) -> datetime:
    """The UTC instant at which clocks in zone show the naive wall time.

    A wall time skipped by a spring-forward change maps to the moment of the change; a wall
    time that happens twice at a fall-back change maps to its first occurrence.
    """
    offset = _steady_offset(zone, wall.date())
    if offset is not None:
        return (wall - offset).replace(tzinfo=UTC)
    return _localize_exactly(zone, wall)


def wall_clock_windows(
    zone: str, days: list[date], start: time, end: time
) -> list[tuple[datetime, datetime]]:
    """The UTC (start, end) of the local window start-end beginning on each of days.

    An end at or before start falls on the next day (equal means 24 hours). Edges follow
    local_to_utc; days in a month without clock changes share one offset, which keeps a year
    of windows cheap.
    """
    crosses = end <= start
    start_clock = timedelta(hours=start.hour, minutes=start.minute, seconds=start.second)
    end_clock = timedelta(hours=end.hour, minutes=end.minute, seconds=end.second)
    end_clock += _ONE_DAY if crosses else timedelta(0)
    spans = []
    month = year = None
    changes: list[datetime] = []
    offsets: list[timedelta] = []
    start_shift = end_shift = timedelta(0)
    for day in days:
        if day.month != month or day.year != year:
            year, month = day.year, day.month
            changes, offsets = _offset_changes(zone, year, month)
            start_shift, end_shift = start_clock - offsets[0], end_clock - offsets[0]
        if not changes:
            midnight = datetime.combine(day, _UTC_MIDNIGHT)
            spans.append((midnight + start_shift, midnight + end_shift))
            continue
        end_day = day + _ONE_DAY if crosses else day
        offset = _offset_if_steady(changes, offsets, day, end_day)
        if offset is None:
            spans.append(
                (
                    _localize_exactly(zone, datetime.combine(day, start)),
                    _localize_exactly(zone, datetime.combine(end_day, end)),
                )
            )
        else:
            spans.append(
                (
                    datetime.combine(day, start, tzinfo=UTC) - offset,
                    datetime.combine(end_day, end, tzinfo=UTC) - offset,
                )
            )
    return spans


def utc_to_local(zone: str, when: datetime) -> datetime:
    """when as an aware local time in zone, for display and for finding local dates."""
    return require_utc(when).astimezone(get_zone(zone))


def parse_instant(text: str) -> datetime:
    """Parse an ISO date (00:00 UTC) or an ISO datetime with offset into UTC; ValueError if not."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO date (2026-03-08) or datetime with offset "
            "(2026-03-08T09:00+01:00)"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; write e.g. {text}Z or {text}+01:00")
    return when.astimezone(UTC)


@lru_cache(maxsize=1 << 16)
def _steady_offset(zone: str, day: date) -> timedelta | None:
    """zone's UTC offset on local day when no clock change comes near it, else None."""
    return _offset_if_steady(*_offset_changes(zone, day.year, day.month), day, day)


def _offset_if_steady(
    changes: list[datetime], offsets: list[timedelta], day: date, last_day: date
) -> timedelta | None:
    """The one offset in force around local days day..last_day, or None if a change is near."""
    if not changes:
        return offsets[0]
    low = bisect_right(changes, datetime.combine(day, _UTC_MIDNIGHT) + _BEFORE_DAY)
    high = bisect_right(changes, datetime.combine(last_day, _UTC_MIDNIGHT) + _AFTER_DAY)
    return offsets[low] if low == high else None


@lru_cache(maxsize=4096)
def _offset_changes(zone: str, year: int, month: int) -> tuple[list[datetime], list[timedelta]]:
    """The UTC instants at which zone's offset changes from two days before the month to at least
    three days after it, and the offsets before, between and after them.

    Looks at zone's offset every three days (on a grid from the epoch, so neighbouring months
    share their looks) and bisects each change to the second. Since 1970 tzdata has no two
    changes less than a week apart that cancel out (the closest: Brazil, October 2000), so equal
    offsets three days apart mean no change between them.
    """
    first = datetime(year, month, 1, tzinfo=UTC) - timedelta(days=2)
    probe = (first - _EPOCH) // _PROBE_EVERY
    changes: list[datetime] = []
    offsets = [_probed_offset(zone, probe)]
    for step in range(probe, probe + 13):
        if _probed_offset(zone, step + 1) != offsets[-1]:
            found, after = _probed_changes(zone, step)
            changes.extend(found)
            offsets.extend(after)
    return changes, offsets


@lru_cache(maxsize=1 << 16)
def _probed_offset(zone: str, probe: int) -> timedelta:
    """zone's UTC offset at the probe-th instant of the three-day grid from the epoch."""
    return _utc_offset(_EPOCH + _PROBE_EVERY * probe, get_zone(zone))


@lru_cache(maxsize=1 << 12)
def _probed_changes(zone: str, probe: int) -> tuple[list[datetime], list[timedelta]]:
    """The clock changes in (probe, probe + 1] of the grid, and the offset after each."""
    tz = get_zone(zone)
    low, high = _EPOCH + _PROBE_EVERY * probe, _EPOCH + _PROBE_EVERY * (probe + 1)
    changes: list[datetime] = []
    offsets = [_probed_offset(zone, probe)]
    target = _probed_offset(zone, probe + 1)
    while offsets[-1] != target:  # a loop, in case two changes fall between probes
        low = _clock_change_near(tz, low, high)
        changes.append(low)
        offsets.append(_utc_offset(low, tz))
    return changes, offsets[1:]


@lru_cache(maxsize=1 << 14)
def _localize_exactly(zone: str, wall: datetime) -> datetime:
    """local_to_utc for days with a clock change, through pytz's localize."""
    tz = get_zone(zone)
    try:
        return tz.localize(wall, is_dst=None).astimezone(UTC)
    except pytz.AmbiguousTimeError:
        # Not is_dst=True: Europe/Dublin's winter time is the "DST" one in tzdata.
        return min(_both_readings(tz, wall))
    except pytz.NonExistentTimeError:
        return _clock_change_near(tz, *sorted(_both_readings(tz, wall)))


def _both_readings(tz: pytz.BaseTzInfo, wall: datetime) -> list[datetime]:
    """The UTC instants wall would be under the offsets before and after a clock change."""
    return [tz.localize(wall, is_dst=flag).astimezone(UTC) for flag in (True, False)]


def _utc_offset(when: datetime, tz: pytz.BaseTzInfo) -> timedelta:
    """tz's UTC offset at the aware instant when (a pytz zone always has one)."""
    offset = when.astimezone(tz).utcoffset()
    if offset is None:
        raise ValueError(f"{tz} has no UTC offset at {when.isoformat()}")
    return offset


def _clock_change_near(tz: pytz.BaseTzInfo, before: datetime, after: datetime) -> datetime:
    """The UTC instant in (before, after] at which tz's offset changes (found by bisection)."""
    first_offset = before.astimezone(tz).utcoffset()
    low, high = 0, int((after - before).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        if (before + timedelta(seconds=middle)).astimezone(tz).utcoffset() == first_offset:
            low = middle
        else:
            high = middle
    return before + timedelta(seconds=high)
