"""What users can ask of an incident: its severities, its statuses, and the typed commands
that `bot.slack` parses command text into. The one definition of each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Union

from bot.redaction import mask_secrets

SEVERITIES = (1, 2, 3, 4)  # SEV1 is the worst
STATUSES = ("investigating", "identified", "monitoring", "resolved")
OPEN = STATUSES[:-1]
_SEVERITY_WORD = re.compile(r"(?:sev\s*-?\s*|p\s*-?\s*)?([0-9]{1,9})")
# Words that name a severity, as the SPEC lists them (case ignored).
NAMED_SEVERITIES = {"critical": 1, "major": 2, "minor": 3, "low": 4}
SEVERITY_CHOICES = "`sev1`..`sev4`, `1`..`4`, `p1`..`p4`, `critical`, `major`, `minor` or `low`"
# A word meant as a severity even when out of range: sev0, SEV-9, p0, P12.
_LOOKS_LIKE_SEVERITY = re.compile(r"(?:sev\s*-?\s*|p-?)[0-9]{1,9}")


def severity_label(severity: int) -> str:
    return f"SEV{severity}"


def severity_from_word(word: str) -> int | None:
    """`2`, `sev2`, `SEV 2`, `sev-2`, `p2`, `major` -> 2; None for anything else, out-of-range
    numbers included."""
    word = word.strip().lower()
    if word in NAMED_SEVERITIES:
        return NAMED_SEVERITIES[word]
    match = _SEVERITY_WORD.fullmatch(word)
    number = int(match.group(1)) if match else None
    return number if number in SEVERITIES else None


def looks_like_severity(word: str) -> bool:
    """True for a word that is meant as a severity, valid or not (`sev0`, `p9`, `Major`)."""
    word = word.strip().lower()
    return word in NAMED_SEVERITIES or _LOOKS_LIKE_SEVERITY.fullmatch(word) is not None


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
    due: date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", mask_secrets(self.text))


@dataclass(frozen=True)
class CompleteAction:
    item: int


@dataclass(frozen=True)
class SetRole:
    user: str
    role: str


@dataclass(frozen=True)
class PostUpdate:
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", mask_secrets(self.text))


@dataclass(frozen=True)
class Reopen:
    pass


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
    DraftPostmortem, CompleteAction, SetRole, PostUpdate, Reopen,
]
