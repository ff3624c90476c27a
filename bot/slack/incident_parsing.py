"""The words of `/incident declare`, `action`, `role`, `update` and `reopen`: severity words,
`--private`, owners and due dates. Pure; `bot.slack.commands` hands these verbs here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from bot.incidents.commands import (
    SEVERITY_CHOICES,
    AddAction,
    CompleteAction,
    PostUpdate,
    Reopen,
    SetRole,
    looks_like_severity,
    severity_from_word,
)
from bot.text import excerpt

# Slack escapes a mention as <@U123> or <@U123|name>; a typed-in plain @name stays text.
MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
DEFAULT_SEVERITY = 3


class UsageError(Exception):
    """The command could not be understood; the message says what was wrong and the right form."""


WORKFLOW_FORMS = {
    "declare": "`/incident declare [--private] [SEVERITY] TITLE` (SEVERITY: " + SEVERITY_CHOICES + "; default sev3)",
    "action": "`/incident action [@owner] TEXT [due YYYY-MM-DD]` or `/incident action done N`",
    "role": "`/incident role @user ROLE`",
    "update": "`/incident update TEXT`",
    "reopen": "`/incident reopen`",
}


@dataclass(frozen=True)
class Declare:
    severity: int
    title: str
    private: bool = False


def fail(problem: str, form: str) -> UsageError:
    return UsageError(f"{problem}. Use {WORKFLOW_FORMS[form]}.")


def mention(token: str, form: str) -> str:
    """A Slack user mention to its user ID."""
    match = MENTION.match(token.strip())
    if not match:
        raise fail(f"{excerpt(token) or 'Nothing'!s} is not a Slack user mention (pick someone with @)", form)
    return match.group(1)


def parse_declare(rest: str) -> Declare:
    """`[--private] [SEVERITY] TITLE`: a first word that looks like a severity must be one."""
    first, _, remainder = rest.partition(" ")
    private = first.lower() == "--private"
    if private:
        rest = remainder.strip()
        first, _, remainder = rest.partition(" ")
    severity = severity_from_word(first) if first else None
    if severity is not None:
        rest = remainder.strip()
    elif first and looks_like_severity(first):
        raise fail(f"`{excerpt(first)}` is not a severity", "declare")
    if not rest:
        raise fail("The incident needs a title", "declare")
    return Declare(severity=severity or DEFAULT_SEVERITY, title=rest, private=private)


def parse_action(rest: str) -> AddAction | CompleteAction:
    """`[@owner] TEXT [due YYYY-MM-DD]` or `done N`."""
    words = rest.split()
    if not words:
        raise fail("The action item is empty", "action")
    if words[0].lower() == "done" and len(words) == 2 and re.fullmatch(r"#?[0-9]{1,9}", words[1]):
        return CompleteAction(int(words[1].lstrip("#")))
    owner = None
    if MENTION.match(words[0]):
        owner = mention(words[0], "action")
        rest = rest.strip()[len(words[0]):].strip()
    due = None
    head, _, last = rest.rpartition(" ")
    if head.lower().endswith(" due") or head.lower() == "due":
        try:
            due = date.fromisoformat(last)
        except ValueError:
            raise fail(f"`{excerpt(last)}` is not a due date; write it as 2026-03-20", "action") from None
        rest = head[: -len("due")].strip()
    if not rest:
        raise fail("The action item is empty", "action")
    return AddAction(text=rest, owner=owner, due=due)


def parse_role(rest: str) -> SetRole:
    words = rest.split()
    if len(words) != 2:
        raise fail("A role needs a person and a role", "role")
    return SetRole(user=mention(words[0], "role"), role=words[1].lower())


def parse_update(rest: str) -> PostUpdate:
    if not rest:
        raise fail("The update is empty", "update")
    return PostUpdate(rest)


def parse_reopen(rest: str) -> Reopen:
    if rest:
        raise fail("Reopen takes no words", "reopen")
    return Reopen()


PARSERS = {"action": parse_action, "role": parse_role, "update": parse_update, "reopen": parse_reopen}
