"""GET /healthz, answered from a state that a thread of its own refreshes every few seconds, so
that a load balancer's check never waits on the database or its write lock: 200 with the
database, scheduler, rotations (how many are loaded), backlog (side effects waiting) and
backlog_oldest_seconds (how long the oldest has waited: it grows during a Slack outage);
503 with the reason when the database is unreachable or cannot be written."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import select

from bot.models import OutboxTask
from bot.storage import database_problem

if TYPE_CHECKING:
    from bot.runtime import Runtime

REFRESH_SECONDS = 5.0
# A state this old means the check itself hangs: a database that does not answer at all.
STALE_SECONDS = 30.0


@dataclass(frozen=True)
class Checked:
    """What the last check found, and when (time.monotonic())."""

    at: float
    problem: str | None  # why the database cannot be used; None when it can
    backlog: int | None
    oldest: float | None  # seconds the oldest pending task has waited, on the bot's clock


class HealthState:
    """The database's state, checked now and then every REFRESH_SECONDS on a daemon thread
    (start), or on the first question after that long when no thread runs (tests, console)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._checked = self._check()
        self._stop = threading.Event()
        self._checking = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="healthz", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def answer(self) -> tuple[dict[str, Any], int]:
        """The JSON body and status of /healthz; never touches the database."""
        checked = self._checked
        age = time.monotonic() - checked.at
        if self._thread is None and age > REFRESH_SECONDS:
            self._check_in_background()
        problem = checked.problem
        if problem is None and age > STALE_SECONDS:
            problem = f"the database has not answered a check for {age:.0f} s"
        runtime = self.runtime
        body: dict[str, Any] = {
            "ok": problem is None,
            "database": "ok" if problem is None else "unavailable",
            "scheduler": {"stopped": "elsewhere"}.get(runtime.scheduler.state, runtime.scheduler.state),
            "rotations": len(runtime.rotations),
            "backlog": checked.backlog,
            "backlog_oldest_seconds": checked.oldest,
        }
        if problem is not None:
            body["error"] = problem
        return body, 200 if problem is None else 503

    def _run(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            self._refresh()

    def _check_in_background(self) -> None:
        if self._checking.locked():
            return
        threading.Thread(target=self._refresh, name="healthz", daemon=True).start()

    def refresh(self) -> None:
        """Check now (the thread's turn; tests that move the clock call it)."""
        self._refresh()

    def _refresh(self) -> None:
        with self._checking:
            self._checked = self._check()

    def _check(self) -> Checked:
        storage = self.runtime.storage
        problem = storage.write_problem()
        backlog = oldest = None
        if problem is None:
            try:
                with storage.connect() as connection:  # a read: never queues behind a writer
                    pending = select(func.count()).select_from(OutboxTask).where(OutboxTask.status == "pending")
                    backlog = int(connection.execute(pending).scalar_one())
                    first = connection.execute(select(OutboxTask.created_at).where(OutboxTask.status == "pending")
                                               .order_by(OutboxTask.created_at).limit(1)).scalar()
                oldest = max(0.0, (self.runtime.clock.now() - first).total_seconds()) if first is not None else 0.0
            except Exception as exc:  # noqa: BLE001  (its reason is the answer)
                problem = database_problem(exc)
        return Checked(at=time.monotonic(), problem=problem, backlog=backlog, oldest=oldest)
