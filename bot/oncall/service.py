"""Who is on call, when: every view asks here. The answer comes from the rotation files (with
the people file's time off) and what was changed in Slack (overrides, time off), through the
schedule engine's one resolution (`bot.schedule.shifts_between`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, bindparam
from sqlmodel import Session, col, select

from bot.models import AwayRecord, OverrideRecord
from bot.schedule import (
    Away,
    Override,
    Rotation,
    Shift,
    default_rotation,
    handoff_instants,
    shifts_between,
    who_is_on_call,
)
from bot.schedule.engine import LONGEST_EXACT_SPAN
from bot.storage import Storage, announce, connection_of


class OncallError(Exception):
    """A request about rotations that cannot be answered; the message is for the user."""


class Directory(Protocol):
    """Who people are (bot.slack.people.People asks Slack)."""

    def resolve(self, member: str) -> str:
        """A rotation member (a user ID or an e-mail address) as a user ID."""
        ...

    def tz(self, user_id: str) -> str:
        """The person's IANA time zone (the people file's, else Slack's profile)."""
        ...


def find_rotation(rotations: dict[str, Rotation], name: str | None) -> Rotation:
    """The named rotation, or the default one; OncallError naming the choices otherwise."""
    if name is None:
        rotation = default_rotation(rotations)
        if rotation is None:
            raise OncallError(
                "No default rotation is set; name one: " + (", ".join(sorted(rotations)) or "(none)")
            )
        return rotation
    rotation = rotations.get(name)
    if rotation is None:
        known = ", ".join(sorted(rotations)) or "none are configured"
        raise OncallError(f"There is no rotation `{name}` (known: {known}).")
    return rotation


@dataclass(frozen=True)
class Adjustments:
    """What was changed in Slack for one rotation: stored overrides (applied after the file's
    own) and members' stored time off (with the people file's, which rides on the rotation)."""

    overrides: tuple[Override, ...] = ()
    away: Mapping[str, tuple[Away, ...]] = field(default_factory=dict)


NOTHING = Adjustments()


# Built once: every /oncall and every declaration runs it, and building and compiling a
# statement each time cost more than running it.
_STORED_OVERRIDES = (
    select(OverrideRecord.rotation, OverrideRecord.user, OverrideRecord.start, OverrideRecord.end)
    .where(col(OverrideRecord.rotation).in_(bindparam("rotations", expanding=True)))
    .order_by(col(OverrideRecord.id))
)


def adjustments_of(*, db_session: Session | Connection, rotations: list[Rotation]) -> dict[str, Adjustments]:
    """What was changed in Slack for each rotation, by name, from one query each for overrides
    and time off. A plain connection (Storage.connect) does for a session."""
    connection = connection_of(db_session)
    stored = _stored_overrides(connection, tuple(rotation.name for rotation in rotations))
    away = _stored_away(connection, rotations)
    return {
        rotation.name: Adjustments(stored[rotation.name], {m: away[m] for m in rotation.members if m in away})
        for rotation in rotations
    }


def _stored_away(connection: Connection, rotations: list[Rotation]) -> dict[str, tuple[Away, ...]]:
    """Members' time off set in Slack, by member (their Slack user ID)."""
    return stored_away(connection, {m for rotation in rotations for m in rotation.members})


_STORED_AWAY = (
    select(AwayRecord.id, AwayRecord.user, AwayRecord.start, AwayRecord.end)
    .where(col(AwayRecord.user).in_(bindparam("users", expanding=True)))
    .order_by(col(AwayRecord.start))
)


def stored_away(connection: Connection, users: Iterable[str] | None = None) -> dict[str, tuple[Away, ...]]:
    """Time off set in Slack (`/oncall away`), by user, oldest first; everyone's without users."""
    statement = _STORED_AWAY if users is not None else select(
        AwayRecord.id, AwayRecord.user, AwayRecord.start, AwayRecord.end).order_by(col(AwayRecord.start))
    found: dict[str, list[Away]] = {}
    for ident, user, start, end in connection.execute(statement, {"users": sorted(users)} if users is not None else {}):
        found.setdefault(user, []).append(Away(start, end, id=ident))
    return {user: tuple(periods) for user, periods in found.items()}


def _stored_overrides(connection: Connection, names: tuple[str, ...]) -> dict[str, tuple[Override, ...]]:
    """The stored overrides of each named rotation, oldest first."""
    stored: dict[str, list[Override]] = {name: [] for name in names}
    for name, user, start, end in connection.execute(_STORED_OVERRIDES, {"rotations": list(names)}):
        stored[name].append(Override(user=user, start=start, end=end))
    return {name: tuple(found) for name, found in stored.items()}


# Announced in every transaction that adds or removes an override or time off, so that
# processes keeping a copy of them (AdjustmentsCache) read again.
CHANGES_CHANNEL = "oncall_bot_changes"


class AdjustmentsCache:
    """Stored adjustments kept between changes, for the hot paths (/oncall, a declaration's
    on-call lookup): the copy is used until the storage's notifications say an override or
    time off was added or removed (PostgreSQL's LISTEN/NOTIFY, or SQLite's shared note), and
    at most KEEP_SECONDS in any case."""

    KEEP_SECONDS = 30.0  # should a writer ever fail to announce its change

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, ...], tuple[int, float, dict[str, Adjustments]]] = {}

    def of(self, rotations: list[Rotation]) -> dict[str, Adjustments]:
        """adjustments_of the rotations, from the copy when nothing changed since it was read."""
        notifications = self.storage.notifications
        # Asked before reading: a change announced meanwhile makes the next call read again.
        generation = None if notifications is None else notifications.generation(CHANGES_CHANNEL)
        names = tuple(rotation.name for rotation in rotations)
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(names)
        if generation is None or kept is None or kept[0] != generation or now - kept[1] > self.KEEP_SECONDS:
            with self.storage.connect() as connection:
                stored = adjustments_of(db_session=connection, rotations=rotations)
            if generation is not None:
                with self._lock:
                    self._kept[names] = (generation, now, stored)
        else:
            stored = kept[2]
        return stored


_kept: WeakKeyDictionary[Storage, AdjustmentsCache] = WeakKeyDictionary()
_kept_lock = threading.Lock()


def cached_adjustments(storage: Storage) -> AdjustmentsCache:
    """The process's copy of the stored adjustments of that database."""
    with _kept_lock:
        kept = _kept.get(storage)
        if kept is None:
            kept = _kept[storage] = AdjustmentsCache(storage)
        return kept


def announce_change(db_session: Session) -> None:
    """Tell every process, once the session commits, that overrides or time off changed."""
    announce(db_session, CHANGES_CHANNEL)


def adjustments(*, db_session: Session | Connection, rotation: Rotation) -> Adjustments:
    """What was changed in Slack for one rotation."""
    return adjustments_of(db_session=db_session, rotations=[rotation])[rotation.name]


class _ShiftMemo:
    """The last shift found per rotation: any instant inside it, with the same rotation and
    overrides, has the same answer, so repeated questions skip the schedule engine."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[Rotation, Adjustments, Shift]] = {}

    def on_call_at(self, rotation: Rotation, at: datetime, found: Adjustments) -> Shift:
        with self._lock:
            kept = self._last.get(rotation.name)
        if kept is not None:
            kept_rotation, kept_overrides, shift = kept
            if kept_rotation is rotation and shift.start <= at < shift.end and kept_overrides == found:
                return shift
        shift = who_is_on_call(rotation, at, found.overrides, found.away)
        if shift.end - shift.start < LONGEST_EXACT_SPAN:  # longer ones may be cut to the search span
            with self._lock:
                self._last[rotation.name] = (rotation, found, shift)
        return shift


_memo = _ShiftMemo()


def shift_at(rotation: Rotation, at: datetime, found: Adjustments) -> Shift:
    """The effective shift containing at, given what was changed in Slack (adjustments_of)."""
    return _memo.on_call_at(rotation, at, found)


def on_call_at(*, db_session: Session | Connection, rotation: Rotation, at: datetime) -> Shift:
    """Whoever holds the pager of the rotation at an instant."""
    return shift_at(rotation, at, adjustments(db_session=db_session, rotation=rotation))


def shifts_from(rotation: Rotation, start: datetime, end: datetime, found: Adjustments) -> list[Shift]:
    """The effective shifts over [start, end), the first with its real start."""
    listed = shifts_between(rotation, start, end, found.overrides, found.away)
    if listed:
        listed[0] = listed[0]._replace(start=shift_at(rotation, start, found).start)
    return listed


def shifts(*, db_session: Session | Connection, rotation: Rotation, start: datetime, days: int) -> list[Shift]:
    """The effective shifts from `start` for `days` days, clipped to them."""
    found = adjustments(db_session=db_session, rotation=rotation)
    return shifts_between(rotation, start, start + timedelta(days=days), found.overrides, found.away)


def shifts_of(
    rotation: Rotation, found: Adjustments, is_them: Callable[[str], bool], *, after: datetime,
    limit: int = 5, days: int = 90,
) -> list[Shift]:
    """Someone's shifts that have not ended by `after` within `days` (overrides and cover
    included, the one under way with its real start); is_them tells their user names apart."""
    return [s for s in shifts_from(rotation, after, after + timedelta(days=days), found) if is_them(s.user)][:limit]


def handoffs(rotation: Rotation, start: datetime, end: datetime, found: Adjustments) -> list[tuple[datetime, str]]:
    """(instant, incoming region) of each change of hands in (start, end]."""
    return [(at, shift_at(rotation, at, found).region)
            for at in handoff_instants(rotation, start, end, found.overrides, found.away)]


def is_member(rotation: Rotation, user: str) -> bool:
    """True when the user is one of the rotation's members in any region."""
    return any(user in region.members for region in rotation.regions)


def add_override(
    *, db_session: Session, rotation: Rotation, user: str, start: datetime, end: datetime,
    actor: str, now: datetime, reason: str = "override",
) -> OverrideRecord:
    """Put `user` on call from start to end; only the rotation's members may do it."""
    if not is_member(rotation, actor):
        raise OncallError(f"Only members of `{rotation.name}` may change who is on call there.")
    if end <= start:
        raise OncallError("The override must end after it starts.")
    if end - start > timedelta(days=31):
        raise OncallError("An override lasts at most 31 days.")
    if end <= now:
        raise OncallError("That override would be entirely in the past.")
    record = OverrideRecord(
        rotation=rotation.name, user=user, start=start, end=end, created_by=actor, created_at=now,
        reason=reason,
    )
    db_session.add(record)
    db_session.flush()
    announce_change(db_session)
    return record


def remove_override(*, db_session: Session, rotations: dict[str, Rotation], override_id: int, actor: str) -> OverrideRecord:
    """Delete a stored override; only members of its rotation may."""
    record = db_session.get(OverrideRecord, override_id)
    if record is None:
        raise OncallError(f"There is no override #{override_id}.")
    rotation = rotations.get(record.rotation)
    if rotation is not None and not is_member(rotation, actor):
        raise OncallError(f"Only members of `{record.rotation}` may remove its overrides.")
    db_session.delete(record)
    announce_change(db_session)
    return record


def list_overrides(*, db_session: Session, rotation: Rotation, after: datetime) -> list[OverrideRecord]:
    return list(
        db_session.exec(
            select(OverrideRecord)
            .where(OverrideRecord.rotation == rotation.name, OverrideRecord.end > after)
            .order_by(col(OverrideRecord.start))
        ).all()
    )
