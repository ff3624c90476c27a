"""Slash-command text to typed commands. Pure: no Slack calls, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from bot.incidents.commands import (
    SEVERITY_CHOICES,
    STATUSES,
    AddAction,
    AddNote,
    CompleteAction,
    DraftPostmortem,
    PageSomeone,
    PostUpdate,
    Reopen,
    Resolve,
    SetCommander,
    SetRole,
    SetSeverity,
    SetStatus,
    ShowTimeline,
    severity_from_word,
)
from bot.slack.away_parsing import AWAY_FORM, AddAway, ListAway, RemoveAway, parse_away
from bot.slack.incident_parsing import (
    MENTION,
    PARSERS,
    WORKFLOW_FORMS,
    Declare,
    UsageError,
    parse_declare,
)
from bot.text import QUOTED, excerpt, number

ROTATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")  # at most 80, as _rotation


INCIDENT_HELP = """*`/incident` — declare and run incidents*
`/incident declare [--private] [SEVERITY] TITLE` — declare (no text opens a form)
Inside an incident channel:
`/incident sev SEVERITY` · `/incident status investigating|identified|monitoring|resolved`
`/incident note TEXT` · `/incident update TEXT` (stakeholder update) · `/incident commander @user`
`/incident role @user ROLE` · `/incident page @user|ROTATION` · `/incident timeline`
`/incident action [@owner] TEXT [due YYYY-MM-DD]` · `/incident action done N`
`/incident resolve [SUMMARY]` · `/incident reopen` (within 7 days)
`/incident postmortem` (draft again) · `/incident postmortem reviewed|final` (stops the reminder)
Anywhere: `/incident list` · `/incident help` · `/oncall followups` (my open action items)
SEVERITY: sev1..sev4, 1..4, p1..p4, critical, major, minor, low. SEV1 is the worst."""

ONCALL_HELP = """*`/oncall` — who holds the pager*
`/oncall` — who is on call now, every rotation · `/oncall ROTATION` — one rotation
`/oncall next ROTATION` — who is next · `/oncall me` — my next shifts, in my time zone
`/oncall schedule ROTATION [DAYS]` — the shifts ahead (default 7 days)
`/oncall override ROTATION @user START END` — put someone on call (ISO times, e.g. 2026-11-24T09:00; your own time zone unless an offset is given)
`/oncall override remove ID` — remove an override
`/oncall swap ROTATION @user` — offer to exchange our next shifts (they accept or decline; a rotation admin may name two people)
`/oncall take ROTATION @user` — take over their next shift (they are told)
`/oncall away START END` — I am away (e.g. `2026-12-24 2026-12-26`: whole days in your time zone, the end day included; or `2026-12-24T09:00 2026-12-24T13:00`, or with an offset or a zone name after END)
`/oncall away` — my time away · `/oncall away remove ID` — remove one
`/oncall contact NAME URL` · `/oncall contact remove NAME` · `/oncall contact test` · `/oncall notify NAME MINUTES` — reach me outside Slack
`/oncall ical` — my secret calendar feed address · `/oncall ical reset` — replace it
`/oncall followups` — my open action items, across incidents · `/oncall help`"""

# The form of each verb, shown when a command is misread; the verbs each parser understands
# (metrics and logs name requests by them).
INCIDENT_FORMS = {
    **WORKFLOW_FORMS,
    "sev": "`/incident sev SEVERITY` (" + SEVERITY_CHOICES + "; SEV1 is the worst)",
    "status": "`/incident status investigating|identified|monitoring|resolved`",
    "note": "`/incident note TEXT`",
    "commander": "`/incident commander @user`",
    "page": "`/incident page @user` or `/incident page ROTATION`",
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
    "swap": "`/oncall swap ROTATION @user` (an admin of the rotation: `/oncall swap ROTATION @user @user`)",
    "take": "`/oncall take ROTATION @user`",
    "away": AWAY_FORM,
    "ical": "`/oncall ical` or `/oncall ical reset`",
    "followups": "`/oncall followups`",
    "help": "`/oncall help`",
}
FORMS = {**ONCALL_FORMS, **INCIDENT_FORMS}
INCIDENT_VERBS = frozenset(INCIDENT_FORMS)
ONCALL_VERBS = frozenset(ONCALL_FORMS) | {"contact", "notify"}  # those two: bot/slack/contact_commands.py


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class OpenDeclareForm:
    pass


@dataclass(frozen=True)
class ListIncidents:
    pass


IncidentCommand = Union[
    Help, OpenDeclareForm, Declare, SetSeverity, SetStatus, AddNote, SetCommander, PageSomeone,
    AddAction, ShowTimeline, Resolve, DraftPostmortem, ListIncidents, CompleteAction, SetRole, PostUpdate,
    Reopen,
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
    """Exchange next shifts: the asker's with user's, or (admins) user's with other's."""

    rotation: str
    user: str
    other: str | None = None


@dataclass(frozen=True)
class Take:
    rotation: str
    user: str


@dataclass(frozen=True)
class ListFollowups:
    pass


OncallCommand = Union[
    Help, WhoIsOnCall, NextOnCall, MyShifts, ShowSchedule, AddOverride, RemoveOverride, Swap, Take,
    AddAway, RemoveAway, ListAway, ListFollowups,
]


def _split(text: str) -> tuple[str, str]:
    text = (text or "").strip()
    verb, _, rest = text.partition(" ")
    return verb.lower(), rest.strip()


def _fail(problem: str, form: str) -> UsageError:
    return UsageError(f"{problem}. Use {FORMS[form]}.")


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
    """'2', 'sev2', 'SEV 2', 'p2', 'major' -> 2; anything else is a UsageError naming the words."""
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
        return parse_declare(rest) if rest else OpenDeclareForm()
    if verb in PARSERS:
        return PARSERS[verb](rest)
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
    if verb == "followups":
        return ListFollowups()
    if verb == "next":
        if len(words) != 1:
            raise _fail("Name one rotation", "next")
        return NextOnCall(_rotation(words[0], "next"))
    if verb == "schedule":
        if not 1 <= len(words) <= 2:
            raise _fail("Name one rotation", "schedule")
        days = 7
        if len(words) == 2:
            days = number(words[1]) or 0
            if not 1 <= days <= 90:
                raise _fail(f"`{excerpt(words[1])}` is not a number of days", "schedule")
        return ShowSchedule(_rotation(words[0], "schedule"), days)
    if verb == "override":
        if len(words) == 2 and words[0].lower() == "remove":
            override_id = number(words[1])
            if override_id is None:
                raise _fail(f"`{excerpt(words[1])}` is not an override number", "override")
            return RemoveOverride(override_id)
        if len(words) != 4:
            raise _fail("An override needs a rotation, a person, a start and an end", "override")
        return AddOverride(_rotation(words[0], "override"), parse_mention(words[1], "override"), words[2], words[3])
    if verb == "swap":
        if len(words) not in (2, 3):
            raise _fail("A swap needs a rotation and a person", "swap")
        mentions = [parse_mention(word, "swap") for word in words[1:]]
        return Swap(_rotation(words[0], "swap"), *mentions)
    if verb == "take":
        if len(words) != 2:
            raise _fail("Taking a shift needs a rotation and a person", "take")
        return Take(_rotation(words[0], "take"), parse_mention(words[1], "take"))
    if verb == "away":
        return parse_away(words)
    if len(words) == 0 and ROTATION_NAME.match(verb):
        return WhoIsOnCall(verb)
    raise UsageError(f"`{excerpt(text)}` is not an /oncall command.\n{ONCALL_HELP}")
