"""Only one scheduler runs: the process holding the leader lock. Others wait as standby and
take over when the leader goes away (its lock dies with its connection or process)."""

from __future__ import annotations

import fcntl
import logging
import os
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
LOCK_ID = 724119  # PostgreSQL advisory lock key for "the scheduler"


class LeaderLock:
    """PostgreSQL: a session advisory lock on a held connection. SQLite: a file lock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._held: Any = None

    @property
    def held(self) -> bool:
        return self._held is not None

    def try_acquire(self) -> bool:
        if self._held is not None:
            return True
        if self.engine.dialect.name == "postgresql":
            connection = self.engine.connect()
            if connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({LOCK_ID})").scalar():
                connection.commit()
                self._held = connection
                return True
            connection.close()
            return False
        path = (self.engine.url.database or "oncall") + ".scheduler.lock"
        handle = open(path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._held = handle
        return True

    def release(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        try:
            if self.engine.dialect.name == "postgresql":
                held.exec_driver_sql(f"SELECT pg_advisory_unlock({LOCK_ID})")
            else:
                fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        except Exception:
            log.warning("releasing the scheduler lock failed", exc_info=True)
        finally:
            held.close()
