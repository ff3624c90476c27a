"""Database engine, sessions and the schema migration hook."""

from __future__ import annotations

import mmap
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, create_engine

from bot import models  # noqa: F401  (registers the tables on SQLModel.metadata)

_Note = TypeVar("_Note")


class Storage:
    """Owns the engine; hands out sessions that commit on success and roll back on error."""

    def __init__(self, database_url: str, *, background: bool = False) -> None:
        """background: this process's writes can wait (the clock); on SQLite they let a
        waiting acknowledgement in first (WriteTurns)."""
        self.url = database_url
        self.engine = _make_engine(database_url, background=background)
        # SQLite: writers take the lock up front (BEGIN IMMEDIATE); readers must not queue behind them.
        self.read_engine = _make_engine(database_url, immediate=False) if self.is_sqlite else self.engine
        self._local = threading.local()
        self._writers = threading.Lock() if self.is_sqlite else None
        # Tells this process when another one changed rows it keeps a copy of.
        self.notifications: Notifications | SharedChanges | None = (
            beside_database(SharedChanges, self.engine.url.database, "changes")
            if self.is_sqlite
            else Notifications(self.engine)
        )
        if self.notifications is not None:
            _NOTIFICATIONS[self.engine] = self.notifications
        self._one_statement = None if self.is_sqlite else OneStatement(self.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if self.in_transaction():  # a nested write would wait forever on our own lock
            raise RuntimeError("nested write transaction in one thread")
        self._local.writing = True
        # SQLite has one writer at a time: queue this process's writers on a lock rather than in
        # SQLite's busy handler, whose growing sleeps make the tail latency.
        if self._writers is not None:
            self._writers.acquire()
        try:
            yield
        finally:
            if self._writers is not None:
                self._writers.release()
            self._local.writing = False

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._writing(), Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """session() without the ORM, for writes made of plain statements (a declaration's
        acknowledgement): committed when the block ends, rolled back if it raises."""
        with self._writing(), self.engine.begin() as connection:
            yield connection

    def one_statement(self, statement: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """PostgreSQL: run a write that is one statement as a transaction of its own on this
        process's own connection (OneStatement); its first row. SQLite takes its write lock
        first: use transaction() there."""
        if self._one_statement is None:
            raise RuntimeError("SQLite writes take the write lock first: use transaction()")
        return self._one_statement.fetch_one(statement, params)

    def in_transaction(self) -> bool:
        """True inside session() or transaction() on this thread."""
        return bool(getattr(self._local, "writing", False))

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only look (never holds SQLite's write lock); nothing is committed."""
        with Session(self.read_engine, expire_on_commit=False) as session:
            yield session  # closing ends the transaction and keeps loaded objects usable

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """read() without the ORM and without a transaction: a plain connection for the hot
        read paths whose answer is one statement (/oncall, the declaration's on-call lookup,
        the outbox's due tasks, the scheduler's job requests).
        A Session's set-up and tear-down, and BEGIN and ROLLBACK around the statement, cost
        more than the statement; several statements here would each see the database as of
        their own start, so callers needing one view of several reads use read()."""
        with self.read_engine.connect() as connection:
            if self.is_sqlite:
                connection.execution_options(**{SINGLE_STATEMENTS: True})
            else:
                connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    def migrate(self) -> None:
        """Bring the schema up to date with the Alembic migrations in bot/migrations."""
        from alembic import command

        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":  # one migrator at a time across processes
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(724118)")
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        if self.notifications is not None:
            self.notifications.close()
        if self._one_statement is not None:
            self._one_statement.close()
        self.engine.dispose()
        self.read_engine.dispose()


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


class OneStatement(_OwnConnection):
    """PostgreSQL writes that are one statement each, hot enough to skip the engine: on this
    connection every statement is a transaction of its own (one round trip, no BEGIN or
    COMMIT), psycopg prepares it once, and there is no pool checkout, no isolation level set
    and reset, no SQLAlchemy execution around it (the declarations' statement: 422 -> 265 us
    of CPU, measured one at a time). After TRUST_IDLE_SECONDS idle the connection is pinged
    first, as the pool's are, so a database restart meanwhile costs no write; an error drops
    it, and the next write makes it again."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._used_at = 0.0

    def fetch_one(self, statement: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The statement's first row (psycopg's %(name)s parameters); psycopg.Error when it
        failed, and then nothing of it was written unless the connection broke after the
        commit, which the caller cannot tell apart (as with any commit)."""
        import psycopg

        with self._lock:
            try:
                connection, new = self._connected()
                if not new and time.monotonic() - self._used_at >= TRUST_IDLE_SECONDS:
                    try:
                        connection.execute("SELECT 1")
                    except psycopg.Error:  # gone while idle: nothing was sent, make it again
                        self._drop()
                        connection, _ = self._connected()
                row = connection.execute(statement, params, prepare=True).fetchone()
            except psycopg.Error:
                self._drop()
                raise
            self._used_at = time.monotonic()
            return None if row is None else tuple(row)


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


# Each Storage's notifications by its write engine, so that announce finds them from a session.
_NOTIFICATIONS: WeakKeyDictionary[Engine, Notifications | SharedChanges] = WeakKeyDictionary()


def announce(session: Session, channel: str) -> None:
    """Tell every process that rows behind channel changed, once the session commits: other
    processes through PostgreSQL's NOTIFY (delivered at commit), and after the commit this
    storage's own notifications (on PostgreSQL this process need not wait for its echo; on
    SQLite it is the shared note that every process reads)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f'NOTIFY "{channel}"')
    notifications = _NOTIFICATIONS.get(connection.engine)
    if notifications is not None:
        event.listen(session, "after_commit", lambda _session: notifications.changed(), once=True)


def connection_of(db: Session | Connection) -> Connection:
    """The connection behind a session (or the connection itself), for Core statements."""
    return db.connection() if isinstance(db, Session) else db


def alembic_config():  # type: ignore[no-untyped-def]
    """Alembic's configuration pointing at the migrations shipped in the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


def _make_engine(url: str, *, immediate: bool = True, background: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; writers take the write lock up front
        # instead, so concurrent writers queue rather than fail with "database is locked".
        # Straight to the driver: exec_driver_sql's execution machinery costs more than the BEGIN.
        if immediate:
            turns = beside_database(WriteTurns, engine.url.database, "turns")
            event.listen(
                engine, "begin",
                lambda conn: _begin_immediate(conn.connection.driver_connection, turns=turns, background=background),
            )
        else:
            event.listen(engine, "begin", _begin_deferred)
        return engine
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = create_engine(url, pool_size=10, max_overflow=20)
    event.listen(engine, "checkout", _ping_if_idle)
    event.listen(engine, "checkin", _note_checkin)
    return engine


# A connection back in use within this many seconds is trusted; an older one is pinged first
# (a database restart or a dropped connection then costs no request), without a round trip
# on every checkout of a busy pool as pool_pre_ping would.
TRUST_IDLE_SECONDS = 5.0


def _note_checkin(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
    if time.monotonic() - record.info.get("checked_in", 0.0) < TRUST_IDLE_SECONDS:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as exc:  # the pool drops this connection and checks out another
        raise DisconnectionError(f"connection idle since before the database went away: {exc}") from exc


# An execution option of Storage.connect's SQLite connections: no BEGIN, each statement reads alone.
SINGLE_STATEMENTS = "oncall_bot_single_statements"


def _begin_deferred(conn: Connection) -> None:
    if not conn.get_execution_options().get(SINGLE_STATEMENTS):
        conn.connection.driver_connection.execute("BEGIN")


SQLITE_BUSY_TIMEOUT_MS = 30000
WRITE_LOCK_POLL_SECONDS = 0.001


class WriteTurns:
    """Who is waiting for SQLite's write lock, in 8 bytes of a file beside the database that
    every process maps. SQLite keeps no queue: whoever asks first after a commit gets the lock.
    The clock writes transaction after transaction, each asked for microseconds after the last
    commit, while an acknowledgement looks only once a millisecond, so the clock kept winning
    (acknowledgements waited 9 ms at the 90th percentile, 22 ms at the 99th, in the bench).
    A foreground writer that finds the lock taken notes the time, and clears the note once it
    has the lock; a background writer about to begin waits while a note is fresh, for at most
    MAX_DEFER_SECONDS."""

    # A waiting writer notes again each millisecond; a note this old belongs to a writer that
    # is gone (or whose sleeps overran badly on a busy host).
    FRESH_NS = 10_000_000
    MAX_DEFER_SECONDS = 0.05

    def __init__(self, path: str) -> None:
        self._shared = shared_memory(path, 8)

    def waiting(self) -> None:
        """A foreground writer found the lock taken."""
        struct.pack_into("q", self._shared, 0, time.monotonic_ns())

    def served(self) -> None:
        """The foreground writer that noted it was waiting has the lock now."""
        struct.pack_into("q", self._shared, 0, 0)

    def defer(self) -> None:
        """A background writer lets a waiting foreground writer go first."""
        deadline = time.monotonic() + self.MAX_DEFER_SECONDS
        while time.monotonic_ns() - struct.unpack_from("q", self._shared, 0)[0] < self.FRESH_NS:
            if time.monotonic() > deadline:
                return
            time.sleep(WRITE_LOCK_POLL_SECONDS)


def _begin_immediate(connection: sqlite3.Connection, *, turns: WriteTurns | None = None, background: bool = False) -> None:
    """Take SQLite's write lock, looking again every millisecond while another process holds
    it. SQLite's own busy handler sleeps longer and longer between its looks (1, 2, 5, 10, 15,
    20, 25 ms, later 50 and 100), so a writer often waited 25 ms past the moment the lock was
    free: the tail latency of acknowledgements while the clock process was writing. A
    background writer first lets a waiting foreground writer go (WriteTurns)."""
    if background and turns is not None:
        turns.defer()
    connection.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    noted = False
    try:
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                if noted and turns is not None:
                    turns.served()
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            if turns is not None and not background:
                turns.waiting()
                noted = True
            time.sleep(WRITE_LOCK_POLL_SECONDS)
    finally:  # every other statement keeps SQLite's own patience
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy's "begin" event issue BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


@event.listens_for(Session, "before_flush")
def _drop_nul_characters(session: Session, _context: object, _instances: object) -> None:
    """PostgreSQL text cannot hold NUL (0x00), which user text may carry: store it without,
    on every database alike."""
    for row in (*session.new, *session.dirty):
        for name, value in list(vars(row).items()):
            if isinstance(value, str) and "\x00" in value and not name.startswith("_"):
                setattr(row, name, value.replace("\x00", ""))
