"""`report --oncall`: the fairness report, per rotation and person, from the database and the
rotation files (what was changed in Slack included)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime

from sqlmodel import Session, col, select

from bot.models import Page, UserProfile
from bot.oncall import service as oncall
from bot.oncall.fairness import Load, WorkingDay, load_of
from bot.schedule import Rotation, RotationError, load_rotations, shifts_between
from bot.schedule.people import Person, load_people, with_time_off
from bot.storage import Storage

NUMBERS = ("hours_on_call", "hours_outside_working_day", "weekend_hours", "public_holidays_worked", "pages")


def oncall_loads(*, db_session: Session, rotations: Mapping[str, Rotation], since: datetime, until: datetime,
                 people: Mapping[str, Person]) -> list[Load]:
    """Every rotation's load over [since, until); each person's working day from the people
    file, their zone from it, else their cached Slack profile, else UTC."""
    profiles = {p.user_id: p.tz for p in db_session.exec(select(UserProfile)) if p.tz}
    loads: list[Load] = []
    for rotation in sorted(rotations.values(), key=lambda r: r.name):
        found = oncall.adjustments(db_session=db_session, rotation=rotation)
        shifts = shifts_between(rotation, since, until, found.overrides, found.away)  # clipped to the period
        holders = {s.user for s in shifts}
        paged = list(db_session.exec(select(Page.user).where(
            Page.rotation == rotation.name, col(Page.paged_at) >= since, col(Page.paged_at) < until)))
        days = {user: working_day(people.get(user), profiles.get(user, "UTC")) for user in holders | set(paged)}
        loads += load_of(rotation, shifts, paged, days)
    return loads


def working_day(person: Person | None, profile_zone: str) -> WorkingDay:
    """A person's working day: the people file's hours, days and zone where it says them."""
    if person is None:
        return WorkingDay(zone=profile_zone)
    return WorkingDay(person.timezone or profile_zone, person.working_hours, person.working_days)


def format_loads(loads: list[Load], since: datetime, until: datetime) -> str:
    """The text report: one row per rotation and person."""
    header = ("Rotation", "Person", "Time zone", "On call (h)", "Outside working day (h)", "Weekend (h)",
              "Holidays", "Pages")
    rows = [(e.rotation, e.person, e.zone, *(f"{e.as_json()[key]:g}" for key in NUMBERS)) for e in loads]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [f"On-call load from {since:%Y-%m-%d %H:%M} UTC to {until:%Y-%m-%d %H:%M} UTC", ""]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in (header, *rows)]
    lines += ["", "Working day: 09:00-18:00 Monday to Friday in the person's own time zone unless the",
              "people file says otherwise; holidays are the public holidays of their region."]
    return "\n".join(lines) + "\n"


def run_oncall_report(storage: Storage, rotations_dir: str, since: datetime, until: datetime, as_json: bool) -> int:
    """Print the fairness report; one line and exit 2 when the rotation files cannot be read."""
    try:
        people = load_people(rotations_dir)
        rotations = {name: with_time_off(r, people) for name, r in load_rotations(rotations_dir).items()}
    except RotationError as error:
        print(f"report: rotation files in {rotations_dir} have errors: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    with storage.read() as session:
        loads = oncall_loads(db_session=session, rotations=rotations, since=since, until=until, people=people)
    if as_json:
        print(json.dumps([entry.as_json() for entry in loads], indent=2))
    else:
        sys.stdout.write(format_loads(loads, since, until))
    return 0
