"""The on-call engine: rotation files in, shifts, handoffs and coverage findings out.

Pure functions over value objects: no Slack, no database, nothing else from `bot`. Every
datetime in and out is timezone-aware UTC; local time exists only inside `zones`.
"""

from bot.schedule.coverage import (
    FindingRun,
    coverage_findings,
    group_findings,
    holiday_findings,
    uncovered_findings,
)
from bot.schedule.engine import (
    Timeline,
    build_timeline,
    cover_time_off,
    handoff_instants,
    next_shifts_for,
    scheduled_windows,
    shifts_between,
    who_is_on_call,
)
from bot.schedule.model import (
    Away,
    Finding,
    Override,
    Problem,
    Region,
    Rotation,
    RotationError,
    Shift,
    iso_utc,
)
from bot.schedule.parse import default_rotation, load_rotations, parse_rotation, read_rotations
from bot.schedule.zones import UnknownZone, local_to_utc, parse_instant, utc_now, utc_to_local

__all__ = [
    "Finding",
    "FindingRun",
    "Override",
    "Problem",
    "Region",
    "Rotation",
    "RotationError",
    "Shift",
    "Away",
    "Timeline",
    "UnknownZone",
    "build_timeline",
    "cover_time_off",
    "coverage_findings",
    "default_rotation",
    "group_findings",
    "holiday_findings",
    "uncovered_findings",
    "handoff_instants",
    "iso_utc",
    "load_rotations",
    "local_to_utc",
    "next_shifts_for",
    "parse_instant",
    "parse_rotation",
    "read_rotations",
    "scheduled_windows",
    "shifts_between",
    "utc_now",
    "utc_to_local",
    "who_is_on_call",
]
