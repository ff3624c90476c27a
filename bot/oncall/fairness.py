"""How the on-call load was spread: per rotation and person, time on call, the part of it
outside their own working day, on weekends and on public holidays, and pages received.
Pure: shifts and pages in, rows out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from bot.schedule import Rotation, Shift, local_to_utc, utc_to_local
from bot.schedule.windows import holiday_dates

WORK_HOURS = (time(9), time(18))
WORK_DAYS = frozenset(range(5))  # Monday to Friday


@dataclass(frozen=True)
class WorkingDay:
    """A person's own working day: their zone, hours and weekdays (SPEC: 09:00-18:00
    Monday to Friday unless the people file says otherwise)."""

    zone: str = "UTC"
    hours: tuple[time, time] = WORK_HOURS
    days: frozenset[int] = WORK_DAYS


@dataclass
class Load:
    """One person's load on one rotation over the period."""

    rotation: str
    person: str
    zone: str
    on_call: timedelta = timedelta(0)
    outside_working_day: timedelta = timedelta(0)
    weekend: timedelta = timedelta(0)
    holidays: set[date] = field(default_factory=set)
    pages: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "rotation": self.rotation, "person": self.person, "time_zone": self.zone,
            "hours_on_call": _hours(self.on_call), "hours_outside_working_day": _hours(self.outside_working_day),
            "weekend_hours": _hours(self.weekend), "public_holidays_worked": len(self.holidays),
            "pages": self.pages,
        }


def load_of(
    rotation: Rotation, shifts: Iterable[Shift], pages: Iterable[str], working_days: Mapping[str, WorkingDay],
) -> list[Load]:
    """Each person's load on the rotation from its effective shifts and the users its pages
    went to; a person's public holidays are those of the region(s) they are a member of."""
    loads: dict[str, Load] = {}

    def load(person: str) -> Load:
        if person not in loads:
            loads[person] = Load(rotation.name, person, working_days.get(person, WorkingDay()).zone)
        return loads[person]

    calendars = _holiday_codes(rotation)
    for shift in shifts:
        day = working_days.get(shift.user, WorkingDay())
        entry = load(shift.user)
        entry.on_call += shift.end - shift.start
        entry.outside_working_day += (shift.end - shift.start) - _overlap(shift, _working(day, shift))
        entry.weekend += _overlap(shift, _local_days(day.zone, shift, lambda d: d.weekday() >= 5))
        for code in calendars.get(shift.user, ()):
            entry.holidays |= _holidays_held(day.zone, shift, code)
    for user in pages:
        load(user).pages += 1
    return sorted(loads.values(), key=lambda entry: (-entry.on_call, entry.person))


def _holiday_codes(rotation: Rotation) -> dict[str, set[str]]:
    """Each member's countries' holiday codes, from the regions they belong to."""
    codes: dict[str, set[str]] = defaultdict(set)
    for region in rotation.regions:
        if region.holidays:
            for member in region.members:
                codes[member].add(region.holidays)
    return codes


def _dates(zone: str, shift: Shift) -> list[date]:
    """The local dates a shift touches, with a day either side for windows crossing midnight."""
    first = utc_to_local(zone, shift.start).date() - timedelta(days=1)
    last = utc_to_local(zone, shift.end).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _span(zone: str, day: date, start: time, end: time) -> tuple[datetime, datetime]:
    """A local wall-clock span on day as UTC instants (an end at or before start is the next day)."""
    ends_on = day + timedelta(days=1) if end <= start else day
    return (local_to_utc(zone, datetime.combine(day, start)), local_to_utc(zone, datetime.combine(ends_on, end)))


def _working(day: WorkingDay, shift: Shift) -> list[tuple[datetime, datetime]]:
    return [_span(day.zone, d, *day.hours) for d in _dates(day.zone, shift) if d.weekday() in day.days]


def _local_days(zone: str, shift: Shift, keep: Callable[[date], bool]) -> list[tuple[datetime, datetime]]:
    return [_span(zone, d, time(0), time(0)) for d in _dates(zone, shift) if keep(d)]


def _holidays_held(zone: str, shift: Shift, code: str) -> set[date]:
    dates = _dates(zone, shift)
    off = holiday_dates(code, dates[0].year, dates[-1].year)
    return {d for d in dates if d in off and _overlap(shift, [_span(zone, d, time(0), time(0))])}


def _overlap(shift: Shift, spans: list[tuple[datetime, datetime]]) -> timedelta:
    """How much of the shift falls inside the (disjoint) spans."""
    return sum((max(timedelta(0), min(shift.end, end) - max(shift.start, start)) for start, end in spans),
               timedelta(0))


def _hours(length: timedelta) -> float:
    return round(length.total_seconds() / 3600, 2)
