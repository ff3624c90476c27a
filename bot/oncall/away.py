"""Time away: the periods people set in Slack (`/oncall away`), and all of a person's periods
with the people file's merged in."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlmodel import Session, col, select

from bot.models import AwayRecord
from bot.oncall.service import OncallError, announce_change, stored_away
from bot.schedule.people import Away, Person
from bot.storage import connection_of

LONGEST_AWAY = timedelta(days=366)  # longer is likelier a typo in the year than a plan


def add_away(
    *, db_session: Session, user: str, start: datetime, end: datetime, now: datetime
) -> AwayRecord:
    """Save that user is away over [start, end). OncallError, with nothing saved, when the
    period ends before it starts, has already ended, lasts more than LONGEST_AWAY or overlaps
    another period of theirs set in Slack."""
    if end <= start:
        raise OncallError("That away period ends before it starts; nothing was saved.")
    if end <= now:
        raise OncallError("That away period has already ended; nothing was saved.")
    if end - start > LONGEST_AWAY:
        raise OncallError(
            f"An away period lasts at most {LONGEST_AWAY.days} days; nothing was saved. "
            "Add the rest as another period."
        )
    clash = db_session.exec(
        select(AwayRecord)
        .where(AwayRecord.user == user, col(AwayRecord.start) < end, col(AwayRecord.end) > start)
        .order_by(col(AwayRecord.start))
    ).first()
    if clash is not None:
        raise OncallError(
            f"That overlaps your away period #{clash.id}; nothing was saved. Remove it first "
            f"(`/oncall away remove {clash.id}`) or choose times around it."
        )
    record = AwayRecord(user=user, start=start, end=end, created_at=now)
    db_session.add(record)
    db_session.flush()
    announce_change(db_session)
    return record


def remove_away(*, db_session: Session, away_id: int, actor: str) -> AwayRecord:
    """Delete a stored away period; only the person away may."""
    record = db_session.get(AwayRecord, away_id)
    if record is None:
        raise OncallError(f"There is no away period #{away_id}.")
    if record.user != actor:
        raise OncallError(
            f"Away period #{away_id} is someone else's: only the person away can remove it."
        )
    db_session.delete(record)
    announce_change(db_session)
    return record


def list_away(*, db_session: Session, user: str, after: datetime) -> list[AwayRecord]:
    """The user's stored away periods that end after an instant, earliest first."""
    return list(
        db_session.exec(
            select(AwayRecord)
            .where(AwayRecord.user == user, col(AwayRecord.end) > after)
            .order_by(col(AwayRecord.start))
        ).all()
    )


def away_periods(
    *,
    db_session: Session | Connection,
    people_file: Mapping[str, Person] | None = None,
    users: Collection[str] | None = None,
    ending_after: datetime | None = None,
    resolve: Callable[[str], str] | None = None,
) -> dict[str, tuple[Away, ...]]:
    """Everyone's time away, by user: the people file's periods (id None) and those set in
    Slack (with their id), each person's sorted by start. They may overlap; merge_away joins
    them. Keys are Slack user IDs for periods set in Slack, and the people file's `user` as
    written, passed through resolve when given (so that an e-mail address becomes the user
    ID). users: only these keys; ending_after: only periods that end after that instant. A
    plain connection (Storage.connect) does for a session."""
    found: dict[str, list[Away]] = {}
    for person in (people_file or {}).values():
        user = resolve(person.user) if resolve is not None else person.user
        found.setdefault(user, []).extend(person.away)
    for user, stored in stored_away(connection_of(db_session), users).items():
        found.setdefault(user, []).extend(stored)
    periods_by_user: dict[str, tuple[Away, ...]] = {}
    for user, periods in found.items():
        kept = [p for p in periods if ending_after is None or p.end > ending_after]
        if kept and (users is None or user in users):
            periods_by_user[user] = tuple(sorted(kept, key=lambda p: (p.start, p.end)))
    return periods_by_user
