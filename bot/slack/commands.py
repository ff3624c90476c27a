"""Slash-command text to typed commands. Pure: no Slack calls, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from bot.incidents.commands import (
    STATUSES,
    AddAction,
    AddNote,
    DraftPostmortem,
    PageSomeone,
    Resolve,
    SetCommander,
    SetSeverity,
    SetStatus,
    ShowTimeline,
    severity_from_word,
)
from bot.text import QUOTED, excerpt

# Slack escapes a mention as <@U123> or <@U123|name>; a typed-in plain @name stays text.
MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
ROTATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")  # at most 80, as _rotation


class UsageError(Exception):
    """The command could not be understood; the message says what was wrong and the right form."""


INCIDENT_HELP = """*`/incident` — declare and run incidents*
`/incident declare [sev1|sev2|sev3|sev4] TITLE` — declare (no text opens a form)
Inside an incident channel:
`/incident sev 1-4` · `/incident status investigating|identified|monitoring|resolved`
`/incident note TEXT` · `/incident commander @user` · `/incident page @user|ROTATION`
`/incident action [@owner] TEXT` · `/incident timeline` · `/incident resolve [SUMMARY]`
`/incident postmortem` (draft again) · `/incident postmortem reviewed|final` (stops the reminder)
Anywhere: `/incident list` · `/incident help`
SEV1 is the worst; SEV4 the mildest."""

ONCALL_HELP = """*`/oncall` — who holds the pager*
`/oncall` — who is on call now, every rotation · `/oncall ROTATION` — one rotation
`/oncall next ROTATION` — who is next · `/oncall me` — my next shifts, in my time zone
`/oncall schedule ROTATION [DAYS]` — the shifts ahead (default 7 days)
`/oncall override ROTATION @user START END` — put someone on call (ISO times, e.g. 2026-11-24T09:00; your own time zone unless an offset is given)
`/oncall override remove ID` — remove an override
`/oncall swap ROTATION @user` — take over their next shift
`/oncall help`"""

# The form of each verb, shown when a command is misread; the verbs each parser understands
# (metrics and logs name requests by them).
INCIDENT_FORMS = {
    "declare": "`/incident declare [sev1|sev2|sev3|sev4] TITLE`",
    "sev": "`/incident sev 1|2|3|4` (SEV1 is the worst)",
    "status": "`/incident status investigating|identified|monitoring|resolved`",
    "note": "`/incident note TEXT`",
    "commander": "`/incident commander @user`",
    "page": "`/incident page @user` or `/incident page ROTATION`",
    "action": "`/incident action [@owner] TEXT`",
    "timeline": "`/incident timeline`",
    "resolve": "`/incident resolve [SUMMARY]`",
    "postmortem": "`/incident postmortem` (draft again) or `/incident postmortem reviewed|final`",
    "list": "`/incident list`",
    "help": "`/incident help`",
}
ONCALL_FORMS = {
    "me": "`/oncall me`",
    "next": "`/oncall next ROTATION`",
    "schedule": "`/oncall schedule ROTATION [DAYS]` (DAYS from 1 to 90)",
    "override": "`/oncall override ROTATION @user START END` or `/oncall override remove ID`",
    "swap": "`/oncall swap ROTATION @user`",
    "help": "`/oncall help`",
}
FORMS = {**ONCALL_FORMS, **INCIDENT_FORMS}
INCIDENT_VERBS = frozenset(INCIDENT_FORMS)
ONCALL_VERBS = frozenset(ONCALL_FORMS)


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class OpenDeclareForm:
    pass


@dataclass(frozen=True)
class Declare:
    severity: int
    title: str


@dataclass(frozen=True)
class ListIncidents:
    pass


IncidentCommand = Union[
    Help, OpenDeclareForm, Declare, SetSeverity, SetStatus, AddNote, SetCommander, PageSomeone,
    AddAction, ShowTimeline, Resolve, DraftPostmortem, ListIncidents,
]


@dataclass(frozen=True)
class WhoIsOnCall:
    rotation: str | None = None


@dataclass(frozen=True)
class NextOnCall:
    rotation: str


@dataclass(frozen=True)
class MyShifts:
    pass


@dataclass(frozen=True)
class ShowSchedule:
    rotation: str
    days: int = 7


@dataclass(frozen=True)
class AddOverride:
    rotation: str
    user: str
    start: str
    end: str


@dataclass(frozen=True)
class RemoveOverride:
    override_id: int


@dataclass(frozen=True)
class Swap:
    rotation: str
    user: str


OncallCommand = Union[Help, WhoIsOnCall, NextOnCall, MyShifts, ShowSchedule, AddOverride, RemoveOverride, Swap]


def _split(text: str) -> tuple[str, str]:
    text = (text or "").strip()
    verb, _, rest = text.partition(" ")
    return verb.lower(), rest.strip()


def _fail(problem: str, form: str) -> UsageError:
    return UsageError(f"{problem}. Use {FORMS[form]}.")


def _number(token: str) -> int | None:
    """A plain ASCII number of at most 9 digits (`str.isdigit` also accepts `²`, which `int`
    refuses, and `int` refuses over 4300 digits), else None."""
    return int(token) if re.fullmatch(r"[0-9]{1,9}", token) else None


def _rotation(word: str, form: str) -> str:
    """A rotation name as typed; UsageError for one longer than any rotation's name can be."""
    if len(word) > QUOTED:
        raise _fail(f"`{excerpt(word)}` is not a rotation name", form)
    return word


def parse_mention(token: str, form: str) -> str:
    """A Slack user mention to its user ID."""
    match = MENTION.match(token.strip())
    if not match:
        raise _fail(f"{excerpt(token) or 'Nothing'!s} is not a Slack user mention (pick someone with @)", form)
    return match.group(1)


def parse_severity(token: str, form: str = "sev") -> int:
    """'2', 'sev2', 'SEV 2' -> 2; anything else is a UsageError."""
    severity = severity_from_word(token)
    if severity is None:
        raise _fail(f"`{excerpt(token) or '(nothing)'}` is not a severity", form)
    return severity


def parse_incident(text: str) -> IncidentCommand:
    """Parse the text after `/incident`."""
    verb, rest = _split(text)
    if verb in ("", "help"):
        return Help()
    if verb == "declare":
        if not rest:
            return OpenDeclareForm()
        first, _, title = rest.partition(" ")
        severity = 3
        if re.fullmatch(r"(?i)sev-?\d+", first):
            severity = parse_severity(first, "declare")
            rest = title.strip()
        if not rest:
            raise _fail("The incident needs a title", "declare")
        return Declare(severity=severity, title=rest)
    if verb == "sev":
        return SetSeverity(parse_severity(rest))
    if verb == "status":
        status = rest.lower()
        if status not in STATUSES:
            raise _fail(f"`{excerpt(rest) or '(nothing)'}` is not a status", "status")
        return SetStatus(status)
    if verb == "note":
        if not rest:
            raise _fail("The note is empty", "note")
        return AddNote(rest)
    if verb == "commander":
        return SetCommander(parse_mention(rest, "commander"))
    if verb == "page":
        if rest.startswith("<@"):
            return PageSomeone(user=parse_mention(rest, "page"))
        if ROTATION_NAME.match(rest):
            return PageSomeone(rotation=rest)
        raise _fail("Say whom to page", "page")
    if verb == "action":
        if not rest:
            raise _fail("The action item is empty", "action")
        first, _, remainder = rest.partition(" ")
        if MENTION.match(first) and remainder.strip():
            return AddAction(text=remainder.strip(), owner=parse_mention(first, "action"))
        return AddAction(text=rest)
    if verb == "timeline":
        return ShowTimeline()
    if verb == "resolve":
        return Resolve(rest or None)
    if verb == "postmortem":
        if not rest:
            return DraftPostmortem()
        if rest.lower() in ("reviewed", "final"):
            return DraftPostmortem(mark=rest.lower())
        raise _fail(f"`{excerpt(rest)}` is not a postmortem state", "postmortem")
    if verb == "list":
        return ListIncidents()
    raise UsageError(f"`{excerpt(verb)}` is not an /incident command.\n{INCIDENT_HELP}")


def parse_oncall(text: str) -> OncallCommand:
    """Parse the text after `/oncall`."""
    verb, rest = _split(text)
    words = rest.split()
    if verb == "":
        return WhoIsOnCall()
    if verb == "help":
        return Help()
    if verb == "me":
        return MyShifts()
    if verb == "next":
        if len(words) != 1:
            raise _fail("Name one rotation", "next")
        return NextOnCall(_rotation(words[0], "next"))
    if verb == "schedule":
        if not 1 <= len(words) <= 2:
            raise _fail("Name one rotation", "schedule")
        days = 7
        if len(words) == 2:
            days = _number(words[1]) or 0
            if not 1 <= days <= 90:
                raise _fail(f"`{excerpt(words[1])}` is not a number of days", "schedule")
        return ShowSchedule(_rotation(words[0], "schedule"), days)
    if verb == "override":
        if len(words) == 2 and words[0].lower() == "remove":
            override_id = _number(words[1])
            if override_id is None:
                raise _fail(f"`{excerpt(words[1])}` is not an override number", "override")
            return RemoveOverride(override_id)
        if len(words) != 4:
            raise _fail("An override needs a rotation, a person, a start and an end", "override")
        return AddOverride(_rotation(words[0], "override"), parse_mention(words[1], "override"), words[2], words[3])
    if verb == "swap":
        if len(words) != 2:
            raise _fail("A swap needs a rotation and a person", "swap")
        return Swap(_rotation(words[0], "swap"), parse_mention(words[1], "swap"))
    if len(words) == 0 and ROTATION_NAME.match(verb):
        return WhoIsOnCall(verb)
    raise UsageError(f"`{excerpt(text)}` is not an /oncall command.\n{ONCALL_HELP}")
