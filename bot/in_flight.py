"""Acknowledgements before background work, across processes.

Each web process (each gunicorn worker) notes how many Slack requests it is answering in a slot
of its own, 24 bytes of a small file that every process of the installation maps. The clock's
outbox, before each task, waits while requests are queuing, counted over every web process.
On a small host the clock's work for one declaration
(saving it, the channel, the page) competes with the acknowledgements of the next ones at any
scheduling priority, so it waits for a quiet moment. The wait is bounded, so a web
process that is never quiet slows the outbox but never stops it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.storage_sqlite import beside_database, shared_memory

# A web process's slot: whose it is (a random token), when it last took or finished a request
# (CLOCK_MONOTONIC, which all processes share), and how many it was answering then.
_SLOT = struct.Struct("qqq")


class RequestsInFlight:
    """How many Slack requests the web processes are answering, and since when, shared between
    processes: the clock's outbox waits while two or more are in flight (requests queuing,
    where an acknowledgement's latency is at stake). A single request, as when declarations
    come one at a time, does not hold the outbox back."""

    STALE_NS = 1_000_000_000  # a note this old was left by a web process that is gone (or idle)
    QUEUING = 2  # requests in flight at once that make the outbox wait
    MAX_WAIT_SECONDS = 0.05  # per outbox task, however busy the web stays
    POLL_SECONDS = 0.002
    SLOTS = 32  # web processes noted at once; one more goes unnoted until a slot is free

    def __init__(self, path: str | Path) -> None:
        self._shared = shared_memory(path, _SLOT.size * self.SLOTS)
        self.path = Path(path)
        self._lock = threading.Lock()
        self._in_flight = 0  # this process's requests
        self._token = 0  # our slot's owner mark, once one was taken
        self._slot: int | None = None
        self._descriptor, self._pid = -1, 0  # for the file lock, one per process

    @classmethod
    def of(cls, database_url: str) -> RequestsInFlight | None:
        """The note shared by the processes using that database: beside a SQLite file, else in
        the temporary folder under a name derived from the URL (password left out). None for
        an in-memory database or where the file cannot be made."""
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            return beside_database(cls, url.database, "in-flight")
        digest = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()
        try:
            return cls(Path(tempfile.gettempdir()) / f"oncall-bot-{digest[:16]}-in-flight")
        except OSError:
            return None

    @contextmanager
    def answering(self) -> Iterator[None]:
        """The web process is answering a request for the duration."""
        self._count(+1)
        try:
            yield
        finally:
            self._count(-1)

    def _count(self, change: int) -> None:
        with self._lock:
            self._in_flight += change
            kept = self._kept_slot() if self._pid == os.getpid() else None
            if kept is not None:
                # Writing our own slot needs no lock (and no system call, which under load
                # hands the interpreter to another thread); only taking a slot does. Should a
                # process take it as stale at this very moment, it finds our token in it at its
                # next request and takes another.
                self._note(kept)
                return
            try:
                with self._file_locked():
                    slot = self._own_slot()
                    if slot is not None:
                        self._note(slot)
            except OSError:  # a note is a courtesy to the clock: answering Slack goes on without it
                pass

    def _note(self, slot: int) -> None:
        _SLOT.pack_into(self._shared, slot * _SLOT.size, self._token, time.monotonic_ns(), self._in_flight)

    def _kept_slot(self) -> int | None:
        """Our slot while our token is still in it, else None."""
        if self._slot is None:
            return None
        token, _, _ = _SLOT.unpack_from(self._shared, self._slot * _SLOT.size)
        return self._slot if token == self._token else None

    def _own_slot(self) -> int | None:
        """Our slot (under the file lock): kept while our token is in it, else a free one or
        one whose note went stale; None while every slot is in use."""
        kept = self._kept_slot()
        if kept is not None:
            return kept
        now = time.monotonic_ns()
        for slot in range(self.SLOTS):
            token, noted_at, _ = _SLOT.unpack_from(self._shared, slot * _SLOT.size)
            if token == 0 or now - noted_at >= self.STALE_NS:
                self._slot, self._token = slot, secrets.randbits(62) + 1
                return slot
        self._slot = None
        return None

    @contextmanager
    def _file_locked(self) -> Iterator[None]:
        if self._pid != os.getpid():  # first use, or a forked worker: a lock and slot of its own
            self._descriptor, self._pid, self._slot = os.open(self.path, os.O_RDWR), os.getpid(), None
            weakref.finalize(self, os.close, self._descriptor)
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)

    def in_flight(self) -> int:
        """Requests the web processes are answering, by their fresh notes."""
        now, total = time.monotonic_ns(), 0
        for token, noted_at, count in _SLOT.iter_unpack(self._shared):
            if token and now - noted_at < self.STALE_NS:
                total += count
        return total

    def busy(self) -> bool:
        """Whether requests are queuing in the web processes now."""
        return self.in_flight() >= self.QUEUING

    def wait_until_quiet(self) -> float:
        """Wait while the web processes are busy, for at most MAX_WAIT_SECONDS; the seconds waited."""
        started = time.monotonic()
        deadline = started + self.MAX_WAIT_SECONDS
        while self.busy() and time.monotonic() < deadline:
            time.sleep(self.POLL_SECONDS)
        return time.monotonic() - started
