"""Group commit for declarations' acknowledgements.

A declaration is acknowledged once its number and its outbox task are committed. Declarations
that arrive while another one is committing wait for it, then commit together: one
transaction, one turn at the counter's lock and one flush to disk for the lot, instead of one
each, queued behind each other. Each still hears back only after its own number is durable.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.incidents.service import take_numbers_with_tasks

if TYPE_CHECKING:
    from bot.storage import Storage


class NotSaved(Exception):
    """The transaction that was to save this declaration failed; nothing of it was saved."""


class _Ticket:
    __slots__ = ("error", "now", "number", "payload")

    def __init__(self, payload: dict[str, Any], now: datetime) -> None:
        self.payload, self.now = payload, now
        self.number: int | None = None
        self.error: BaseException | None = None

    @property
    def settled(self) -> bool:
        return self.number is not None or self.error is not None


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

    def take(self, payload: dict[str, Any], now: datetime) -> int:
        """The number this payload was given, once it and its task are committed; NotSaved if
        their transaction failed."""
        ticket = _Ticket(payload, now)
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
        if ticket.error is not None:
            raise NotSaved(f"declaration not saved: {ticket.error!r}") from ticket.error
        assert ticket.number is not None
        return ticket.number

    def _commit(self, batch: list[_Ticket]) -> None:
        payloads, now = [t.payload for t in batch], max(t.now for t in batch)
        try:
            with self.storage.transaction() as connection:
                numbers = take_numbers_with_tasks(
                    db_session=connection, kind=self.kind, payloads=payloads, now=now
                )
        except BaseException as exc:
            for ticket in batch:
                ticket.error = exc
            if not isinstance(exc, Exception):  # an interrupt or exit goes on up in this thread
                raise
            return
        for ticket, number in zip(batch, numbers):
            ticket.number = number
