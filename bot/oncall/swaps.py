"""Swaps and takeovers between members of a rotation, made of stored overrides (so every view
shows them): a swap is offered to the other person, who accepts or declines; an admin of the
rotation swaps two others at once; taking someone's next shift needs nobody's yes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlmodel import Session

from bot.jobs.scheduler import claim
from bot.models import OverrideRecord
from bot.oncall import service as oncall
from bot.oncall.service import OncallError
from bot.schedule import Rotation, Shift


@dataclass(frozen=True)
class Turn:
    """A member's next shift on a rotation, [start, end) in UTC."""

    user: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SwapOffer:
    """`offered_by` gives their next turn to `offered_to` and takes theirs in return."""

    rotation: str
    offered_by: Turn
    offered_to: Turn

    def to_value(self) -> str:
        """The offer as a button value (Slack signs the payload that brings it back)."""
        return json.dumps(asdict(self), default=datetime.isoformat, separators=(",", ":"))

    @classmethod
    def from_value(cls, value: str) -> SwapOffer:
        """The offer a button carries; OncallError when it is not one."""
        try:
            data = json.loads(value)
            turns = [Turn(t["user"], datetime.fromisoformat(t["start"]), datetime.fromisoformat(t["end"]))
                     for t in (data["offered_by"], data["offered_to"])]
            return cls(str(data["rotation"]), *turns)
        except (ValueError, KeyError, TypeError):
            raise OncallError("That button is not one of mine.") from None


def member_named(rotation: Rotation, user: str, resolve: Callable[[str], str]) -> str:
    """The rotation's member who is `user` (members may be written as e-mail addresses)."""
    member = next((m for m in rotation.members if resolve(m) == user), None)
    if member is None:
        raise OncallError(f"<@{user}> is not a member of `{rotation.name}`.")
    return member


def next_turn(*, db_session: Session, rotation: Rotation, member: str, user: str, after: datetime,
              under_way: bool = False) -> Turn:
    """The member's next turn of their own (not held by override or as cover) that starts after
    `after`, or with under_way the one they hold now, from `after` on."""
    found = oncall.adjustments(db_session=db_session, rotation=rotation)
    mine = [s for s in oncall.shifts_of(rotation, found, lambda u: u == member, after=after, limit=20)
            if not s.is_override and not s.covering_for and (under_way or s.start > after)]
    if not mine:
        raise OncallError(f"<@{user}> has no upcoming shift on `{rotation.name}` in the next 90 days.")
    first: Shift = mine[0]
    return Turn(user, max(first.start, after), first.end)


def offer_swap(*, db_session: Session, rotation: Rotation, asker: str, other: str, now: datetime,
               resolve: Callable[[str], str]) -> SwapOffer:
    """What `asker` offers `other`: their two next turns exchanged."""
    if asker == other:
        raise OncallError("A swap needs someone else.")
    mine = next_turn(db_session=db_session, rotation=rotation, member=member_named(rotation, asker, resolve),
                     user=asker, after=now)
    theirs = next_turn(db_session=db_session, rotation=rotation, member=member_named(rotation, other, resolve),
                       user=other, after=now)
    return SwapOffer(rotation.name, mine, theirs)


def exchange(*, db_session: Session, rotation: Rotation, offer: SwapOffer, actor: str, now: datetime
             ) -> tuple[OverrideRecord, OverrideRecord]:
    """Make the swap: each takes the other's turn, as two stored overrides. Once per offer;
    OncallError when it was already made or a turn has started meanwhile."""
    for turn in (offer.offered_by, offer.offered_to):
        if turn.start < now:
            raise OncallError(f"<@{turn.user}>'s shift has already started; offer a new swap.")
    if not claim(db_session, f"swap:{offer.to_value()}", now):
        raise OncallError("That swap was already answered.")
    a, b = offer.offered_by, offer.offered_to
    return (
        _override(db_session, rotation, b.user, a, actor, now, f"swap with {a.user}"),
        _override(db_session, rotation, a.user, b, actor, now, f"swap with {b.user}"),
    )


def decline(*, db_session: Session, offer: SwapOffer, now: datetime) -> None:
    """The offer is turned down; a later press of Accept changes nothing."""
    if not claim(db_session, f"swap:{offer.to_value()}", now):
        raise OncallError("That swap was already answered.")


def is_admin(rotation: Rotation, user: str) -> bool:
    return user in rotation.admins


def _override(db_session: Session, rotation: Rotation, user: str, turn: Turn, actor: str, now: datetime,
              reason: str) -> OverrideRecord:
    record = OverrideRecord(rotation=rotation.name, user=user, start=turn.start, end=turn.end, created_by=actor,
                            created_at=now, reason=reason)
    db_session.add(record)
    db_session.flush()
    oncall.announce_change(db_session)
    return record
