"""Group commit for declarations' acknowledgements.

A declaration is acknowledged once its number and its outbox task are committed. Declarations
that arrive while another one is committing wait for it, then commit together: one
transaction, one turn at the counter's lock and one flush to disk for the lot, instead of one
each, queued behind each other. Each still hears back only after its own number is durable.
A declaration's own check (the duplicate guard) runs in that transaction too, so waiting
declarations make no database call of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from bot.incidents.service import take_numbers_with_tasks

if TYPE_CHECKING:
    from bot.storage import Storage


class NotSaved(Exception):
    """The transaction that was to save this declaration failed; nothing of it was saved."""


# Reads the database before a number is taken: the refusal to raise instead, or None.
Check = Callable[[Connection], Exception | None]


class _Ticket:
    __slots__ = ("check", "error", "now", "number", "payload", "refusal")

    def __init__(self, payload: dict[str, Any], now: datetime, check: Check | None) -> None:
        self.payload, self.now, self.check = payload, now, check
        self.number: int | None = None
        self.error: BaseException | None = None
        self.refusal: Exception | None = None

    @property
    def settled(self) -> bool:
        return self.number is not None or self.error is not None or self.refusal is not None


class GroupCommit:
    """Takes numbers with their outbox tasks for concurrent callers, in shared transactions.

    The first caller commits its own; callers arriving meanwhile queue, and when it is done
    one of them commits everything queued. Numbers follow the order of arrival."""

    def __init__(self, storage: Storage, kind: str) -> None:
        self.storage = storage
        self.kind = kind
        self._changed = threading.Condition()
        self._queued: list[_Ticket] = []
        self._committing = False

    @property
    def waiting(self) -> int:
        """Callers queued behind the transaction being committed."""
        with self._changed:
            return len(self._queued)

    def take(self, payload: dict[str, Any], now: datetime, check: Check | None = None) -> int:
        """The number this payload was given, once it and its task are committed; NotSaved if
        their transaction failed. `check` runs first in that transaction: when it returns a
        refusal, that is raised and no number is taken."""
        ticket = _Ticket(payload, now, check)
        with self._changed:
            self._queued.append(ticket)
            while self._committing and not ticket.settled:
                self._changed.wait()
            batch: list[_Ticket] = []
            if not ticket.settled:
                self._committing = True
                batch, self._queued = self._queued, []
        if batch:
            try:
                self._commit(batch)
            finally:
                with self._changed:
                    self._committing = False
                    self._changed.notify_all()
        if ticket.refusal is not None:
            raise ticket.refusal
        if ticket.error is not None:
            raise NotSaved(f"declaration not saved: {ticket.error!r}") from ticket.error
        assert ticket.number is not None
        return ticket.number

    def _commit(self, batch: list[_Ticket]) -> None:
        now = max(t.now for t in batch)
        try:
            with self.storage.transaction() as connection:
                refusals = [t.check(connection) if t.check is not None else None for t in batch]
                kept = [t for t, refusal in zip(batch, refusals) if refusal is None]
                numbers = take_numbers_with_tasks(
                    db_session=connection, kind=self.kind, payloads=[t.payload for t in kept], now=now
                ) if kept else []
        except BaseException as exc:
            for ticket in batch:
                ticket.error = exc
            if not isinstance(exc, Exception):  # an interrupt or exit goes on up in this thread
                raise
            return
        for ticket, refusal in zip(batch, refusals):
            ticket.refusal = refusal
        for ticket, number in zip(kept, numbers):
            ticket.number = number
