"""One-off jobs at UTC instants on APScheduler 3 with a persistent job store.

Only one process runs the scheduler (the `clock` process, or `serve`/`socket`/`console` alone);
every process asks for jobs by writing a JobRequest row in its own transaction, and the
scheduler's process moves those rows into APScheduler's store, so the store is never shared.
Every job run first claims `job:<key>` in the database, so a second scheduler started by
mistake, or a replay after a crash, does not send anything twice.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any, Callable

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, BaseScheduler
from sqlalchemy import delete
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.clock import Clock
from bot.jobs.leader import LeaderLock
from bot.models import Claim, JobRequest
from bot.storage import Storage

log = logging.getLogger(__name__)

JobHandler = Callable[[Session, dict[str, Any]], None]
# Jobs in a persistent store are saved by reference, so they find their process's scheduler here.
_SCHEDULERS: dict[str, "JobScheduler"] = {}
_REQUEST_TABLE = JobRequest.__table__
_REQUESTS = select(_REQUEST_TABLE).order_by(_REQUEST_TABLE.c.id)  # built once: read at every wake-up


def request_job(session: Session, *, kind: str, key: str, run_at: datetime, payload: dict[str, Any]) -> None:
    """Ask for a one-off job at a UTC instant, in the caller's transaction."""
    if run_at.tzinfo is None:
        raise ValueError("jobs run at aware UTC instants")
    session.add(JobRequest(action="add", key=key, kind=kind, payload=json.dumps(payload), run_at=run_at))


def cancel_job(session: Session, *, key: str, prefix: bool = False) -> None:
    """Drop a pending job (or every job whose key starts with `key`), in the caller's transaction."""
    session.add(JobRequest(action="cancel_prefix" if prefix else "cancel", key=key))


def claim(session: Session, key: str, now: datetime) -> bool:
    """Insert a once-only marker; False when someone already holds it."""
    try:
        with session.begin_nested():
            session.add(Claim(key=key, claimed_at=now))
            session.flush()
        return True
    except IntegrityError:
        return False


def claim_many(session: Session, keys: list[str], now: datetime) -> set[str]:
    """claim() for many markers in one statement; the keys that were free (now held)."""
    if not keys:
        return set()
    table = Claim.__table__  # type: ignore[attr-defined]
    insert = sqlite_insert if session.connection().dialect.name == "sqlite" else postgresql_insert
    statement = (insert(table).values([{"key": key, "claimed_at": now} for key in dict.fromkeys(keys)])
                 .on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key))
    return set(session.execute(statement).scalars())


def fire(scheduler_id: str, kind: str, key: str, payload: dict[str, Any]) -> None:
    """APScheduler's entry point for every stored job."""
    scheduler = _SCHEDULERS.get(scheduler_id)
    if scheduler is None:
        log.error("job %s fired with no scheduler %s in this process", key, scheduler_id)
        return
    scheduler.execute(kind, key, payload)


class _ManualScheduler(BaseScheduler):
    """APScheduler with its store and no thread: jobs run only when run_due() says so."""

    def wakeup(self) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)


class _Scheduler(BackgroundScheduler):
    """APScheduler's background scheduler, with a stop that waits for a hand-off under way.
    Alone, APScheduler 3 may hand a due job to its thread pool after shutdown() stopped the
    pool (issues #285 and #985): the hand-off fails with a logged traceback and it then tries
    to delete the one-off job. Here a look for due jobs runs whole under the job stores' lock
    and only while running, and shutdown() first pauses under that lock: due jobs not yet
    handed off stay stored for the next start."""

    def _process_jobs(self):  # type: ignore[no-untyped-def]
        with self._jobstores_lock:  # reentrant: the base takes it again
            if self.state != STATE_RUNNING:
                return None
            return super()._process_jobs()

    def shutdown(self, wait: bool = True) -> None:
        with self._jobstores_lock:
            if self.state == STATE_RUNNING:
                self.pause()
        super().shutdown(wait)


class JobScheduler:
    """Wraps one APScheduler BackgroundScheduler; `manual=True` runs jobs only on run_due()."""

    def __init__(self, storage: Storage, clock: Clock, *, manual: bool = False, poll_seconds: float = 1.0) -> None:
        self.storage = storage
        self.clock = clock
        self.manual = manual
        self.poll_seconds = poll_seconds
        self.handlers: dict[str, JobHandler] = {}
        self.after_job: Callable[[], None] | None = None  # e.g. wake the outbox
        self.on_lead: Callable[[], None] | None = None  # e.g. plan handoffs once leader
        # Waits for a quiet moment in the web process before each job request (the clock's
        # scheduler: RequestsInFlight.wait_until_quiet), as the outbox does before each task.
        self.yield_to: Callable[[], float] | None = None
        self.standby_seconds = 5.0
        self._leader = LeaderLock(storage.engine)
        self._store: SQLAlchemyJobStore | None = None
        self.id = storage.url
        self._aps: BaseScheduler | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()

    def register(self, kind: str, handler: JobHandler) -> None:
        self.handlers[kind] = handler

    @property
    def running(self) -> bool:
        return self._aps is not None

    @property
    def state(self) -> str:
        """running (this process schedules), standby (waiting for the lock) or stopped."""
        if self._aps is not None:
            return "running"
        return "standby" if self._thread is not None else "stopped"

    def start(self) -> None:
        """Manual: start at once, paused. Otherwise run once this process holds the leader lock."""
        if self.manual:
            self._start_aps()
            return
        self._thread = threading.Thread(target=self._lead, name="scheduler", daemon=True)
        self._thread.start()

    def _start_aps(self) -> None:
        store = SQLAlchemyJobStore(engine=self.storage.engine, tablename="apscheduler_jobs")
        self._store = store
        kind = _ManualScheduler if self.manual else _Scheduler
        aps = kind(
            jobstores={"default": store},
            timezone=timezone.utc,
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )
        aps.start(paused=self.manual)
        self._aps = aps
        _SCHEDULERS[self.id] = self
        try:
            self.sync()
        except Exception:  # the loop syncs again in a moment
            log.exception("job request sync failed")

    def _lead(self) -> None:
        """Wait for the leader lock, then schedule and move job requests until stopped."""
        while not self._stop.is_set():
            if self._leader.try_acquire():
                break
            log.info("another process runs the scheduler; standing by")
            self._stop.wait(self.standby_seconds)
        if self._stop.is_set():
            return
        log.info("this process runs the scheduler")
        while not self._started():  # a database that drops the connection now must not end the thread
            if self._stop.wait(self.standby_seconds):
                return
        if self.on_lead is not None:
            try:
                self.on_lead()
            except Exception:
                log.exception("start-up planning failed")
        self._loop()

    def _started(self) -> bool:
        try:
            self._start_aps()
        except Exception as exc:  # noqa: BLE001  (said in one line; tried again)
            log.warning("the scheduler could not start (%s); trying again in %.0f s",
                        " ".join(str(exc).split())[:200], self.standby_seconds)
            return False
        return True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._aps is not None:
            self._aps.shutdown(wait=True)
            self._aps = None
        self._leader.release()
        if _SCHEDULERS.get(self.id) is self:
            del _SCHEDULERS[self.id]

    def notify(self) -> None:
        """A JobRequest was just committed: sync now rather than at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:
                log.exception("job request sync failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def sync(self) -> int:
        """Move JobRequest rows into APScheduler's store; returns how many were applied."""
        if self._aps is None:
            return 0
        with self._lock:
            with self.storage.connect() as connection:  # mostly finds none: one plain statement
                requests = connection.execute(_REQUESTS).all()
            for request in requests:  # applying twice after a crash is harmless: ids replace
                if self.yield_to is not None:
                    self.yield_to()
                self._apply(request)
            if requests:
                with self.storage.transaction() as connection:
                    connection.execute(delete(_REQUEST_TABLE).where(_REQUEST_TABLE.c.id.in_([r.id for r in requests])))
            return len(requests)

    def _apply(self, request: Any) -> None:
        """Carry out one job request (a row of JobRequest's columns)."""
        assert self._aps is not None
        if request.action == "add":
            assert request.run_at is not None
            self._aps.add_job(
                fire,
                trigger="date",
                run_date=request.run_at,
                id=request.key,
                replace_existing=True,
                args=[self.id, request.kind, request.key, json.loads(request.payload)],
            )
            return
        keys = [request.key]
        if request.action == "cancel_prefix":
            keys = self._keys_starting_with(request.key)
        for key in keys:
            try:
                self._aps.remove_job(key)
            except JobLookupError:
                pass

    def _keys_starting_with(self, prefix: str) -> list[str]:
        """Stored job ids with this prefix, read from the key column alone: get_jobs() would
        unpickle every stored job, once per declaration."""
        assert self._store is not None
        key = self._store.jobs_t.c.id
        with self.storage.connect() as connection:
            ids = connection.execute(sql_select(key).where(key.startswith(prefix, autoescape=True))).scalars()
            return [job_id for job_id in ids if job_id.startswith(prefix)]  # SQLite's LIKE ignores case

    def pending(self) -> list[tuple[str, datetime]]:
        """(key, run_at) of every stored job, soonest first."""
        self.sync()
        if self._aps is None:
            return []
        jobs = [(job.id, job.next_run_time) for job in self._aps.get_jobs() if job.next_run_time]
        return sorted(jobs, key=lambda item: item[1])

    def run_due(self, now: datetime | None = None) -> int:
        """Manual mode: run every stored job due at `now` (the clock's now), soonest first."""
        now = now or self.clock.now()
        ran = 0
        for _ in range(1000):
            due = [key for key, at in self.pending() if at <= now]
            if not due:
                break
            key = due[0]
            assert self._aps is not None
            job = self._aps.get_job(key)
            if job is None:
                continue
            args = job.args
            self._aps.remove_job(key)
            self.execute(args[1], args[2], args[3])
            ran += 1
        return ran

    def execute(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        """Run one job once: claim it and do its work in one transaction."""
        handler = self.handlers.get(kind)
        if handler is None:
            log.error("no handler for job kind %s (%s)", kind, key)
            return
        try:
            with self.storage.session() as session:
                if not claim(session, f"job:{key}", self.clock.now()):
                    log.info("job %s already ran; skipped", key)
                    return
                handler(session, payload)
        except Exception:
            log.exception("job %s (%s) failed", key, kind)
            return
        if self.after_job is not None:
            self.after_job()
