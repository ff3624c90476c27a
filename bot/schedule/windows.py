"""Raw region windows: each region's scheduled hours on each local day, and whose turn it is."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import NamedTuple

import holidays as public_holidays

from bot.schedule.model import Rotation
from bot.schedule.zones import wall_clock_windows

ONE_DAY = timedelta(days=1)


class Window(NamedTuple):
    """One region's scheduled window on one local day, in UTC, with the member whose turn it is."""

    start: datetime
    end: datetime
    order: int  # the region's position in the rotation file (breaks ties)
    user: str


# Builds a Window from a tuple in C, skipping NamedTuple's Python-level __new__ (a hot path).
_new_window = tuple.__new__


def active_days_between(anchor: date, day: date, days: frozenset[int]) -> int:
    """How many dates in [anchor, day) fall on one of days; negative when day is before anchor."""
    weeks, rest = divmod((day - anchor).days, 7)
    first = anchor.weekday()
    return weeks * len(days) + sum(1 for i in range(rest) if (first + i) % 7 in days)


def region_windows(
    rotation: Rotation, order: int, *, first_day: date, last_day: date
) -> list[Window]:
    """Windows of the region at position order for local days first_day..last_day, in order.

    A window whose edges both fall in one spring-forward gap lasts no time and is left out, and
    so is a window on one of the region's public holidays; their days still use up a turn, so
    the member order never depends on clock changes or holidays.
    """
    region = rotation.regions[order]
    days, edges = day_spans(region.timezone, region.hours, region.days, first_day, last_day)
    members, count = region.members, len(region.members)
    unit, every = rotation.handoff_period
    turns: Sequence[int]
    if unit == "days":
        first = active_days_between(rotation.start, first_day, region.days)
        turns = range(first, first + len(days))
    else:
        # Whole weeks from the Monday of the anchor's week to the Monday of the window's week.
        monday = rotation.start.toordinal() - rotation.start.weekday()
        turns = [(day.toordinal() - monday) // 7 for day in days]
    off = holiday_dates(region.holidays, first_day.year, last_day.year) if region.holidays else frozenset()
    return [
        _new_window(Window, (start, end, order, members[(turn // every) % count]))
        for (start, end), turn, day in zip(edges, turns, days)
        if end > start and day not in off
    ]


def holiday_calendar(code: str, years: Sequence[int] = ()) -> public_holidays.HolidayBase:
    """The public holidays of a country ("IE") or of one of its subdivisions ("DE-BY");
    NotImplementedError when the holidays package does not know the code."""
    country, _, subdivision = code.partition("-")
    return public_holidays.country_holidays(country, subdiv=subdivision or None, years=years)


@lru_cache(maxsize=256)
def holiday_dates(code: str, first_year: int, last_year: int) -> frozenset[date]:
    """The public holidays of code from first_year to last_year (cached: years are reused)."""
    return frozenset(holiday_calendar(code, range(first_year, last_year + 1)))


@lru_cache(maxsize=512)  # a year of one region is ~60 kB; this bounds the cache to ~30 MB
def day_spans(
    zone: str, hours: tuple[time, time], days: frozenset[int], first_day: date, last_day: date
) -> tuple[tuple[date, ...], tuple[tuple[datetime, datetime], ...]]:
    """The active local days from first_day to last_day and the UTC edges of each one's window.

    Cached whole, since many rotations share a zone and hours and are expanded over the same year.
    """
    active = []
    day = first_day
    while day <= last_day:
        if day.weekday() in days:
            active.append(day)
        day += ONE_DAY
    return tuple(active), tuple(wall_clock_windows(zone, active, *hours))


def rotation_windows(rotation: Rotation, *, first_day: date, last_day: date) -> list[Window]:
    """Every region's windows for the local days, sorted so precedence rises along the list.

    Later start wins; at equal starts the region listed first in the file wins, so it sorts last
    (regions are added last-first and the sort by start is stable).
    """
    windows: list[Window] = []
    for order in reversed(range(len(rotation.regions))):
        windows.extend(region_windows(rotation, order, first_day=first_day, last_day=last_day))
    windows.sort(key=itemgetter(0))
    return windows


# Windows last at most 25 hours, so ten days back finds the window in progress at an instant
# whenever one began that recently; last_window_before looks further only when none did.
LOOKBACK = timedelta(days=10)
_FURTHEST = timedelta(days=3660)


def last_window_before(rotation: Rotation, instant: datetime) -> Window | None:
    """The window that began last at or before instant (the highest precedence at a tie),
    however long ago; None when there is none within ten years or before the calendar's start."""
    span = LOOKBACK
    while span <= _FURTHEST:
        span *= 2
        try:
            first_day = (instant - span).date()
        except OverflowError:  # before year 1: nothing earlier can exist
            first_day = date.min
        begun = [w for w in rotation_windows(rotation, first_day=first_day, last_day=instant.date())
                 if w.start <= instant]
        if begun:
            return begun[-1]
        if first_day == date.min:
            return None
    return None
