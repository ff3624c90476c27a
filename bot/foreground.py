"""Acknowledgements before background work, across processes.

The web process notes how many Slack requests it is answering, in 16 bytes of a file that every
process of the installation maps. The clock's outbox, before each task, waits while requests
are queuing. On a two-core host the clock's work for one declaration
(saving it, the channel, the page: 25-30 ms of CPU) competed with the acknowledgements of the
next ones at any scheduling priority; waiting for a quiet moment moved the median
acknowledgement under load from ~55 ms to ~40 ms in the bench. The wait is bounded, so a web
process that is never quiet slows the outbox but never stops it.
"""

from __future__ import annotations

import hashlib
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.storage import beside_database, shared_memory

# The note: when the web process last took or finished a request (CLOCK_MONOTONIC, which all
# processes share), and how many it was answering then.
_NOTE = struct.Struct("qq")


class Foreground:
    """How many Slack requests the web process is answering, and since when, shared between
    processes: the clock's outbox waits while two or more are in flight (requests queuing,
    where an acknowledgement's latency is at stake). A single request, as when declarations
    come one at a time, does not hold the outbox back."""

    STALE_NS = 1_000_000_000  # a note this old was left by a web process that is gone
    QUEUING = 2  # requests in flight at once that make the outbox wait
    MAX_WAIT_SECONDS = 0.05  # per outbox task, however busy the web stays
    POLL_SECONDS = 0.002

    def __init__(self, path: str | Path) -> None:
        self._shared = shared_memory(path, _NOTE.size)
        self.path = Path(path)
        self._lock = threading.Lock()
        self._in_flight = 0  # this process's requests

    @classmethod
    def of(cls, database_url: str) -> Foreground | None:
        """The note shared by the processes using that database: beside a SQLite file, else in
        the temporary folder under a name derived from the URL (password left out). None for
        an in-memory database or where the file cannot be made."""
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            return beside_database(cls, url.database, "foreground")
        digest = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()
        try:
            return cls(Path(tempfile.gettempdir()) / f"oncall-bot-{digest[:16]}-foreground")
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
            _NOTE.pack_into(self._shared, 0, time.monotonic_ns(), self._in_flight)

    def busy(self) -> bool:
        """Whether requests are queuing in the web process now."""
        noted_at, in_flight = _NOTE.unpack_from(self._shared, 0)
        return in_flight >= self.QUEUING and time.monotonic_ns() - noted_at < self.STALE_NS

    def wait_until_quiet(self) -> float:
        """Wait while the web process is busy, for at most MAX_WAIT_SECONDS; the seconds waited."""
        started = time.monotonic()
        deadline = started + self.MAX_WAIT_SECONDS
        while self.busy() and time.monotonic() < deadline:
            time.sleep(self.POLL_SECONDS)
        return time.monotonic() - started
