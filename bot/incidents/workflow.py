"""Roles, stakeholder updates, reopening and the duplicate guard: service functions that take
an explicit db_session and plain values, like bot.incidents.service."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Connection, bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from bot.incidents.commands import OPEN
from bot.incidents.service import IncidentError, add_entry, check_length
from bot.models import ChannelMember, Incident, IncidentRole, TimelineEntry
from bot.text import plain

REOPEN_WITHIN = timedelta(days=7)
DUPLICATE_WITHIN = timedelta(minutes=30)
DUPLICATE_CANDIDATES = 200  # the newest open ones compared: a storm of declarations stays cheap
_SEVERITY_WORDS = re.compile(r"\b(?:sev\s*-?\s*[0-9]+|p-?[0-9]+|critical|major|minor|low)\b")


def roles_of(*, db_session: Session, incident: Incident) -> dict[str, str]:
    """Role -> who holds it, in role order."""
    rows = db_session.exec(
        select(IncidentRole).where(IncidentRole.incident_id == incident.id).order_by(col(IncidentRole.role))
    ).all()
    return {row.role: row.user for row in rows}


def set_role(
    *, db_session: Session, incident: Incident, role: str, user: str, actor: str, now: datetime,
    roles: tuple[str, ...],
) -> TimelineEntry:
    """Give someone a role of INCIDENT_ROLES; IncidentError for any other role."""
    if role not in roles:
        raise IncidentError(f"`{role[:30]}` is not an incident role. Roles: {', '.join(roles)}.")
    if incident.status == "resolved":
        raise IncidentError(f"Incident #{incident.id} is resolved; `/incident reopen` it first.")
    row = db_session.get(IncidentRole, (incident.id, role))
    if row is not None and row.user == user:
        raise IncidentError(f"<@{user}> already holds {role}.")
    old = row.user if row is not None else None
    if row is None:
        row = IncidentRole(incident_id=incident.id, role=role, user=user)
    row.user = user
    db_session.add(row)
    return add_entry(db_session=db_session, incident=incident, at=now, actor=actor, kind="role",
                     text=f"Role {role}: <@{user}>", old=old, new=user)


def post_update(*, db_session: Session, incident: Incident, text: str, actor: str, now: datetime) -> TimelineEntry:
    """A stakeholder update; it counts as an update for the status nudges."""
    check_length(text, what="update")
    if incident.status == "resolved":
        raise IncidentError(f"Incident #{incident.id} is resolved; `/incident reopen` it first.")
    incident.last_update_at = now
    incident.nudges = 0
    db_session.add(incident)
    return add_entry(db_session=db_session, incident=incident, at=now, actor=actor, kind="update", text=text)


def reopen(*, db_session: Session, incident: Incident, actor: str, now: datetime) -> TimelineEntry:
    """Back to investigating, within 7 days of resolving; IncidentError otherwise."""
    if incident.status != "resolved" or incident.resolved_at is None:
        raise IncidentError(f"Incident #{incident.id} is not resolved; there is nothing to reopen.")
    if now - incident.resolved_at > REOPEN_WITHIN:
        raise IncidentError(
            f"Incident #{incident.id} was resolved on {incident.resolved_at:%Y-%m-%d}, more than 7 days ago; "
            "declare a new one."
        )
    incident.status = "investigating"
    incident.resolved_at = None
    incident.last_update_at = now
    incident.nudges = 0
    db_session.add(incident)
    return add_entry(db_session=db_session, incident=incident, at=now, actor=actor, kind="reopened",
                     text="Reopened: status resolved → investigating", old="resolved", new="investigating")


@lru_cache(maxsize=4096)  # the recent titles are compared again on every declaration
def comparable(title: str) -> str:
    """A title as the duplicate guard compares it: folded to lower-case ASCII, without
    punctuation, severity words or extra spaces."""
    text = unicodedata.normalize("NFKD", plain(title)).encode("ascii", "ignore").decode().lower()
    text = _SEVERITY_WORDS.sub(" ", text)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(_SEVERITY_WORDS.sub(" ", text).split())


_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
# Built once, two columns on a plain connection: this read is on every declaration's acknowledgement.
_RECENT_TITLES = (
    core_select(_INCIDENTS.c.id, _INCIDENTS.c.title)
    .where(_INCIDENTS.c.status.in_(OPEN), _INCIDENTS.c.declared_at >= bindparam("since"))
    .where(_INCIDENTS.c.private.is_(False))
    .order_by(_INCIDENTS.c.id.desc())
    .limit(DUPLICATE_CANDIDATES)
)


def find_duplicate(*, connection: Connection, title: str, now: datetime) -> tuple[int, str] | None:
    """(number, title) of an open, not private incident declared in the last 30 minutes whose
    title is the same as this one, or contains it, or is contained in it (as `comparable` sees them)."""
    key = comparable(title)
    if not key:
        return None
    for number, title_of in connection.execute(_RECENT_TITLES, {"since": now - DUPLICATE_WITHIN}):
        other = comparable(title_of)
        if other and (f" {other} " in f" {key} " or f" {key} " in f" {other} "):  # whole words
            return number, title_of
    return None


def visible_to(*, db_session: Session, incident: Incident, user_id: str | None) -> bool:
    """A private incident is shown only to its channel's members (and its commander and declarer)."""
    if not incident.private:
        return True
    if user_id is None:
        return False
    if user_id in (incident.commander, incident.declarer):
        return True
    return bool(incident.channel_id) and db_session.get(ChannelMember, (incident.channel_id or "", user_id)) is not None
