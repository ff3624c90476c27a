"""What users can ask of an incident: its severities, its statuses, and the typed commands
that `bot.slack` parses command text into. The one definition of each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from bot.redaction import mask_secrets

SEVERITIES = (1, 2, 3, 4)  # SEV1 is the worst
STATUSES = ("investigating", "identified", "monitoring", "resolved")
OPEN = STATUSES[:-1]
_SEVERITY_WORD = re.compile(r"(?:sev\s*-?\s*)?([0-9]{1,9})")


def severity_label(severity: int) -> str:
    return f"SEV{severity}"


def severity_from_word(word: str) -> int | None:
    """`2`, `sev2`, `SEV 2`, `sev-2` -> 2; None for anything else, out-of-range numbers included."""
    match = _SEVERITY_WORD.fullmatch(word.strip().lower())
    number = int(match.group(1)) if match else None
    return number if number in SEVERITIES else None


@dataclass(frozen=True)
class SetSeverity:
    severity: int


@dataclass(frozen=True)
class SetStatus:
    status: str


@dataclass(frozen=True)
class AddNote:
    text: str

    def __post_init__(self) -> None:  # masked once here: the echo and the stored row alike
        object.__setattr__(self, "text", mask_secrets(self.text))


@dataclass(frozen=True)
class SetCommander:
    user: str


@dataclass(frozen=True)
class PageSomeone:
    user: str | None = None
    rotation: str | None = None


@dataclass(frozen=True)
class AddAction:
    text: str
    owner: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", mask_secrets(self.text))


@dataclass(frozen=True)
class ShowTimeline:
    pass


@dataclass(frozen=True)
class Resolve:
    summary: str | None

    def __post_init__(self) -> None:
        if self.summary:
            object.__setattr__(self, "summary", mask_secrets(self.summary))


@dataclass(frozen=True)
class DraftPostmortem:
    mark: str | None = None  # reviewed | final: the team has taken the draft over


# Commands that act on the incident whose channel they are typed in.
InChannelCommand = Union[
    SetSeverity, SetStatus, AddNote, SetCommander, PageSomeone, AddAction, ShowTimeline, Resolve,
    DraftPostmortem,
]
