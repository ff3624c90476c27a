"""Database engine, sessions and the schema migration hook."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

from bot import models  # also registers the tables on SQLModel.metadata
from bot.storage_postgres import Notifications, note_checkin, ping_if_idle
from bot.storage_sqlite import (
    SQLITE_BUSY_TIMEOUT_MS,
    SharedChanges,
    begin_immediate,
    beside_database,
)


class Storage:
    """Owns the engine; hands out sessions that commit on success and roll back on error."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = _make_engine(database_url)
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

    def write_problem(self) -> str | None:
        """Why this process cannot write to the database now (unreachable, read-only, not
        allowed), in one line, or None when it can. Never waits for a lock: a write lock that
        another writer holds says nothing against writing."""
        try:
            if self.is_sqlite:
                return _sqlite_write_problem(self.read_engine)
            with self.engine.connect() as connection:  # a statement refused for read-only or rights before any row
                connection.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
                connection.exec_driver_sql("UPDATE counter SET value = value WHERE false")
                connection.rollback()
            return None
        except Exception as exc:  # noqa: BLE001  (every failure is the reason, for the operator)
            return database_problem(exc)

    def dispose(self) -> None:
        if self.notifications is not None:
            self.notifications.close()
        self.engine.dispose()
        self.read_engine.dispose()


def _sqlite_write_problem(engine: Engine) -> str | None:
    """An update of no row, on a connection of the read engine (which issues no BEGIN of its
    own here) and without waiting: refused on a read-only database at once (BEGIN IMMEDIATE
    alone is not), busy when someone else is writing."""
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.execute("PRAGMA busy_timeout=0")
        try:
            driver.execute("BEGIN IMMEDIATE")
            driver.execute("UPDATE counter SET value = value WHERE 0")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return f"cannot write to {engine.url.database}: {exc}"
        finally:
            if driver.in_transaction:
                driver.execute("ROLLBACK")
            driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    return None


def database_problem(error: BaseException) -> str:
    """A database failure in one line for the operator: the driver's own words, whitespace
    folded, without SQLAlchemy's links."""
    text = str(getattr(error, "orig", None) or error).split("(Background on this error")[0]
    return " ".join(text.split())[:300] or type(error).__name__


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


class DriverStatement:
    """A statement of the declaration's acknowledgement, sent straight to the database driver in
    the caller's transaction: SQLAlchemy's execution machinery costs more than the statement
    (see "Driver statements" in docs/design.md). Written with sqlite3's `?` placeholders;
    psycopg gets `%s`. Times go through `driver_time`, as the column type would store them."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self._sql = {"sqlite": sql, "postgresql": sql.replace("?", "%s")}

    def rows(self, connection: Connection, values: Sequence[Any]) -> list[Any]:
        """Run it once; the rows it returns (none for a statement without RETURNING)."""
        with self._cursor(connection) as cursor:
            cursor.execute(self._sql[connection.dialect.name], values)
            return cursor.fetchall() if cursor.description else []

    def run_many(self, connection: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Run it once for each row of values."""
        with self._cursor(connection) as cursor:
            cursor.executemany(self._sql[connection.dialect.name], rows)

    @contextmanager
    def _cursor(self, connection: Connection) -> Iterator[Any]:
        """A driver cursor whose errors are raised as SQLAlchemy's, as callers expect them
        (IntegrityError, OperationalError); a lost connection is not given back to the pool."""
        driver = connection.connection.driver_connection
        with closing(driver.cursor()) as cursor:
            try:
                yield cursor
            except connection.dialect.loaded_dbapi.Error as exc:
                lost = connection.dialect.is_disconnect(exc, driver, cursor)
                if lost:
                    connection.invalidate(exc)
                raise DBAPIError.instance(self.sql, None, exc, connection.dialect.loaded_dbapi.Error,
                                          connection_invalidated=lost, dialect=connection.dialect) from exc


_TIME = models.UTCDateTime()


def driver_time(connection: Connection, when: datetime) -> Any:
    """An aware datetime as a DriverStatement takes it: what the column type would store."""
    store = _TIME.bind_processor(connection.dialect)
    return store(when) if store is not None else when


def alembic_config():  # type: ignore[no-untyped-def]
    """Alembic's configuration pointing at the migrations shipped in the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


def _make_engine(url: str, *, immediate: bool = True) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; writers take the write lock up front
        # instead, so concurrent writers queue rather than fail with "database is locked".
        # Straight to the driver: exec_driver_sql's execution machinery costs more than the BEGIN.
        if immediate:
            event.listen(engine, "begin", lambda conn: begin_immediate(conn.connection.driver_connection))
        else:
            event.listen(engine, "begin", _begin_deferred)
        return engine
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    # a host that does not answer fails the connection in 10 s rather than the system's minutes
    engine = create_engine(url, pool_size=10, max_overflow=20, connect_args={"connect_timeout": 10})
    event.listen(engine, "checkout", ping_if_idle)
    event.listen(engine, "checkin", note_checkin)
    return engine


# An execution option of Storage.connect's SQLite connections: no BEGIN, each statement reads alone.
SINGLE_STATEMENTS = "oncall_bot_single_statements"


def _begin_deferred(conn: Connection) -> None:
    if not conn.get_execution_options().get(SINGLE_STATEMENTS):
        conn.connection.driver_connection.execute("BEGIN")


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
