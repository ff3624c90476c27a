"""The `check` and `schedule` commands: rotation files validated, coverage and shifts printed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from bot.oncall.service import NOTHING, Adjustments
from bot.schedule import (
    Finding,
    FindingRun,
    Problem,
    Rotation,
    Shift,
    UnknownZone,
    coverage_findings,
    group_findings,
    holiday_findings,
    iso_utc,
    parse_instant,
    read_rotations,
    shifts_between,
    uncovered_findings,
    utc_now,
    utc_to_local,
)
from bot.schedule.people import people_on_no_rotation, read_people, with_time_off

MAX_DAYS = 3660  # ten years: beyond that a typo is likelier than a plan
_FROM_HELP = "ISO date (00:00 UTC) or ISO datetime with offset, e.g. 2026-03-08T09:00+01:00"


class BadInput(Exception):
    """A command-line value that cannot be used; the message is the one line to print."""


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add the `check` and `schedule` subcommands; each sets func(args) -> exit code."""
    check = subparsers.add_parser(
        "check",
        help="validate rotation files and report coverage gaps and overlaps",
        description="Validate rotation files (and people.toml) and report coverage gaps and "
        "overlaps in UTC (DST-induced ones included). Exit 1 on file errors; warnings, gaps "
        "and overlaps alone exit 0 unless --strict.",
    )
    check.add_argument("directory", nargs="?", metavar="DIR", help=_dir_help())
    check.add_argument("--from", dest="start", metavar="DATE", help=f"{_FROM_HELP}; default today")
    check.add_argument("--days", default="365", metavar="N", help="days to check (default 365)")
    check.add_argument("--json", action="store_true", help="one JSON finding per occurrence")
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings and unintended gaps or overlaps too")
    check.add_argument("--all", action="store_true", help="report gaps and overlaps a rotation intends too")
    check.set_defaults(func=run_check)

    schedule = subparsers.add_parser(
        "schedule",
        help="list a rotation's shifts",
        description="List who holds the pager for ROTATION, shift by shift.",
    )
    schedule.add_argument("rotation", metavar="ROTATION", help="rotation name")
    schedule.add_argument("--from", dest="start", metavar="DATE", help=f"{_FROM_HELP}; default now")
    schedule.add_argument("--days", default="7", metavar="N", help="days to list (default 7)")
    schedule.add_argument("--tz", metavar="ZONE", help="show times in this IANA zone (default UTC)")
    schedule.add_argument("--json", action="store_true", help="JSON list with ISO UTC times")
    schedule.add_argument("--dir", dest="directory", metavar="DIR", help=_dir_help())
    schedule.set_defaults(func=run_schedule)


def run_check(args: argparse.Namespace) -> int:
    """Validate rotation files and print coverage findings; the exit code `check` promises."""
    try:
        directory = _directory(args.directory)
        today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
        start = _start(args.start, default=today)
        end = _end(start, args.days)
    except BadInput as error:
        print(f"check: {error}", file=sys.stderr)
        return 2
    rotations, problems = read_rotations(directory)
    if not problems and not rotations:
        problems = [Problem(str(directory), "no rotation files (*.toml) here")]
    people, people_problems = read_people(directory)
    problems += people_problems + _template_problems()
    findings = [_error_finding(problem) for problem in problems]
    findings += [_error_finding(p, "warning") for p in people_on_no_rotation(people, rotations)]
    try:
        for rotation in rotations.values():
            findings.extend(_coverage(with_time_off(rotation, people), start, end, everything=args.all))
    except OverflowError:
        print(f"check: {_beyond_calendar(start, end)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([finding.to_json() for finding in findings], indent=2))
    else:
        print(_check_report(directory, rotations, findings, start, end))
    if problems:
        return 1
    return 1 if args.strict and any(f.kind in STRICT for f in findings) else 0


def run_schedule(args: argparse.Namespace) -> int:
    """Print a rotation's shifts as a table or JSON; the exit code `schedule` promises."""
    try:
        directory = _directory(args.directory)
        start = _start(args.start, default=utc_now())
        end = _end(start, args.days)
        zone = _zone(args.tz)
    except BadInput as error:
        print(f"schedule: {error}", file=sys.stderr)
        return 2
    rotations, problems = read_rotations(directory)
    people, people_problems = read_people(directory)
    problems += people_problems
    if problems:
        print(f"schedule: rotation files in {directory} have errors:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    rotation = rotations.get(args.rotation)
    if rotation is None:
        known = ", ".join(sorted(rotations)) or "none"
        print(
            f"schedule: no rotation {args.rotation!r} in {directory} (known: {known})",
            file=sys.stderr,
        )
        return 2
    rotation = with_time_off(rotation, people)
    try:
        found = _stored_adjustments(rotation)
    except StoredUnreadable as error:
        print(f"schedule: {error}", file=sys.stderr)
        return 2
    try:
        shifts = shifts_between(rotation, start, end, found.overrides, found.away)
        holidays = holiday_findings(rotation, start, end)
    except OverflowError:
        print(f"schedule: {_beyond_calendar(start, end)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([_shift_json(shift) for shift in shifts], indent=2))
    else:
        print(_schedule_table(rotation, shifts, start, end, zone, holidays))
    return 0


STRICT = ("warning", "gap", "overlap", "uncovered")  # what --strict fails on; holidays inform


def _coverage(rotation: Rotation, start: datetime, end: datetime, *, everything: bool) -> list[Finding]:
    """A rotation's findings over [start, end): gaps and overlaps it does not intend (all of them
    with everything), and its regions' public holidays."""
    kinds = {"gap": "gaps", "overlap": "overlaps"}
    return [
        finding for finding in coverage_findings(rotation, start, end)
        if everything or kinds[finding.kind] not in rotation.intended
    ] + uncovered_findings(rotation, start, end) + holiday_findings(rotation, start, end)


def _beyond_calendar(start: datetime, end: datetime) -> str:
    return (f"cannot compute shifts around {start.date().isoformat()} to {end.date().isoformat()}: "
            "dates must leave a few days' room within years 1 to 9999")


class StoredUnreadable(Exception):
    """DATABASE_URL is set but what it stores cannot be read; the message says why."""


def _stored_adjustments(rotation: Rotation) -> Adjustments:
    """What was changed in Slack (overrides, time off), read from DATABASE_URL when it is set,
    so that `schedule` answers as Slack does; nothing otherwise."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return NOTHING
    from sqlalchemy.exc import SQLAlchemyError

    from bot.oncall.service import adjustments
    from bot.storage import Storage

    storage = Storage(url)
    try:
        with storage.connect() as connection:
            return adjustments(db_session=connection, rotation=rotation)
    except SQLAlchemyError as error:
        reason = str(error.orig if getattr(error, "orig", None) else error).splitlines()[0]
        raise StoredUnreadable(f"cannot read the overrides and time off in DATABASE_URL ({reason}); "
                               "unset it to list the rotation file alone") from None
    finally:
        storage.dispose()


def _dir_help() -> str:
    """Help text for the rotations folder option."""
    return "folder of rotation files (default: $ROTATIONS_DIR or rotations)"


def _directory(given: str | None) -> Path:
    """The rotations folder: given, else $ROTATIONS_DIR, else rotations; BadInput if missing."""
    directory = Path(given or os.environ.get("ROTATIONS_DIR") or "rotations")
    if not directory.is_dir():
        raise BadInput(
            f"rotations folder {str(directory)!r} does not exist (pass DIR or set ROTATIONS_DIR)"
        )
    return directory


def _start(text: str | None, *, default: datetime) -> datetime:
    """--from as a UTC instant, or default."""
    if text is None:
        return default
    try:
        return parse_instant(text)
    except ValueError as error:
        raise BadInput(f"--from {error}") from None


def _end(start: datetime, days: str) -> datetime:
    """start plus --days; BadInput when that leaves the calendar."""
    try:
        return start + timedelta(days=_days(days))
    except OverflowError:
        raise BadInput(_beyond_calendar(start, start)) from None


def _days(text: str) -> int:
    """--days as a whole number from 1 to MAX_DAYS."""
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise BadInput(f"--days {text!r} must be a whole number from 1 to {MAX_DAYS}")
    return days


def _zone(name: str | None) -> str | None:
    """--tz as an IANA zone name, or None for UTC."""
    if name is None:
        return None
    try:
        utc_to_local(name, utc_now())
    except UnknownZone:
        raise BadInput(f"--tz {name!r} is not an IANA time zone (e.g. Europe/Dublin)") from None
    return name


def _template_problems() -> list[Problem]:
    """Postmortem template errors, when a templates folder is there to check."""
    folder = Path(os.environ.get("TEMPLATES_DIR") or "templates")
    if not folder.is_dir():
        return []
    from bot.postmortem_cli import validate_templates_command

    return [Problem(str(folder), message) for message in validate_templates_command(folder)]


def _error_finding(problem: Problem, kind: str = "error") -> Finding:
    """A problem in a file of the folder as an error (or warning) finding."""
    return Finding(Path(problem.path).stem, kind, None, None, str(problem))


def _check_report(
    directory: Path,
    rotations: dict[str, Rotation],
    findings: list[Finding],
    start: datetime,
    end: datetime,
) -> str:
    """The text report of `check`: errors, then each rotation's recurring findings, then totals."""
    days = (end - start).days
    span = f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC ({days} days)"
    lines = [f"Checked {directory} {span}"]
    errors = [f for f in findings if f.kind == "error"]
    if errors:
        lines += ["", f"{len(errors)} error(s):"]
        lines += [f"  {finding.message}" for finding in errors]
    warnings = [f for f in findings if f.kind == "warning"]
    if warnings:
        lines += ["", f"{len(warnings)} warning(s):"]
        lines += [f"  {finding.message}" for finding in warnings]
    runs = group_findings([f for f in findings if f.kind not in ("error", "warning")])
    for rotation in rotations.values():
        lines += ["", _rotation_heading(rotation)]
        mine = [run for run in runs if run.rotation == rotation.name]
        lines += [f"  {_run_line(run)}" for run in mine] or ["  covered around the clock"]
    gaps = sum(1 for f in findings if f.kind == "gap")
    overlaps = sum(1 for f in findings if f.kind == "overlap")
    warned = f"{len(warnings)} warning(s), " if warnings else ""
    totals = (
        f"{len(rotations)} rotation(s), {len(errors)} error(s), {warned}{gaps} gap(s) and "
        f"{overlaps} overlap(s) in {len(runs)} recurring pattern(s)"
    )
    lines += ["", totals]
    return "\n".join(lines)


def _rotation_heading(rotation: Rotation) -> str:
    """One line naming a rotation and its regions' local windows."""
    regions = "; ".join(
        f"{r.name} {r.hours_text} {r.timezone}" + ("" if len(r.days) == 7 else f" {r.days_text}")
        for r in rotation.regions
    )
    flag = ", default" if rotation.default else ""
    return f"{rotation.name} ({rotation.path}{flag}): {regions}"


def _run_line(run: FindingRun) -> str:
    """One run of a recurring gap or overlap, with its first and last date."""
    first, last = run.first, run.last
    length = first.end - first.start
    if length >= timedelta(days=1):
        when = f"{first.start:%a %H:%M}-{first.end:%a %H:%M} UTC"
    else:
        when = f"{first.start:%H:%M}-{first.end:%H:%M} UTC"
    if run.count == 1:
        dates = f"on {first.start:%Y-%m-%d}"
    else:
        every = {timedelta(days=1): "every day ", timedelta(days=7): "every week "}
        dates = (
            f"{every.get(run.every, '')}from {first.start:%Y-%m-%d} to "
            f"{last.start:%Y-%m-%d} ({run.count} times)"
        )
    return f"{run.rotation}: {run.kind} {when} {dates}: {first.message}"


def _shift_json(shift: Shift) -> dict[str, str | bool | None]:
    """A shift as `schedule --json` prints it; `override` and `covering_for` where they apply."""
    entry: dict[str, str | bool | None] = {
        "start": iso_utc(shift.start),
        "end": iso_utc(shift.end),
        "user": shift.user,
        "region": shift.region,
    }
    if shift.is_override:
        entry["override"] = True
    if shift.covering_for:
        entry["covering_for"] = shift.covering_for
    return entry


def _schedule_table(
    rotation: Rotation, shifts: list[Shift], start: datetime, end: datetime, zone: str | None,
    holidays: Sequence[Finding] = (),
) -> str:
    """The shifts as an aligned table, times in zone (UTC when None), then the public holidays."""
    rows = [("region", "who", "start", "end")]
    for shift in shifts:
        who = shift.user
        if shift.is_override:
            who += " (override)"
        if shift.covering_for:
            who += f" (covering for {shift.covering_for})"
        rows.append((shift.region, who, _clock(shift.start, zone), _clock(shift.end, zone)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    body = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3]
        for row in rows
    ]
    title = f"{rotation.name}: {_clock(start, zone)} to {_clock(end, zone)}"
    notes = [f"holiday: {finding.message}" for finding in holidays]
    return "\n".join([title, *body, *notes])


def _clock(when: datetime, zone: str | None) -> str:
    """when as "YYYY-MM-DD HH:MM ZONE" in zone, or in UTC."""
    if zone is None:
        return f"{when:%Y-%m-%d %H:%M} UTC"
    return utc_to_local(zone, when).strftime("%Y-%m-%d %H:%M %Z")
