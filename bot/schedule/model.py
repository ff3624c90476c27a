"""Value objects of the on-call schedule: rotations, regions, overrides, shifts and findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from bot.schedule.zones import UTC, require_utc

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERY_DAY = frozenset(range(7))
FINDING_KINDS = ("error", "warning", "gap", "overlap", "uncovered", "holiday")
# What a rotation may declare intended, so that `check` stops reporting it.
INTENDED = ("gaps", "overlaps")


@dataclass(frozen=True)
class Region:
    """A region's local wall-clock window, the weekdays it runs and the members taking turns."""

    name: str
    timezone: str
    hours: tuple[time, time]
    days: frozenset[int]
    members: tuple[str, ...]
    holidays: str | None = None  # a country code ("IE", or "DE-BY" with a subdivision)

    @property
    def hours_text(self) -> str:
        """The window as written in a rotation file, e.g. "22:00-06:00"."""
        start, end = self.hours
        return f"{start:%H:%M}-{end:%H:%M}"

    @property
    def days_text(self) -> str:
        """The weekdays as a comma-separated list of short names."""
        return ",".join(WEEKDAY_NAMES[d] for d in sorted(self.days))


@dataclass(frozen=True)
class Override:
    """Someone holding the pager over [start, end) in place of whoever is scheduled."""

    user: str
    start: datetime
    end: datetime
    reason: str = ""
    id: str | None = None

    def __post_init__(self) -> None:
        # Frozen, so normalise through object.__setattr__: callers may pass any aware zone.
        object.__setattr__(self, "start", require_utc(self.start, name="override start"))
        object.__setattr__(self, "end", require_utc(self.end, name="override end"))
        if self.end <= self.start:
            raise ValueError(f"override for {self.user} ends before it starts")


@dataclass(frozen=True)
class Away:
    """A person away over [start, end), in UTC: the next member of their region covers. id:
    the number of a period set in Slack (`/oncall away remove ID`); None for the people file's."""

    start: datetime
    end: datetime
    id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_utc(self.start, name="away start"))
        object.__setattr__(self, "end", require_utc(self.end, name="away end"))
        if self.end <= self.start:
            raise ValueError("an away period must end after it starts")

    def covers(self, at: datetime) -> bool:
        """True when at falls in [start, end)."""
        return self.start <= at < self.end

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """True when [start, end) and this period share an instant."""
        return self.start < end and start < self.end


@dataclass(frozen=True, kw_only=True)
class Rotation:
    """A rotation file, validated: who takes turns where, and how the day is split."""

    name: str
    description: str = ""
    start: date
    handoff: str = "weekly"  # "daily", "weekly", "every N days" or "every N weeks"
    channel: str | None = None
    usergroup: str | None = None
    escalation_minutes: int | None = None
    escalate_to: str | None = None
    escalation_repeat: int = 0  # walks of the whole chain after the first, when nobody acknowledges
    default: bool = False
    regions: tuple[Region, ...]
    overrides: tuple[Override, ...] = ()
    intended: frozenset[str] = frozenset()  # of INTENDED: what `check` does not report
    admins: tuple[str, ...] = ()  # Slack user IDs who may swap shifts for others
    runbook: str | None = None  # an http(s) address, bookmarked in its incidents' channels
    # Members' time off from the people file, by member: (member, periods) pairs.
    time_off: tuple[tuple[str, tuple[Away, ...]], ...] = ()
    path: str | None = None

    @property
    def handoff_period(self) -> tuple[str, int]:
        """("days", n): a turn lasts n of a region's active days; ("weeks", n): n ISO weeks."""
        return handoff_period(self.handoff)

    @property
    def members(self) -> tuple[str, ...]:
        """Every member of every region, once each, in file order."""
        return tuple(dict.fromkeys(m for region in self.regions for m in region.members))

    def region(self, name: str) -> Region:
        """The region called name; KeyError when there is none."""
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(name)


def handoff_period(handoff: str) -> tuple[str, int]:
    """The unit and count of a handoff as rotation files write it (any case); ValueError if bad."""
    words = handoff.lower().split()
    if words == ["daily"]:
        return "days", 1
    if words == ["weekly"]:
        return "weeks", 1
    if len(words) == 3 and words[0] == "every" and words[1].isdigit() and words[2] in ("day", "days", "week", "weeks"):
        count = int(words[1])
        if 1 <= count <= 366:
            return ("days" if words[2].startswith("day") else "weeks"), count
    raise ValueError(
        f"{handoff!r} is not a handoff; use \"daily\", \"weekly\", \"every N days\" or \"every N weeks\""
    )


class Shift(NamedTuple):
    """One person holding the pager for a rotation over [start, end), in UTC.

    A NamedTuple rather than a frozen dataclass: a year of shifts is built per rotation, and a
    tuple is built four times faster.
    """

    rotation: str
    region: str
    user: str
    start: datetime
    end: datetime
    is_override: bool = False
    covering_for: str | None = None  # the member away whose turn this is

    @property
    def duration(self) -> timedelta:
        """How long the shift lasts in real (elapsed) time."""
        return self.end - self.start

    def covers(self, at: datetime) -> bool:
        """True when at falls in [start, end)."""
        return self.start <= at < self.end


@dataclass(frozen=True)
class Finding:
    """A problem found by `check`: a file error, or one occurrence of a gap or overlap in UTC."""

    rotation: str
    kind: str
    start: datetime | None
    end: datetime | None
    message: str
    regions: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, str | None]:
        """The finding as the JSON object `check --json` prints."""
        return {
            "rotation": self.rotation,
            "kind": self.kind,
            "start": iso_utc(self.start),
            "end": iso_utc(self.end),
            "message": self.message,
        }


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a rotation file, located as precisely as the file allows."""

    path: str
    message: str
    field: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class RotationError(ValueError):
    """Rotation files that cannot be used; the message lists every problem, one per line."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def iso_utc(when: datetime | None) -> str | None:
    """ISO-8601 text of a UTC instant with a trailing Z, or None."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
