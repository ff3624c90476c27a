"""Incident service functions: each takes an explicit db_session and plain values."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from bot.incidents.commands import OPEN, SEVERITIES, STATUSES, severity_label
from bot.models import (
    ActionItem,
    ChannelMember,
    Counter,
    Incident,
    IncidentKeySuffix,
    TimelineEntry,
)
from bot.outbox import enqueue_many
from bot.redaction import mask_secrets
from bot.storage import DriverStatement, connection_of
from bot.text import plain, shows_anything, visible


class IncidentError(Exception):
    """Something a user asked that cannot be done; the message is written for them."""


TITLE_LIMIT = 200  # characters as shown: Slack's escapes and mention markup do not count
TEXT_LIMIT = 3_000  # notes, resolve summaries, action items, descriptions


def check_length(text: str, *, what: str, limit: int = TEXT_LIMIT) -> None:
    """IncidentError naming the limit when the text shows more characters than that."""
    shown = len(plain(text))
    if shown > limit:
        raise IncidentError(f"The {what} is {shown:,} characters long; the limit is {limit:,}. Nothing was saved.")


_COUNTER = Counter.metadata.tables["counter"]
# Every declaration runs them: straight to the driver (a plain UPDATE, no ORM state to synchronize).
_TAKE_NUMBER = DriverStatement(f"UPDATE {_COUNTER.name} SET value = value + ? WHERE name = ? RETURNING value")
_NEW_COUNTER = DriverStatement(f"INSERT INTO {_COUNTER.name} (name, value) VALUES (?, ?)")


def next_number(*, db_session: Session | Connection, name: str = "incident") -> int:
    """Take the next number of a gap-free counter; concurrent callers queue on the row lock."""
    return _take_numbers(connection_of(db_session), name, 1)[0]


def _take_numbers(connection: Connection, name: str, count: int) -> list[int]:
    """The counter's next `count` numbers, in the caller's transaction (the row made at the first)."""
    taken = _TAKE_NUMBER.rows(connection, (count, name))
    if not taken:
        _NEW_COUNTER.rows(connection, (name, count))
    last = int(taken[0][0]) if taken else count
    return _ending_at(last, count)


def _ending_at(last: int, count: int) -> list[int]:
    return list(range(last - count + 1, last + 1))


def take_numbers_with_tasks(
    *, db_session: Session | Connection, kind: str, payloads: list[dict[str, Any]], now: datetime,
    name: str = "incident",
) -> list[int]:
    """Consecutive numbers of a gap-free counter, one per payload in order, each recorded as
    "number" in the payload of its own outbox task (as enqueue), in the caller's transaction:
    two statements however many payloads."""
    connection = connection_of(db_session)
    numbers = _take_numbers(connection, name, len(payloads))
    enqueue_many(connection, kind, _numbered(payloads, numbers), now=now)
    return numbers


def _numbered(payloads: list[dict[str, Any]], numbers: list[int]) -> list[dict[str, Any]]:
    """Each payload with its number recorded as "number"."""
    return [{**payload, "number": number} for payload, number in zip(payloads, numbers)]


def add_entry(
    *, db_session: Session, incident: Incident, at: datetime, actor: str, kind: str, text: str,
    old: str | None = None, new: str | None = None, permalink: str | None = None,
    source_key: str | None = None,
) -> TimelineEntry:
    """Append one timeline entry (its text with secrets masked)."""
    entry = TimelineEntry(
        incident_id=incident.id, at=at, actor=actor, kind=kind, text=mask_secrets(text), old=old, new=new,
        permalink=permalink, source_key=source_key,
    )
    db_session.add(entry)
    return entry


_SEVERITY_WORDS = re.compile(r"\b(?:sev\s*-?\s*[0-9]+|p-?[0-9]+|critical|major|minor|low)\b")


def comparable(title: str) -> str:
    """A title as the duplicate guard compares it (stored as the incident's title_key): folded
    to lower-case ASCII words, without punctuation, severity words or extra spaces."""
    text = unicodedata.normalize("NFKD", plain(title)).encode("ascii", "ignore").decode().lower()
    text = _SEVERITY_WORDS.sub(" ", text)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(_SEVERITY_WORDS.sub(" ", text).split())


WHOLE = "="  # before a whole title key among its suffixes: never a character of a key
DUPLICATE_WITHIN = timedelta(minutes=30)  # how recent an open incident must be to be a duplicate


def key_suffixes(key: str) -> list[str]:
    """The endings of a title key that start at a word, each with a space after it, and the
    whole key after WHOLE (stored in IncidentKeySuffix): another key is inside this one when
    one of them starts with it and a space; this one is inside another when WHOLE, it and a
    space are one of the other's key_parts."""
    words = key.split()
    return [" ".join(words[i:]) + " " for i in range(len(words))] + ([f"{WHOLE}{key} "] if words else [])


def key_parts(key: str) -> list[str]:
    """Every run of whole words of a title key, as key_suffixes stores a whole key."""
    words = key.split()
    return sorted({f"{WHOLE}{' '.join(words[i:j])} " for i in range(len(words)) for j in range(i + 1, len(words) + 1)})


def check_declaration(*, title: str, severity: int, description: str | None = None) -> str:
    """The title as it will be saved (invisible and direction-changing characters removed,
    whitespace folded, secrets masked), or IncidentError for a bad declaration."""
    title = mask_secrets(" ".join(visible(title).split()))
    if not shows_anything(title):
        raise IncidentError("The incident needs a title (one with something visible in it).")
    check_length(title, what="title", limit=TITLE_LIMIT)
    if description:
        check_length(description, what="description")
    if severity not in SEVERITIES:
        raise IncidentError("Severity must be SEV1 to SEV4.")
    return title


def declare_incident(
    *, db_session: Session, title: str, severity: int, declarer: str, now: datetime,
    rotation: str | None = None, description: str | None = None, dedup_key: str | None = None,
    number: int | None = None,
) -> Incident:
    """Save a new incident with the declarer as commander; numbers are 1, 2, 3... without gaps
    (pass `number` when it was taken from next_number in an earlier transaction)."""
    title = check_declaration(title=title, severity=severity)
    number = next_number(db_session=db_session) if number is None else number
    incident = Incident(
        id=number, title=title, description=mask_secrets(description) if description else description,
        severity=severity,
        status="investigating", commander=declarer, declarer=declarer, rotation=rotation,
        declared_at=now, last_update_at=now, dedup_key=dedup_key, title_key=comparable(title),
    )
    db_session.add(incident)  # inserted before its entry at the flush (the entry's foreign key)
    db_session.add_all(IncidentKeySuffix(suffix=each, incident_id=number) for each in key_suffixes(incident.title_key or ""))
    # Only incidents declared in the guard's window are looked up: the others' suffixes go, so
    # a short title is never compared with years of past incidents ending the same way.
    recent = select(func.min(Incident.id)).where(Incident.declared_at >= now - DUPLICATE_WITHIN).scalar_subquery()
    db_session.exec(delete(IncidentKeySuffix).where(IncidentKeySuffix.incident_id < recent))
    add_entry(
        db_session=db_session, incident=incident, at=now, actor=declarer, kind="declared",
        text=f"Declared {severity_label(severity)}: {incident.title}", new=severity_label(severity),
    )
    return incident


def get_incident(*, db_session: Session, number: int) -> Incident:
    """The incident with that number, or IncidentError."""
    incident = db_session.get(Incident, number)
    if incident is None:
        raise IncidentError(f"There is no incident #{number}.")
    return incident


def get_by_channel(*, db_session: Session, channel_id: str) -> Incident | None:
    """The incident whose channel this is, if any."""
    return db_session.exec(select(Incident).where(Incident.channel_id == channel_id)).first()


def list_open_incidents(*, db_session: Session) -> list[Incident]:
    """Open incidents, worst severity first, then oldest."""
    return list(
        db_session.exec(
            select(Incident)
            .where(col(Incident.status).in_(OPEN))
            .order_by(col(Incident.severity), col(Incident.id))
        ).all()
    )


def _require_open(incident: Incident) -> None:
    if incident.status == "resolved":
        raise IncidentError(f"Incident #{incident.id} is resolved; declare a new one if it is back.")


def set_severity(
    *, db_session: Session, incident: Incident, severity: int, actor: str, now: datetime
) -> TimelineEntry:
    """Change the severity; raising is allowed on a resolved incident only through a new one."""
    _require_open(incident)
    if severity == incident.severity:
        raise IncidentError(f"Incident #{incident.id} is already {severity_label(severity)}.")
    old = severity_label(incident.severity)
    incident.severity = severity
    db_session.add(incident)
    return add_entry(
        db_session=db_session, incident=incident, at=now, actor=actor, kind="severity",
        text=f"Severity {old} → {severity_label(severity)}", old=old, new=severity_label(severity),
    )


def set_status(
    *, db_session: Session, incident: Incident, status: str, actor: str, now: datetime,
    summary: str | None = None,
) -> TimelineEntry:
    """Move the incident to a status; monitoring marks mitigation, resolved closes it."""
    if summary:
        check_length(summary, what="summary")
        summary = mask_secrets(summary)
    if status not in STATUSES:
        raise IncidentError(f"`{status}` is not a status.")
    _require_open(incident)
    if status == incident.status:
        raise IncidentError(f"Incident #{incident.id} is already {status}.")
    old = incident.status
    incident.status = status
    incident.last_update_at = now
    if status == "monitoring" and incident.mitigated_at is None:
        incident.mitigated_at = now
    if status == "resolved":
        incident.resolved_at = now
        if incident.mitigated_at is None:
            incident.mitigated_at = now
        if summary:
            incident.summary = summary
    db_session.add(incident)
    text = f"Status {old} → {status}"
    if status == "resolved" and summary:
        text += f": {summary}"
    return add_entry(
        db_session=db_session, incident=incident, at=now, actor=actor,
        kind="resolved" if status == "resolved" else "status", text=text, old=old, new=status,
    )


def add_note(*, db_session: Session, incident: Incident, text: str, actor: str, now: datetime) -> TimelineEntry:
    """A status update or observation; it counts as an update for the reminder."""
    check_length(text, what="note")
    incident.last_update_at = now
    db_session.add(incident)
    return add_entry(db_session=db_session, incident=incident, at=now, actor=actor, kind="note", text=text)


def set_commander(
    *, db_session: Session, incident: Incident, commander: str, actor: str, now: datetime
) -> TimelineEntry:
    """Hand command to someone."""
    _require_open(incident)
    if commander == incident.commander:
        raise IncidentError(f"<@{commander}> is already the commander.")
    old = incident.commander
    incident.commander = commander
    db_session.add(incident)
    return add_entry(
        db_session=db_session, incident=incident, at=now, actor=actor, kind="commander",
        text=f"Commander <@{old}> → <@{commander}>", old=old, new=commander,
    )


def add_action_item(
    *, db_session: Session, incident: Incident, text: str, owner: str | None, actor: str, now: datetime
) -> ActionItem:
    """A follow-up for the postmortem."""
    check_length(text, what="action item")
    text = mask_secrets(text)
    item = ActionItem(incident_id=incident.id, text=text, owner=owner, created_by=actor, created_at=now)
    db_session.add(item)
    owner_text = f" (owner <@{owner}>)" if owner else ""
    add_entry(
        db_session=db_session, incident=incident, at=now, actor=actor, kind="action",
        text=f"Action item: {text}{owner_text}",
    )
    return item


def record_message(
    *, db_session: Session, incident: Incident, author: str, text: str, posted_at: datetime,
    permalink: str | None, source_key: str,
) -> TimelineEntry | None:
    """Add a Slack message to the timeline once; None when it is already there."""
    exists = db_session.exec(
        select(TimelineEntry.id).where(
            TimelineEntry.incident_id == incident.id, TimelineEntry.source_key == source_key
        )
    ).first()
    if exists is not None:
        return None
    return add_entry(
        db_session=db_session, incident=incident, at=posted_at, actor=author, kind="pinned",
        text=text, permalink=permalink, source_key=source_key,
    )


def timeline(*, db_session: Session, incident: Incident) -> list[TimelineEntry]:
    """Every entry of the incident in time order."""
    return list(
        db_session.exec(
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident.id)
            .order_by(col(TimelineEntry.at), col(TimelineEntry.id))
        ).all()
    )


def action_items(*, db_session: Session, incident: Incident) -> list[ActionItem]:
    return list(
        db_session.exec(
            select(ActionItem).where(ActionItem.incident_id == incident.id).order_by(col(ActionItem.id))
        ).all()
    )


_MEMBERS = ChannelMember.metadata.tables["channelmember"]


def note_members(*, db_session: Session | Connection, channel_id: str, user_ids: list[str]) -> None:
    """Remember that these people are in a channel; those already noted (perhaps by another
    process right now) are left as they are. One statement for all of them."""
    if not user_ids:
        return
    connection = connection_of(db_session)
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(
        dialect.insert(_MEMBERS).on_conflict_do_nothing(),
        [{"channel_id": channel_id, "user_id": user_id} for user_id in user_ids],
    )


def note_member(*, db_session: Session, channel_id: str, user_id: str, present: bool = True) -> None:
    """Remember who is in a channel (from our invites and Slack's member events)."""
    if present:
        note_members(db_session=db_session, channel_id=channel_id, user_ids=[user_id])
        return
    row = db_session.get(ChannelMember, (channel_id, user_id))
    if row is not None:
        db_session.delete(row)


def is_member(*, db_session: Session, channel_id: str, user_id: str) -> bool:
    return db_session.get(ChannelMember, (channel_id, user_id)) is not None


def may_update(*, db_session: Session, incident: Incident, user_id: str) -> bool:
    """The commander, the declarer and anyone in the channel may update the incident."""
    if user_id in (incident.commander, incident.declarer):
        return True
    return bool(incident.channel_id) and is_member(
        db_session=db_session, channel_id=incident.channel_id or "", user_id=user_id
    )
