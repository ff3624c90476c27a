"""SQLite specifics: the write lock taken up front with short polls, and change notes in a file
every process maps."""

from __future__ import annotations

import mmap
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_Note = TypeVar("_Note")


def shared_memory(path: str | Path, size: int) -> mmap.mmap:
    """size bytes of the file at path (made, zero-filled, when missing), mapped so that every
    process that maps the file sees the same bytes."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(descriptor).st_size < size:
            os.ftruncate(descriptor, size)
        return mmap.mmap(descriptor, size)
    finally:
        os.close(descriptor)


def beside_database(kind: Callable[[str], _Note], database: str | None, suffix: str) -> _Note | None:
    """kind made on the file <database>-<suffix>, beside a SQLite database file; None for an
    in-memory database or a folder where the file cannot be made."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    try:
        return kind(f"{database}-{suffix}")
    except OSError:
        return None


class SharedChanges:
    """Notifications for SQLite, whose processes share a host: 8 bytes in a file beside the
    database that every process maps, rewritten with a fresh random value by `changed`, which
    announce calls in the writing process after its commit (random, not a count: two processes
    writing at once cannot both leave the value a reader already saw)."""

    def __init__(self, path: str) -> None:
        self._shared = shared_memory(path, 8)

    def generation(self, channel: str) -> int | None:
        """The value now: it changes whenever any process committed an announced change."""
        return int.from_bytes(self._shared[:8], "little")

    def changed(self) -> None:
        """This process just committed a change to rows that others keep copies of."""
        self._shared[:8] = os.urandom(8)

    def close(self) -> None:
        """Nothing to let go: the mapping lasts as long as the process."""


SQLITE_BUSY_TIMEOUT_MS = 30000
WRITE_LOCK_POLL_SECONDS = 0.001


def begin_immediate(connection: sqlite3.Connection) -> None:
    """Take SQLite's write lock, looking again every millisecond while another process holds
    it. SQLite's own busy handler sleeps longer and longer between its looks (up to 100 ms), so
    a writer often waited well past the moment the lock was free."""
    connection.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    try:
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(WRITE_LOCK_POLL_SECONDS)
    finally:  # every other statement keeps SQLite's own patience
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
