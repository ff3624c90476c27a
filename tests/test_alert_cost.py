"""What an alert notification costs: its alerts' markers in one statement, and a repeat answered
from a read while another writer holds the write lock (an alert storm must not queue behind
itself, nor declarations behind it)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager

import psycopg
from sqlalchemy import event

from tests.test_alerts import JSON, alertmanager, am_alert, am_payload

ALERTS = [am_alert(instance=f"checkout-{i}") for i in range(99)]


def test_the_markers_of_a_notifications_alerts_are_claimed_in_one_statement(bot):
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CLAIM"):
            statements.append(statement)

    event.listen(bot.rt.storage.engine, "before_cursor_execute", seen)
    try:
        reply = alertmanager(bot, *ALERTS)
    finally:
        event.remove(bot.rt.storage.engine, "before_cursor_execute", seen)
    assert reply.json()["action"] == "declared"
    assert len(statements) <= 3, statements  # the group's marker, then every alert's in one


@contextmanager
def write_lock_held(bot):
    """Another connection holds the database's write lock (SQLite's, or every write on the
    counter table PostgreSQL serialises a group's notifications on) until the block ends."""
    url = bot.rt.storage.url
    if url.startswith("sqlite"):
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        holder = psycopg.connect(url)
        holder.execute("LOCK TABLE counter IN EXCLUSIVE MODE")  # reads go on, writes wait
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_repeated_notification_is_answered_while_another_writer_holds_the_lock(bot):
    first = alertmanager(bot, *ALERTS).json()
    assert first["action"] == "declared"
    answers: list = []
    with write_lock_held(bot):
        started = time.monotonic()
        body = json.dumps(am_payload(*ALERTS))  # posted without settling: that writes
        repeat = threading.Thread(target=lambda: answers.append(bot.post("/alerts/alertmanager", body, JSON)))
        repeat.start()
        repeat.join(5)
        assert answers, "the repeat waited for the write lock"
        assert time.monotonic() - started < 2
    assert answers[0].json() == {"ok": True, "action": "duplicate", "incident": first["incident"], "paged": [],
                                 "warnings": []}


def test_a_changed_notification_of_the_same_group_still_acts(bot):
    alertmanager(bot, *ALERTS)
    reply = alertmanager(bot, *ALERTS, am_alert(instance="checkout-new")).json()
    assert reply["action"] == "attached"
