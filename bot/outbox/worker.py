"""The outbox worker: claims due tasks under a lease, runs their handlers and writes how each
went: done, put back (a rate limit, a task waiting for another's work, an outage) or retried
with backoff until max_attempts."""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator, NamedTuple

from sqlalchemy import Connection, update

from bot.clock import Clock
from bot.outbox.tasks import (
    ANY_DUE,
    CLAIM,
    COALESCE,
    COALESCED,
    DUE,
    PAGE_HOLD,
    RENEW,
    TASKS,
    WAITED,
    PermanentError,
    Waiting,
)
from bot.storage import Storage

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
# An idle worker looks again this often: tasks committed by another process (a web process
# run with --no-outbox) start within it; this process's own commits wake the worker at once.
IDLE_POLL_SECONDS = 0.1
# A service that is down is tried again at most this long after its last failure (one probe
# task, not the whole backlog), so delivery resumes within a minute of its return.
OUTAGE_PROBE_SECONDS = 60.0
# A task still owed after a day of outage is given up on and reported.
OUTAGE_GIVE_UP = timedelta(hours=24)
# A task still waiting this long after it was made counts its attempts again (its channel may
# never come: the channel's task failed).
WAIT_GIVE_UP = timedelta(hours=1)
# The task a handler is running, as (task id, whether an earlier attempt may have done its
# work): such a handler looks for what that attempt did first (bot/slack/repeats.py).
_CURRENT: ContextVar[tuple[int, bool] | None] = ContextVar("outbox_task", default=None)


def current_task() -> tuple[int, bool] | None:
    """(task id, run before) of the outbox task running in this thread; None outside one. Run
    before: claimed before (a crash) or failed before (a timeout may have done the call)."""
    return _CURRENT.get()


class _Outcome(NamedTuple):
    """How a task went, as the column values to write on its row."""

    task_id: int
    kind: str
    payload: dict[str, Any]
    values: dict[str, Any]
    hold: tuple[list[str], datetime] | None = None  # a service is down: its kinds wait until then

    def write(self, connection: Connection) -> None:
        connection.execute(update(TASKS).where(TASKS.c.id == self.task_id).values(**self.values))
        if self.hold is not None:
            kinds, until = self.hold  # every pending task of the service waits for the same probe
            connection.execute(
                update(TASKS)
                .where(TASKS.c.status == "pending", TASKS.c.kind.in_(kinds), TASKS.c.next_attempt_at < until)
                .values(next_attempt_at=until)
            )


class Outbox:
    """Runs due tasks: in a background thread (serve, socket, clock) or on demand (console)."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        handlers: dict[str, Handler] | None = None,
        *,
        max_attempts: int = 10,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        on_failure: Callable[[str, dict[str, Any], str], None] | None = None,
        lease_seconds: float = 10.0,
    ) -> None:
        # Short, and renewed while the task runs: a killed process's tasks are free again soon.
        self.lease = timedelta(seconds=lease_seconds)
        self._leased: set[int] = set()  # claimed here, outcome not written yet
        self._leased_lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self.storage = storage
        self.clock = clock
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.on_failure = on_failure
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._running_lock = threading.Lock()
        self.retry_after: Callable[[Exception], float | None] = lambda exc: None
        # True when the error says the service is down or unreachable, not that the task is wrong.
        self.unavailable: Callable[[Exception], bool] = lambda exc: False
        self.services: dict[str, str] = {}  # kind -> the service whose outage holds it
        self._held: dict[str, datetime] = {}  # service -> until when its tasks wait
        self._outage_failures: dict[str, int] = {}  # service (or kind) -> failures in a row
        self._holds = 0  # holds set so far: a pass stops when one is set during it
        # Waits before each task for a quiet moment in the web process (the clock's outbox:
        # RequestsInFlight.wait_until_quiet) and returns the seconds waited.
        self.yield_to: Callable[[], float] | None = None
        self.yielded_seconds = 0.0

    def register(self, kind: str, handler: Handler, *, service: str | None = None) -> None:
        """A task kind and its handler; tasks of one service wait together while it is down."""
        self.handlers[kind] = handler
        if service is not None:
            self.services[kind] = service

    def held(self, now: datetime | None = None) -> dict[str, datetime]:
        """The services this worker holds back as down, and until when."""
        now = now or self.clock.now()
        return {service: until for service, until in dict(self._held).items() if until > now}

    def _runnable_kinds(self, now: datetime) -> list[str]:
        held = self.held(now)
        return [kind for kind in self.handlers if self.services.get(kind) not in held]

    def notify(self) -> None:
        """Wake the worker: something was just committed."""
        self._wake.set()

    def start(self, workers: int = 1) -> None:
        """Worker threads. One keeps each incident's steps in order; rate limits do not stall
        it, since a rate-limited task is put back until Retry-After instead of slept on."""
        if not self._threads:
            for n in range(workers):
                thread = threading.Thread(target=self._loop, name=f"outbox-{n}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        if self._renewer is not None:
            self._renewer.join(timeout)
            self._renewer = None

    def _lease_taken(self, task_id: int) -> None:
        with self._leased_lock:
            self._leased.add(task_id)
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(target=self._renew_loop, name="outbox-lease", daemon=True)
                self._renewer.start()

    def _lease_done(self, task_id: int) -> None:
        with self._leased_lock:
            self._leased.discard(task_id)

    def _renew_loop(self) -> None:
        """Every third of a lease, extend the leases of the tasks held; ends with nothing held."""
        interval = self.lease.total_seconds() / 3
        while not self._stop.wait(interval):
            with self._leased_lock:
                ids = sorted(self._leased)
                if not ids:
                    self._renewer = None
                    return
            try:
                self.renew(ids)
            except Exception:  # the database away: the lease may lapse, and the task run again
                log.warning("renewing the leases of outbox tasks %s failed", ids, exc_info=True)

    def renew(self, ids: list[int]) -> None:
        """Extend the leases of these tasks by one lease from now."""
        with self.storage.transaction() as connection:
            connection.execute(RENEW, {"ids": ids, "until": self.clock.now() + self.lease})

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_due()
            except Exception:
                log.exception("outbox worker pass failed")
                ran = 0
            if not ran:
                self._wake.wait(IDLE_POLL_SECONDS)
                self._wake.clear()

    def run_due(self, limit: int = 10) -> int:
        """Claim and run the tasks that are due now; returns how many ran. A task's outcome is
        written in the transaction that claims the next one: half the commits of writing
        each on its own, and no later than that (the next claim follows at once). A short pass:
        a task freed meanwhile (a dead process's lease run out) waits for the next one."""
        with self._count_running():
            self._wake.clear()  # set again by a commit during this pass: a task that may go first
            now = self.clock.now()
            holds = self._holds
            with self.storage.connect() as connection:
                ids = connection.execute(DUE, {"now": now, "pages_since": now - PAGE_HOLD, "kinds": self._runnable_kinds(now),
                                                "limit": limit}).scalars().all()
            ran = 0
            outcome: _Outcome | None = None  # the last task's, not yet written
            try:
                for task_id in ids:
                    if self._holds != holds:  # a service went down: its later tasks wait for the probe
                        break
                    if self.yield_to is not None:
                        self.yielded_seconds += self.yield_to()
                    with self.storage.transaction() as connection:
                        if outcome is not None:
                            outcome.write(connection)
                        claimed = self._claim(connection, task_id, now)
                    if outcome is not None:
                        self._lease_done(outcome.task_id)
                        self._report(outcome)
                        outcome = None
                    if claimed is not None:
                        self._lease_taken(task_id)
                        outcome = self._run(task_id, *claimed)
                        ran += 1
                        if self._wake.is_set():  # new work: look again, in priority order
                            break
            finally:
                if outcome is not None:
                    try:
                        with self.storage.transaction() as connection:
                            outcome.write(connection)
                    finally:
                        self._lease_done(outcome.task_id)
                    self._report(outcome)
            return ran

    @contextmanager
    def _count_running(self) -> Iterator[None]:
        with self._running_lock:
            self._running += 1
        try:
            yield
        finally:
            with self._running_lock:
                self._running -= 1

    def drain(self, max_passes: int = 500) -> None:
        """Run due tasks until none is left due (console and tests)."""
        for _ in range(max_passes):
            if not self.run_due():
                return

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no task is pending and due (tests); False on timeout."""
        deadline = threading.Event()
        waited = 0.0
        while waited < timeout:
            now = self.clock.now()
            with self.storage.connect() as connection:
                due = connection.execute(ANY_DUE, {"now": now, "pages_since": now - PAGE_HOLD}).first()
            if due is None and self._running == 0:
                return True
            deadline.wait(0.02)
            waited += 0.02
        return False

    def _claim(self, connection: Connection, task_id: int,
               now: datetime) -> tuple[str, dict[str, Any], int, datetime, str | None] | None:
        """Take a lease on one task, so a second worker (another process) skips it; its
        (kind, payload, attempts, created_at, last_error), or None when someone else has it or it
        is done."""
        now = max(now, self.clock.now())  # a long pass must not hand out leases already run out
        row = connection.execute(CLAIM, {"task_id": task_id, "now": now, "until": now + self.lease}).first()
        if row is None:
            return None
        if row.kind in COALESCED:
            connection.execute(COALESCE, {"same_kind": row.kind, "same_payload": row.payload, "task_id": task_id,
                                          "now": now})
        return row.kind, json.loads(row.payload), row.attempts, row.created_at, row.last_error

    def _run(self, task_id: int, kind: str, payload: dict[str, Any], attempts: int, created_at: datetime,
             last_error: str | None = None) -> _Outcome:
        handler = self.handlers.get(kind)
        error: str | None = None
        permanent = down = run_before = False
        wait: float | None = None
        if handler is None:
            error, permanent = f"no handler for outbox task kind {kind!r}", True
        else:
            run_before = attempts > 1 or (last_error is not None and not last_error.startswith(WAITED))
            token = _CURRENT.set((task_id, run_before))
            before = json.dumps(payload)
            try:
                handler(payload)
            except PermanentError as exc:
                error, permanent = str(exc), True
            except Exception as exc:  # retried: Slack outages, rate limits, crashes mid-way
                wait = self.retry_after(exc)  # a rate limit: come back when told, not counted
                if isinstance(exc, Waiting) and self.clock.now() - created_at < WAIT_GIVE_UP:
                    wait = exc.seconds
                down = wait is None and self.unavailable(exc)
                if wait is None:
                    log.warning("outbox task %s (%s) failed, attempt %d: %s", task_id, kind, attempts, exc)
                else:
                    log.info("outbox task %s (%s) waits %.1f s: %s", task_id, kind, wait, exc)
                error = f"{type(exc).__name__}: {exc}"
            finally:
                _CURRENT.reset(token)
        values: dict[str, Any] = {"lease_until": None, "last_error": error}
        hold: tuple[list[str], datetime] | None = None
        now = self.clock.now()
        service = self.services.get(kind)
        if error is not None and handler is not None and json.dumps(payload) != before:
            values["payload"] = json.dumps(payload)  # the steps a handler noted done: not redone
        if error is None:
            values["status"] = "done"
            self._outage_failures.pop(service or kind, None)
            if service is not None:
                self._held.pop(service, None)
        elif wait is not None:  # a rate limit, or waiting for a channel: not counted as an attempt
            values.update(attempts=attempts - 1, next_attempt_at=now + timedelta(seconds=wait))
            # the refused call was not made: the next attempt need not look for what it did
            values["last_error"] = last_error if run_before and attempts == 1 else WAITED + (error or "")
        elif down and now - created_at < OUTAGE_GIVE_UP:  # an outage: not counted either
            until = now + timedelta(seconds=self._outage_delay(service or kind))
            values.update(attempts=attempts - 1, next_attempt_at=until)
            if service is not None:
                self._held[service] = until
                self._holds += 1
                hold = ([k for k, s in self.services.items() if s == service], until)
        elif permanent or attempts >= self.max_attempts or down:
            values["status"] = "failed"
        else:
            delay = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
            values["next_attempt_at"] = now + timedelta(seconds=delay)
        return _Outcome(task_id, kind, payload, values, hold)

    def _outage_delay(self, key: str) -> float:
        """Seconds until the next probe of a service that is down: doubling, at most a minute."""
        failures = self._outage_failures.get(key, 0) + 1
        self._outage_failures[key] = failures
        return float(min(OUTAGE_PROBE_SECONDS, self.max_delay, self.base_delay * 2 ** min(failures - 1, 16)))

    def _report(self, outcome: _Outcome) -> None:
        """After a task's outcome is written: a task given up on is logged and reported."""
        task_id, kind, payload, values, _ = outcome
        error = values["last_error"]
        failed = values.get("status") == "failed"
        if failed:
            log.error("outbox task %s (%s) gave up: %s", task_id, kind, error)
            if self.on_failure is not None:
                try:
                    self.on_failure(kind, payload, error or "")
                except Exception:
                    log.exception("reporting a failed outbox task failed")
