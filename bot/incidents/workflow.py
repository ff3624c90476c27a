"""Roles, stakeholder updates, reopening and the duplicate guard: service functions that take
an explicit db_session and plain values, like bot.incidents.service."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Connection, bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from bot.incidents.commands import OPEN
from bot.incidents.service import (
    DUPLICATE_WITHIN,
    IncidentError,
    add_entry,
    check_length,
    comparable,
    key_parts,
)
from bot.models import ChannelMember, Incident, IncidentKeySuffix, IncidentRole, TimelineEntry
from bot.storage import DriverStatement

REOPEN_WITHIN = timedelta(days=7)


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


_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
_SUFFIXES = IncidentKeySuffix.__table__  # type: ignore[attr-defined]
# Looked up by index, so a declaration's acknowledgement costs the same however many incidents
# are open. Two statements: the suffix index alone finds the candidates (those whose whole key
# is a run of the new key's words, or that have a suffix starting with the new key); a join
# let PostgreSQL walk every open incident and probe the suffixes of each, 0.5 s at 2,000 open;
# so did an ORDER BY of the candidates. The newest CANDIDATES are read: a short title may be
# inside hundreds of the window's titles.
CANDIDATES = 200


@lru_cache(maxsize=128)
def _candidates(parts: int) -> DriverStatement:
    """The first statement, for a key of that many runs of words; every declaration runs it."""
    return DriverStatement(
        f"SELECT DISTINCT incident_id FROM {_SUFFIXES.name} "
        f"WHERE suffix IN ({', '.join('?' * parts)}) OR (suffix >= ? AND suffix < ?)"
    )

_NEWEST_OPEN = (
    core_select(_INCIDENTS.c.id, _INCIDENTS.c.title)
    .where(_INCIDENTS.c.id.in_(bindparam("ids", expanding=True)))
    .where(_INCIDENTS.c.status.in_(OPEN), _INCIDENTS.c.declared_at >= bindparam("since"))
    .where(_INCIDENTS.c.private.is_(False))
    .order_by(_INCIDENTS.c.id.desc())
    .limit(1)
)


def find_duplicate(*, connection: Connection, title: str, now: datetime) -> tuple[int, str] | None:
    """(number, title) of the newest open, not private incident declared in the last 30 minutes
    whose title is the same as this one, or contains it, or is contained in it (as `comparable`
    sees them: whole words)."""
    key = comparable(title)
    if not key:
        return None
    parts = key_parts(key)
    # the suffixes starting with the key and a space ("!" follows " ")
    found = _candidates(len(parts)).rows(connection, (*parts, f"{key} ", f"{key}!"))
    if not found:
        return None
    newest = sorted((row[0] for row in found), reverse=True)[:CANDIDATES]
    row = connection.execute(_NEWEST_OPEN, {"ids": newest, "since": now - DUPLICATE_WITHIN}).first()
    return (row[0], row[1]) if row is not None else None


def visible_to(*, db_session: Session, incident: Incident, user_id: str | None) -> bool:
    """A private incident is shown only to its channel's members (and its commander and declarer)."""
    if not incident.private:
        return True
    if user_id is None:
        return False
    if user_id in (incident.commander, incident.declarer):
        return True
    return bool(incident.channel_id) and db_session.get(ChannelMember, (incident.channel_id or "", user_id)) is not None
