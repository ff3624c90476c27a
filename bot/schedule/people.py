"""The people file (`people.toml` in the rotations folder): each person's time zone, contacts,
notify delays, time away and working day, validated with the file and line of every problem.

Contact URLs hold secrets (tokens, passwords, topics): no message here ever shows more of one
than contact_label does.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import cache
from pathlib import Path
from typing import Any

from bot.schedule import fields
from bot.schedule.model import Away, Problem, Rotation, RotationError
from bot.schedule.parse import _TOML_LINE, PEOPLE_FILE, _FileReader, _Scope, _text, _zone

TOP_KEYS = ("people",)
PERSON_KEYS = ("user", "timezone", "contacts", "notify", "away", "working_hours", "working_days")
AWAY_KEYS = ("start", "end")
SLACK = "slack"  # in `notify`, the Slack DM itself; no contact may take the name
# The working day when the people file says nothing (SPEC: 09:00-18:00 Monday to Friday).
WORKING_HOURS = (time(9), time(18))
WORKING_DAYS = frozenset(range(5))
_CONTACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HOSTNAME = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_PEOPLE_HEADER = re.compile(r"^\s*\[\[\s*people\s*\]\]")


@dataclass(frozen=True)
class Person:
    """One [[people]] entry, validated. user is as written (a Slack user ID or an e-mail);
    timezone is None when the Slack profile's applies; contacts map a name to an Apprise URL
    (secret: left out of repr); notify maps a contact name, or "slack", to minutes after a
    page; away is sorted by start and never overlaps; the working day defaults to
    WORKING_HOURS on WORKING_DAYS, in the person's own zone."""

    user: str
    timezone: str | None = None
    contacts: Mapping[str, str] = field(default_factory=dict, repr=False)
    notify: Mapping[str, int] = field(default_factory=dict)
    away: tuple[Away, ...] = ()
    working_hours: tuple[time, time] = WORKING_HOURS
    working_days: frozenset[int] = WORKING_DAYS
    path: str | None = field(default=None, compare=False, repr=False)
    line: int | None = field(default=None, compare=False, repr=False)

    def is_away(self, at: datetime) -> bool:
        """True when one of the file's away periods covers at."""
        return any(period.covers(at) for period in self.away)


def parse_people(
    text: str, path: str, *, schemes: Collection[str] | None = None
) -> dict[str, Person]:
    """Parse and validate a people file's text into people by user; RotationError lists every
    problem. schemes: the Apprise URL schemes to accept (default: every one Apprise knows)."""
    people, problems = _read(text, path, schemes)
    if problems:
        raise RotationError(problems)
    return people


def read_people(
    directory: str | os.PathLike[str], *, schemes: Collection[str] | None = None
) -> tuple[dict[str, Person], list[Problem]]:
    """The valid people of directory's people.toml by user, and every problem found; nothing
    (and no problem) when the folder has no people file."""
    file = Path(directory) / PEOPLE_FILE
    if not file.is_file():
        return {}, []
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return {}, [Problem(str(file), f"cannot be read: {error}")]
    return _read(text, str(file), schemes)


def load_people(
    directory: str | os.PathLike[str], *, schemes: Collection[str] | None = None
) -> dict[str, Person]:
    """The people of directory's people.toml by user ({} without one); RotationError listing
    every problem if any."""
    people, problems = read_people(directory, schemes=schemes)
    if problems:
        raise RotationError(problems)
    return people


def people_on_no_rotation(
    people: Mapping[str, Person], rotations: Mapping[str, Rotation]
) -> list[Problem]:
    """A warning for each person who is a member of no rotation (compared as written, e-mail
    addresses ignoring case): likely a typo, or someone who left every rotation."""
    members = {_same(m) for rotation in rotations.values() for m in rotation.members}
    return [
        Problem(
            person.path or PEOPLE_FILE,
            f"{person.user!r} is a member of no rotation; check the user ID or e-mail",
            "user",
            person.line,
        )
        for person in people.values()
        if _same(person.user) not in members
    ]


def zones_by_user(people: Mapping[str, Person]) -> dict[str, str]:
    """The time zones the people file gives, by user ID, or by e-mail address in lower case."""
    return {_same(p.user): p.timezone for p in people.values() if p.timezone is not None}


def merge_away(periods: Iterable[Away]) -> tuple[Away, ...]:
    """periods as the fewest disjoint periods covering the same instants, sorted by start;
    a period joined with another loses its id."""
    merged: list[Away] = []
    for period in sorted(periods, key=lambda p: (p.start, p.end)):
        if merged and period.start <= merged[-1].end:
            merged[-1] = Away(merged[-1].start, max(merged[-1].end, period.end))
        else:
            merged.append(period)
    return tuple(merged)


def contact_label(url: str) -> str:
    """A contact URL as safe to show: its scheme, and its host when that is a host name (some
    services put a token or a topic where the host goes, so anything else is left out)."""
    match = _SCHEME.match(url)
    if match is None:
        return "(not a URL)"
    scheme = match.group(1).lower()
    rest = url[match.end() :]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2].partition(":")[0]
    if _HOSTNAME.match(host) and not host.replace(".", "").isdigit():
        return f"{scheme}://{host.lower()}"
    return f"{scheme}://…"


@cache
def apprise_schemes() -> frozenset[str]:
    """Every URL scheme of the services Apprise supports, lower case."""
    from apprise import NotificationManager

    return frozenset(scheme.lower() for scheme in NotificationManager().schemas())


def _read(
    text: str, path: str, schemes: Collection[str] | None
) -> tuple[dict[str, Person], list[Problem]]:
    """Parse text; the valid people by user and the problems found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_LINE.search(str(error))
        line = int(match.group(1)) if match else None
        return {}, [Problem(path, f"not valid TOML: {error}", None, line)]
    reader = _PeopleReader(text, path, schemes)
    top = _Scope()
    reader.check_keys(top, data, TOP_KEYS)
    tables = data.get("people", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        reader.problem(top, "people", "must be [[people]] tables")
        return {}, reader.problems
    people: dict[str, Person] = {}
    for index, table in enumerate(tables):
        scope = _Scope("people", index)
        person = reader.person(scope, table)
        if person is None:
            continue
        twin = next((p for p in people.values() if _same(p.user) == _same(person.user)), None)
        if twin is not None:
            where = f" at line {twin.line}" if twin.line else ""
            message = f"{person.user!r} is already listed{where}; list each person once"
            reader.problem(scope, "user", message)
        else:
            people[person.user] = person
    return people, reader.problems


def _same(user: str) -> str:
    """A user as compared across files: e-mail addresses ignore case."""
    return user.lower() if "@" in user else user


class _PeopleReader(_FileReader):
    """Validates a parsed people file, collecting every problem with its line, as the
    rotation files' reader does."""

    def __init__(self, text: str, path: str, schemes: Collection[str] | None) -> None:
        super().__init__(text, path)
        self._schemes = schemes

    @property
    def schemes(self) -> Collection[str]:
        """The accepted Apprise schemes; Apprise is asked only when a contact needs it."""
        if self._schemes is None:
            self._schemes = apprise_schemes()
        return self._schemes

    def person(self, scope: _Scope, table: dict[str, Any]) -> Person | None:
        """Validate one [[people]] table; None when anything in it is wrong."""
        self.check_keys(scope, table, PERSON_KEYS)
        before = len(self.problems)
        user = self.value(scope, table, "user", _text)
        zone = self.value(scope, table, "timezone", _zone, default=None)
        written = table.get("contacts", {})
        contacts = self.contacts(scope, written)
        # A contact with a problem of its own still counts here: one mistake is one error.
        named = set(written) if isinstance(written, dict) else set()
        notify = self.notify(scope, table.get("notify", {}), contacts, named)
        away = self.away(scope, table.get("away", []))
        hours = self.value(scope, table, "working_hours", fields.parse_hours, WORKING_HOURS)
        days = self.value(scope, table, "working_days", fields.parse_days, WORKING_DAYS)
        if len(self.problems) != before:
            return None
        line = fields.find_line(self.lines, None, table=scope.table, index=scope.index)
        return Person(
            user=user,
            timezone=zone,
            contacts=contacts,
            notify=notify,
            away=away,
            working_hours=hours,
            working_days=days,
            path=self.path,
            line=line,
        )

    def contacts(self, scope: _Scope, value: object) -> dict[str, str]:
        """Validate `contacts`: names that can be typed in Slack, URLs Apprise can send to."""
        if not isinstance(value, dict):
            self.problem(scope, "contacts", 'must be a table, e.g. { phone = "ntfys://…" }')
            return {}
        contacts: dict[str, str] = {}
        for name, url in value.items():
            message: str | None
            if name.lower() == SLACK:
                message = f"{SLACK!r} is the Slack DM itself; give this contact another name"
            elif not _CONTACT_NAME.match(name):
                message = (
                    f"{name!r} is not a usable name; use letters, digits, '-', '_' or '.' "
                    "(it is typed in /oncall contact)"
                )
            else:
                message = self.url_problem(url)
            if message:
                self.nested(scope, "contacts", name, message)
            else:
                contacts[name] = url.strip()
        return contacts

    def url_problem(self, url: object) -> str | None:
        """What is wrong with a contact URL, never quoting more of it than its label."""
        match = _SCHEME.match(url.strip()) if isinstance(url, str) else None
        if match is None:
            return 'must be an Apprise URL in quotes, SERVICE://…, e.g. "ntfys://ntfy.sh/TOPIC"'
        scheme = match.group(1).lower()
        if scheme in self.schemes:
            return None
        close = difflib.get_close_matches(scheme, sorted(self.schemes), n=1)
        hint = f"did you mean '{close[0]}://'? " if close else ""
        return (
            f"{contact_label(str(url).strip())} is not a service Apprise knows; {hint}"
            "see Apprise's list of supported services"
        )

    def notify(
        self, scope: _Scope, value: object, contacts: Collection[str], named: Collection[str]
    ) -> dict[str, int]:
        """Validate `notify`: contact names (or slack) to whole minutes, 0 or more. named: every
        contact name written, valid or not."""
        if not isinstance(value, dict):
            self.problem(scope, "notify", "must be a table, e.g. { slack = 0, phone = 2 }")
            return {}
        notify: dict[str, int] = {}
        for name, minutes in value.items():
            if name != SLACK and name not in named:
                known = ", ".join([*contacts, SLACK])
                self.nested(scope, "notify", name, f"no contact is called {name!r}; known: {known}")
            elif isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
                message = f"{fields.show(minutes)} must be a whole number of minutes, 0 or more"
                self.nested(scope, "notify", name, message)
            else:
                notify[name] = minutes
        return notify

    def away(self, scope: _Scope, value: object) -> tuple[Away, ...]:
        """Validate `away`: periods with offsets, each ending after it starts, none overlapping."""
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            message = (
                "must be a list like [{ start = 2026-12-24T00:00:00+08:00, "
                "end = 2027-01-02T00:00:00+08:00 }]"
            )
            self.problem(scope, "away", message)
            return ()
        periods: list[tuple[int, Away]] = []
        for number, item in enumerate(value):
            period = self.away_period(scope, number, item)
            if period is None:
                continue
            other = next((n for n, p in periods if p.overlaps(period.start, period.end)), None)
            if other is not None:
                message = f"overlaps away[{other}]; make them one period"
                self.nested(scope, "away", "start", message, number)
            else:
                periods.append((number, period))
        return tuple(sorted((period for _, period in periods), key=lambda p: p.start))

    def away_period(self, scope: _Scope, number: int, item: dict[str, Any]) -> Away | None:
        """Validate the number-th entry of `away`."""
        for key in item:
            if key not in AWAY_KEYS:
                message = f"unknown key; allowed: {', '.join(AWAY_KEYS)}"
                self.nested(scope, "away", key, message, number)
        edges = []
        for key in AWAY_KEYS:
            if key not in item:
                self.nested(scope, "away", key, "missing; this field is required", number)
                continue
            try:
                edges.append(fields.parse_offset_datetime(item[key]))
            except ValueError as error:
                self.nested(scope, "away", key, str(error), number)
        if len(edges) != 2:
            return None
        start, end = edges
        if end <= start:
            message = "must be after start (this period ends before it begins)"
            self.nested(scope, "away", "end", message, number)
            return None
        return Away(start, end)

    def nested(
        self,
        scope: _Scope,
        key: str,
        inner: str,
        message: str,
        item: int | None = None,
    ) -> None:
        """Record a problem with inner, a name in the table key or in its item-th entry, at
        the line where it is written when that can be found."""
        where = f"{key}.{inner}" if item is None else f"{key}[{item}].{inner}"
        line = _nested_line(self.lines, scope.index, key, inner, item)
        self.problems.append(Problem(self.path, message, scope.field(where), line))


def _nested_line(
    lines: list[str], index: int, key: str, inner: str, item: int | None
) -> int | None:
    """The line of `inner =` in the index-th person's `key` (written inline, as `key.inner =`,
    or as [people.key] or [[people.key]] tables), in its item-th entry when key is a list; else
    the entry's line, else key's, else the person's header line."""
    header = fields.find_line(lines, None, table="people", index=index)
    if header is None:
        return None
    end = next(
        (n for n in range(header + 1, len(lines) + 1) if _PEOPLE_HEADER.match(lines[n - 1])),
        len(lines) + 1,
    )
    name = re.escape(key)
    opens = re.compile(rf"^\s*(?:[\"']?{name}[\"']?\s*[=.]|\[\[?\s*people\.{name}\s*\]\]?)")
    start = next((n for n in range(header + 1, end) if opens.match(lines[n - 1])), None)
    if start is None:
        return header
    if item is not None:
        # An entry begins with its inline table's brace or its [[people.key]] header.
        entry = re.compile(rf"\{{|^\s*\[\[\s*people\.{name}\s*\]\]")
        seen = 0
        for number in range(start, end):
            found = len(entry.findall(lines[number - 1].partition("#")[0]))
            if seen + found > item:
                start = number
                break
            seen += found
        else:
            return start
    written = re.compile(rf"(?:^|[\s{{,.])[\"']?{re.escape(inner)}[\"']?\s*=")
    for number in range(start, end):
        text = lines[number - 1]
        if written.search(text):
            return number
        if item is not None and "}" in text.partition("#")[0]:
            break  # the inline entry ends here without it
    return start


def with_time_off(rotation: Rotation, people: Mapping[str, Person]) -> Rotation:
    """The rotation carrying its members' time off from the people file (matched by the name
    as written in both files), so that every answer of the engine covers for them."""
    time_off = tuple((m, people[m].away) for m in rotation.members if m in people and people[m].away)
    return dataclasses.replace(rotation, time_off=time_off) if time_off else rotation
