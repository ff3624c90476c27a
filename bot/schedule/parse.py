"""Loading rotation files: TOML in, validated Rotation out, every problem named precisely."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.schedule import fields
from bot.schedule.model import (
    EVERY_DAY,
    INTENDED,
    Override,
    Problem,
    Region,
    Rotation,
    RotationError,
    handoff_period,
)
from bot.schedule.windows import holiday_calendar
from bot.schedule.zones import UnknownZone, canonical_zone, suggest_zone

TOP_KEYS = (
    "name",
    "description",
    "start",
    "handoff",
    "channel",
    "usergroup",
    "escalation_minutes",
    "escalate_to",
    "escalation_repeat",
    "default",
    "regions",
    "overrides",
    "intended",
    "admins",
    "runbook",
)
REGION_KEYS = ("name", "timezone", "hours", "days", "members", "holidays")
OVERRIDE_KEYS = ("user", "start", "end", "reason", "id")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NAME_HELP = "use letters, digits, '-', '_' or '.' (it is typed in /oncall NAME)"
_TOML_LINE = re.compile(r"\(at line (\d+)")
PEOPLE_FILE = "people.toml"  # the people file (bot.schedule.people), never a rotation


class _Invalid(Exception):
    """A value that failed validation; the message says what is allowed."""


@dataclass(frozen=True)
class _Scope:
    """Where values are read: the top level of the file, or its index-th [[table]]."""

    table: str | None = None
    index: int = 0

    def field(self, key: str) -> str:
        """The field's name in messages, e.g. "regions[1].hours"."""
        return key if self.table is None else f"{self.table}[{self.index}].{key}"


_TOP = _Scope()


class _FileReader:
    """Validates one parsed rotation file, collecting every problem with its line."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.problems: list[Problem] = []

    def problem(self, scope: _Scope, key: str, message: str, *, present: bool = True) -> None:
        """Record a problem with key in scope, at the key's line (or the table's when absent)."""
        line = None
        if present:
            line = fields.find_line(self.lines, key, table=scope.table, index=scope.index)
        if line is None and scope.table is not None:
            line = fields.find_line(self.lines, None, table=scope.table, index=scope.index)
        self.problems.append(Problem(self.path, message, scope.field(key), line))

    def check_keys(self, scope: _Scope, data: dict[str, Any], allowed: tuple[str, ...]) -> None:
        """Report every key of data that is not allowed, suggesting the closest allowed one."""
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.problem(scope, key, f"unknown key; {hint}allowed: {', '.join(allowed)}")

    def value(
        self,
        scope: _Scope,
        data: dict[str, Any],
        key: str,
        convert: Callable[[Any], Any],
        default: Any = ...,
    ) -> Any:
        """data[key] converted; default when absent (a problem when there is none); None if bad."""
        if key not in data:
            if default is ...:
                self.problem(scope, key, "missing; this field is required", present=False)
                return None
            return default
        try:
            return convert(data[key])
        except (_Invalid, ValueError) as error:
            self.problem(scope, key, str(error))
            return None


def parse_rotation(text: str, path: str) -> Rotation:
    """Parse and validate one rotation file's text; RotationError lists every problem in it."""
    rotation, problems = _read(text, path)
    if problems or rotation is None:
        raise RotationError(problems)
    return rotation


def read_rotations(directory: str | os.PathLike) -> tuple[dict[str, Rotation], list[Problem]]:
    """Every valid rotation in directory's *.toml files (people.toml, the people file, is not
    one) by name, and every problem found."""
    folder = Path(directory)
    if not folder.is_dir():
        return {}, [Problem(str(folder), "not a directory of rotation files")]
    rotations: dict[str, Rotation] = {}
    lines: dict[str, list[str]] = {}  # each file's lines, to locate cross-file problems
    problems: list[Problem] = []
    for file in sorted(folder.glob("*.toml")):
        if file.name == PEOPLE_FILE:
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(Problem(str(file), f"cannot be read: {error}"))
            continue
        rotation, found = _read(text, str(file))
        problems.extend(found)
        lines[str(file)] = text.splitlines()
        if rotation is not None:
            problems.extend(_add_unique(rotations, rotation, lines[str(file)]))
    problems.extend(_cross_file_problems(rotations, lines))
    return rotations, problems


def load_rotations(directory: str | os.PathLike) -> dict[str, Rotation]:
    """Every rotation in directory by name; RotationError listing every problem if any."""
    rotations, problems = read_rotations(directory)
    if problems:
        raise RotationError(problems)
    return rotations


def default_rotation(rotations: dict[str, Rotation]) -> Rotation | None:
    """The rotation paged when none is named: the one marked default, or the only one."""
    marked = [rotation for rotation in rotations.values() if rotation.default]
    if len(marked) == 1:
        return marked[0]
    if not marked and len(rotations) == 1:
        return next(iter(rotations.values()))
    return None


def _add_unique(
    rotations: dict[str, Rotation], rotation: Rotation, lines: list[str]
) -> list[Problem]:
    """Add rotation unless its name is taken; the clash as a problem if it is."""
    other = rotations.setdefault(rotation.name, rotation)
    if other is rotation:
        return []
    message = f"{rotation.name!r} is already the name of {other.path}; names must be unique"
    return [Problem(rotation.path or "", message, "name", fields.find_line(lines, "name"))]


def _cross_file_problems(
    rotations: dict[str, Rotation], lines: dict[str, list[str]]
) -> list[Problem]:
    """Problems only visible across files: several defaults, escalation to unknown rotations."""

    def problem(rotation: Rotation, key: str, message: str) -> Problem:
        path = rotation.path or ""
        return Problem(path, message, key, fields.find_line(lines.get(path, []), key))

    defaults = [r for r in rotations.values() if r.default]
    problems = [
        problem(extra, "default", f"{defaults[0].path} is already the default; only one can be")
        for extra in defaults[1:]
    ]
    for rotation in rotations.values():
        target = rotation.escalate_to
        if target is not None and (target not in rotations or target == rotation.name):
            known = ", ".join(sorted(set(rotations) - {rotation.name})) or "none"
            message = f"{target!r} is not another rotation; known: {known}"
            problems.append(problem(rotation, "escalate_to", message))
    return problems


def _read(text: str, path: str) -> tuple[Rotation | None, list[Problem]]:
    """Parse text; the rotation (None when unusable) and the problems found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_LINE.search(str(error))
        line = int(match.group(1)) if match else None
        return None, [Problem(path, f"not valid TOML: {error}", None, line)]
    reader = _FileReader(text, path)
    rotation = _rotation(reader, data, Path(path).stem)
    return (None if reader.problems else rotation), reader.problems


def _rotation(reader: _FileReader, data: dict[str, Any], stem: str) -> Rotation | None:
    """Validate the top level of a rotation file."""
    reader.check_keys(_TOP, data, TOP_KEYS)
    if "name" not in data and not _NAME.match(stem):
        message = f"file name {stem!r} is not a usable name; add name = ... ({_NAME_HELP})"
        reader.problem(_TOP, "name", message, present=False)
    values = {
        "name": reader.value(_TOP, data, "name", _name, default=stem),
        "description": reader.value(_TOP, data, "description", _text, default=""),
        "start": reader.value(_TOP, data, "start", fields.parse_anchor_date),
        "handoff": reader.value(_TOP, data, "handoff", _handoff),
        "channel": reader.value(_TOP, data, "channel", _text, default=None),
        "usergroup": reader.value(_TOP, data, "usergroup", _text, default=None),
        "escalation_minutes": reader.value(_TOP, data, "escalation_minutes", _minutes, None),
        "escalate_to": reader.value(_TOP, data, "escalate_to", _name, default=None),
        "escalation_repeat": reader.value(_TOP, data, "escalation_repeat", _repeats, default=0),
        "default": reader.value(_TOP, data, "default", _flag, default=False),
        "regions": _regions(reader, data),
        "overrides": _overrides(reader, data),
        "intended": reader.value(_TOP, data, "intended", _intended, default=frozenset()),
        "admins": reader.value(_TOP, data, "admins", _members, default=()),
        "runbook": reader.value(_TOP, data, "runbook", _url, default=None),
        "path": reader.path,
    }
    return None if reader.problems else Rotation(**values)


def _regions(reader: _FileReader, data: dict[str, Any]) -> tuple[Region, ...]:
    """Validate [[regions]]: at least one, with unique names."""
    tables = data.get("regions")
    if tables is None:
        reader.problem(
            _TOP, "regions", "missing; add at least one [[regions]] table", present=False
        )
        return ()
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        reader.problem(_TOP, "regions", "must be one or more [[regions]] tables")
        return ()
    regions: list[Region] = []
    for index, table in enumerate(tables):
        scope = _Scope("regions", index)
        region = _region(reader, scope, table)
        if region is not None and any(r.name == region.name for r in regions):
            message = f"{region.name!r} is used twice in this rotation; region names must be unique"
            reader.problem(scope, "name", message)
        elif region is not None:
            regions.append(region)
    return tuple(regions)


def _region(reader: _FileReader, scope: _Scope, table: dict[str, Any]) -> Region | None:
    """Validate one [[regions]] table."""
    reader.check_keys(scope, table, REGION_KEYS)
    before = len(reader.problems)
    region = Region(
        name=reader.value(scope, table, "name", _name),
        timezone=reader.value(scope, table, "timezone", _zone),
        hours=reader.value(scope, table, "hours", fields.parse_hours),
        days=reader.value(scope, table, "days", fields.parse_days, default=EVERY_DAY),
        members=reader.value(scope, table, "members", _members),
        holidays=reader.value(scope, table, "holidays", _holidays, default=None),
    )
    return region if len(reader.problems) == before else None


def _overrides(reader: _FileReader, data: dict[str, Any]) -> tuple[Override, ...]:
    """Validate [[overrides]] tables (user, start, end with offsets; optional reason and id)."""
    tables = data.get("overrides", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        reader.problem(_TOP, "overrides", "must be [[overrides]] tables")
        return ()
    overrides = []
    for index, table in enumerate(tables):
        scope = _Scope("overrides", index)
        reader.check_keys(scope, table, OVERRIDE_KEYS)
        user = reader.value(scope, table, "user", _text)
        start = reader.value(scope, table, "start", fields.parse_offset_datetime)
        end = reader.value(scope, table, "end", fields.parse_offset_datetime)
        reason = reader.value(scope, table, "reason", _text, default="")
        ident = reader.value(scope, table, "id", _text, default=None)
        if user and start and end and end <= start:
            reader.problem(scope, "end", "must be after start")
        elif user and start and end:
            overrides.append(Override(user, start, end, reason or "", ident))
    return tuple(overrides)


def _text(value: object) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"{value!r} must be a non-empty string")
    return value.strip()


def _url(value: object) -> str:
    """An http(s) address without spaces or control characters (bookmarked in Slack)."""
    text = _text(value)
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", text) or any(ord(c) < 32 or c == "\x7f" for c in text) \
            or len(text) > 2000:
        raise _Invalid(f"{text[:80]!r} is not an http:// or https:// address")
    return text


def _name(value: object) -> str:
    """A rotation or region name usable in a slash command."""
    text = _text(value)
    if not _NAME.match(text):
        raise _Invalid(f"{text!r} is not a usable name; {_NAME_HELP}")
    return text


def _handoff(value: object) -> str:
    """daily, weekly, every N days or every N weeks (any case), as written in lower case."""
    if not isinstance(value, str):
        raise _Invalid(f"{value!r} must be a string such as \"weekly\"")
    handoff_period(value)
    return " ".join(value.lower().split())


def _intended(value: object) -> frozenset[str]:
    """A list of what the rotation intends: "gaps", "overlaps" (any case)."""
    words = [value] if isinstance(value, str) else value
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise _Invalid('must be a list such as ["gaps"] or ["gaps", "overlaps"]')
    chosen = frozenset(w.strip().lower() for w in words)
    unknown = sorted(chosen - set(INTENDED))
    if unknown:
        raise _Invalid(f"{unknown[0]!r} cannot be intended; allowed: " + ", ".join(map(repr, INTENDED)))
    return chosen


def _holidays(value: object) -> str:
    """A country code the holidays package knows ("IE"), optionally with a subdivision ("DE-BY")."""
    code = _text(value).upper()
    try:
        holiday_calendar(code)
    except NotImplementedError:
        raise _Invalid(
            f"{code!r} is not a country (or country-subdivision) code with public holidays; "
            'use an ISO code such as "IE", "SG", "US" or "DE-BY"'
        ) from None
    return code


def _minutes(value: object) -> int:
    """A positive whole number of minutes."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Invalid(f"{value!r} must be a positive whole number of minutes")
    return value


def _repeats(value: object) -> int:
    """How many more times the escalation chain is walked: a whole number from 0 to 10."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise _Invalid(f"{value!r} must be a whole number from 0 to 10 (walks of the chain after the first)")
    return value


def _flag(value: object) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise _Invalid(f"{value!r} must be true or false")
    return value


def _zone(value: object) -> str:
    """An IANA time-zone name, in its canonical spelling."""
    name = _text(value)
    try:
        return canonical_zone(name)
    except UnknownZone:
        close = suggest_zone(name)
        hint = f"did you mean {close!r}? " if close else ""
        raise _Invalid(
            f"unknown time zone {name!r}; {hint}use an IANA name like 'Europe/Dublin'"
        ) from None


def _members(value: object) -> tuple[str, ...]:
    """A non-empty list of Slack user IDs or emails."""
    if not isinstance(value, list) or not value:
        raise _Invalid('must list at least one Slack user ID or email, e.g. ["U0APAC1"]')
    if not all(isinstance(m, str) and m.strip() for m in value):
        raise _Invalid("every member must be a non-empty string (a Slack user ID or email)")
    return tuple(m.strip() for m in value)
