"""PostgreSQL specifics: a connection of this process's own, outside the pool, for LISTEN/NOTIFY
change notifications, and the pool's ping of idle connections."""

from __future__ import annotations

import os
import threading
import time
from contextlib import suppress
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

# A connection back in use within this many seconds is trusted; an older one is pinged first
# (a database restart or a dropped connection then costs no request), without a round trip
# on every checkout of a busy pool as pool_pre_ping would.
TRUST_IDLE_SECONDS = 5.0


def note_checkin(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    record.info["checked_in"] = time.monotonic()


def ping_if_idle(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
    if time.monotonic() - record.info.get("checked_in", 0.0) < TRUST_IDLE_SECONDS:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as exc:  # the pool drops this connection and checks out another
        raise DisconnectionError(f"connection idle since before the database went away: {exc}") from exc


class _OwnConnection:
    """A PostgreSQL connection of this process's own, outside the pool, in autocommit: made on
    first use, made again after a fork (a child never touches its parent's socket) and after
    an error. Subclasses use it under self._lock."""

    def __init__(self, engine: Engine) -> None:
        self._url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._connection: Any = None
        self._pid = 0

    def _connected(self) -> tuple[Any, bool]:
        """The connection, and whether it was just made."""
        import psycopg  # here: a SQLite installation never loads libpq (~12 MiB per process)

        if self._connection is not None and not self._connection.closed and self._pid == os.getpid():
            return self._connection, False
        self._drop()
        self._connection = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        self._pid = os.getpid()
        return self._connection, True

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            import psycopg

            with suppress(psycopg.Error):  # already broken: nothing more to do
                self._connection.close()
        self._connection = None


class Notifications(_OwnConnection):
    """Which rarely changed rows may have changed since this process last read them, from
    PostgreSQL's LISTEN/NOTIFY: a writer sends NOTIFY in its transaction (delivered at commit)
    and every process listens on a connection of its own, which `generation` polls without a
    round trip. The generation moves on with every notification and whenever the listening
    connection is made again (what happened while it was down is unknown); None means it
    cannot listen now, and nothing should be kept."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._channels: set[str] = set()
        self._generation = 0

    def generation(self, channel: str) -> int | None:
        """A number that stays the same while nothing was announced on channel; None when
        this process cannot listen (the database is away)."""
        import psycopg

        with self._lock:
            try:
                connection, new = self._connected()
                if new:  # a forked worker listens on its own connection
                    self._channels = set()
                    self._generation += 1
                if channel not in self._channels:
                    connection.execute(f'LISTEN "{channel}"')
                    self._channels.add(channel)
                    self._generation += 1
                for _ in connection.notifies(timeout=0):
                    self._generation += 1
                return self._generation
            except psycopg.Error:
                self._drop()
                return None

    def changed(self) -> None:
        """This process just committed a change it announced (announce calls this after the
        commit): do not wait for the echo."""
        with self._lock:
            self._generation += 1
