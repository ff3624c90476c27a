"""Outbox tasks: what is owed, recorded in the caller's transaction, and the statements the
worker runs on the table (bot/outbox/worker.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, update
from sqlmodel import Session, select

from bot.models import OutboxTask
from bot.storage import DriverStatement, connection_of, driver_time

# Run before any other due task, when Slack's rate limits make tasks wait: a declaration, its
# page and its channel's first setup go before topics, pins, summary edits and broadcasts.
FIRST = frozenset({"incident.declare", "incident.open", "page.send"})
PAGE, SETUP = "page.send", "incident.setup"  # a channel's topic, summary and pin wait for earlier pages
# A page still pending this long after it was made (stuck in retries) holds no setup back.
PAGE_HOLD = timedelta(minutes=10)
# Starts the last error of a task put back by a rate limit, which Slack refused: the retry is
# no repeat (bot/slack/repeats.py) and looks for no earlier post, which would cost a history call.
WAITED = "waited for a slot: "
# Edits of one message that each show the latest state: one run covers the others pending.
COALESCED = frozenset({"incident.refresh", "page.refresh"})


# The outbox table, for Core statements here and wherever a task is recorded with other rows.
TASKS = OutboxTask.__table__
_PAGES = TASKS.alias("pages")
# The rest of a channel's setup waits while a page made before it is pending, so every page DM
# goes before a later incident's topic and pin. The oldest pending page is looked up once per
# query (not per task): a backlog of thousands stays one index scan.
_OLDEST_PAGE = (
    select(func.min(_PAGES.c.created_at))
    .where(_PAGES.c.status == "pending", _PAGES.c.kind == PAGE, _PAGES.c.created_at > bindparam("pages_since"))
    .scalar_subquery()
)
_NOT_BEHIND_A_PAGE = or_(TASKS.c.kind != SETUP, _OLDEST_PAGE.is_(None), TASKS.c.created_at <= _OLDEST_PAGE)
# Built once: the clock runs them for every task.
DUE = (
    select(TASKS.c.id)
    .where(TASKS.c.status == "pending", TASKS.c.next_attempt_at <= bindparam("now"), _NOT_BEHIND_A_PAGE)
    .where(or_(TASKS.c.lease_until.is_(None), TASKS.c.lease_until < bindparam("now")))
    .where(TASKS.c.kind.in_(bindparam("kinds", expanding=True)))  # others are for other processes
    # Pages and first setups first (FIRST); then longest due: a dead process's tasks, and what
    # they queue (dated from the declaration), go before work that came due since; on a tie the
    # rest of a setup goes first, so a channel's summary comes before the posts queued with it.
    .order_by(TASKS.c.priority, TASKS.c.next_attempt_at, TASKS.c.kind != SETUP, TASKS.c.id)
    .limit(bindparam("limit"))
)
ANY_DUE = (
    select(TASKS.c.id)
    .where(TASKS.c.status == "pending", TASKS.c.next_attempt_at <= bindparam("now"), _NOT_BEHIND_A_PAGE)
    .limit(1)
)
INSERT_TASK = insert(TASKS)  # every declaration runs it
CLAIM = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), TASKS.c.status == "pending")
    .where(or_(TASKS.c.lease_until.is_(None), TASKS.c.lease_until < bindparam("now")))
    .values(lease_until=bindparam("until"), attempts=TASKS.c.attempts + 1)
    .returning(TASKS.c.kind, TASKS.c.payload, TASKS.c.attempts, TASKS.c.created_at, TASKS.c.last_error)
)
# Extends the leases of the tasks this Outbox holds; one whose outcome is written has none left.
RENEW = (
    update(TASKS)
    .where(TASKS.c.id.in_(bindparam("ids", expanding=True)), TASKS.c.status == "pending")
    .where(TASKS.c.lease_until.is_not(None))
    .values(lease_until=bindparam("until"))
)
# The same edit pending again: the task just claimed reads the state after all of them.
COALESCE = (
    update(TASKS)
    .where(TASKS.c.kind == bindparam("same_kind"), TASKS.c.payload == bindparam("same_payload"))
    .where(TASKS.c.status == "pending", TASKS.c.id != bindparam("task_id"))
    .where(or_(TASKS.c.lease_until.is_(None), TASKS.c.lease_until < bindparam("now")))
    .values(status="done", last_error="coalesced")
)


class PermanentError(Exception):
    """A task that can never succeed; it is marked failed at once and reported."""


class Waiting(Exception):
    """A task that needs another task's work first (its incident's channel): put back for
    `seconds` without counting an attempt, for at most WAIT_GIVE_UP after it was made."""

    def __init__(self, message: str, seconds: float = 5.0) -> None:
        super().__init__(message)
        self.seconds = seconds


def enqueue(session: Session | Connection, kind: str, payload: dict[str, Any], *, now: datetime) -> None:
    """Record a side effect in the caller's transaction (a session or a plain connection); it
    runs after the commit."""
    # a plain INSERT at once: no ORM object for the flush to track
    connection_of(session).execute(INSERT_TASK, task_row(kind, payload, now))


def enqueue_many(connection: Connection, kind: str, payloads: list[dict[str, Any]], *, now: datetime) -> None:
    """enqueue for several payloads of one kind, in one statement (the declarations' hot path)."""
    at = driver_time(connection, now)
    _INSERT_TASKS.run_many(connection, [tuple(task_row(kind, payload, at).values()) for payload in payloads])


def task_row(kind: str, payload: dict[str, Any], now: object) -> dict[str, Any]:
    """A new task's column values, in _INSERT_TASKS's order: pending, due at once. `now` as the
    executor takes it: an aware datetime through SQLAlchemy, driver_time's to a driver."""
    return {"kind": kind, "payload": json.dumps(payload), "status": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now, "priority": 0 if kind in FIRST else 1}


_COLUMNS = tuple(task_row("", {}, None))
_INSERT_TASKS = DriverStatement(
    f"INSERT INTO {TASKS.name} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
