"""The bot paces its own Slack calls: before an outbox task calls a method it takes a slot from
that method's budget (and chat.postMessage from its channel's), kept in the database so every
process of the bot shares it; with no slot free the call is not made and the task is put back
until one frees. A 429 Slack answers anyway blocks the budget until its Retry-After."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.models import SlackBudget
from bot.observability.slack_client import MeteredWebClient
from bot.slack.limits import Limit, admit, budgets
from bot.storage import Storage

BUDGETS = SlackBudget.__table__
# Slack starts a call's window when the call arrives, a little after we take its slot here.
MARGIN_SECONDS = 1.0


class Paced(Exception):
    """No slot is free for a Slack call now; `wait` seconds until one is."""

    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"Slack budget {key!r} full for {wait:.1f} s")
        self.wait = wait


class Pacer:
    """Slots from the shared budgets of bot/slack/limits.py; `enabled` False lets every call go."""

    def __init__(self, storage: Storage, *, enabled: bool = True, now: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.enabled = enabled
        self.now = now

    def take(self, method: str, args: dict[str, Any]) -> None:
        """Take a slot for this call from each of its budgets, or raise Paced taking none."""
        wanted = budgets(method, args) if self.enabled else []
        if not wanted:
            return
        with self.storage.transaction() as connection:
            rows = _locked(connection, [key for key, _ in wanted])
            now = self.now()
            taken = {}
            for key, limit in wanted:
                instants, blocked = rows[key]
                if blocked > now:
                    raise Paced(key, blocked - now)
                kept, wait = admit(instants, Limit(limit.calls, limit.seconds + MARGIN_SECONDS), now)
                if wait > 0:
                    raise Paced(key, wait)
                taken[key] = kept
            for key, kept in taken.items():
                connection.execute(update(BUDGETS).where(BUDGETS.c.key == key).values(instants=json.dumps(kept)))

    def check(self, calls: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Raise Paced unless every one of these calls would find a slot now (taking none): a
        task of several steps waits once instead of redoing its first steps on each retry."""
        wanted = [budget for method, args in calls for budget in budgets(method, args)] if self.enabled else []
        if not wanted:
            return
        with self.storage.connect() as connection:
            found = connection.execute(select(BUDGETS).where(BUDGETS.c.key.in_([key for key, _ in wanted]))).all()
        rows = {row.key: (json.loads(row.instants), row.blocked_until) for row in found}
        now = self.now()
        for key, limit in wanted:
            instants, blocked = rows.get(key, ([], 0.0))
            wait = max(blocked - now, admit(instants, Limit(limit.calls, limit.seconds + MARGIN_SECONDS), now)[1])
            if wait > 0:
                raise Paced(key, wait)

    def block(self, method: str, args: dict[str, Any], seconds: float) -> None:
        """Slack answered 429: no process calls this method (or channel) for `seconds`."""
        wanted = budgets(method, args)
        if not wanted or not self.enabled:
            return
        until = self.now() + seconds
        with self.storage.transaction() as connection:
            rows = _locked(connection, [key for key, _ in wanted])
            for key, _ in wanted:
                if rows[key][1] < until:
                    connection.execute(update(BUDGETS).where(BUDGETS.c.key == key).values(blocked_until=until))


def _locked(connection: Connection, keys: list[str]) -> dict[str, tuple[list[float], float]]:
    """The budgets' rows, created when new, locked until the transaction ends (SQLite's write
    transactions lock the whole database already)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(
        dialect.insert(BUDGETS).on_conflict_do_nothing(index_elements=["key"]),
        [{"key": key, "instants": "[]", "blocked_until": 0.0} for key in keys],
    )
    query = select(BUDGETS).where(BUDGETS.c.key.in_(keys)).order_by(BUDGETS.c.key)
    if dialect is postgresql:
        query = query.with_for_update()
    return {row.key: (json.loads(row.instants), row.blocked_until) for row in connection.execute(query)}


def retry_after(exc: Exception) -> float | None:
    """Seconds to wait before calling again: a Paced call's, or Slack's 429 Retry-After; else None."""
    if isinstance(exc, Paced):
        return exc.wait
    if not isinstance(exc, SlackApiError) or exc.response is None or exc.response.status_code != 429:
        return None
    try:
        headers = {str(k).lower(): v for k, v in (exc.response.headers or {}).items()}
        value = headers.get("retry-after", 1)
        return max(0.0, float(value[0] if isinstance(value, list) else value))
    except (TypeError, ValueError):
        return 1.0


class PacedWebClient(MeteredWebClient):
    """A metered client whose every call first takes its slots from `pacer`."""

    pacer: Pacer | None = None

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:  # type: ignore[override]
        args: dict[str, Any] = {}
        for part in ("params", "data", "json"):  # where slack-sdk puts a method's arguments
            if isinstance(kwargs.get(part), dict):
                args.update(kwargs[part])
        if self.pacer is not None:
            self.pacer.take(api_method, args)
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            wait = retry_after(exc)
            if wait is not None and self.pacer is not None:
                self.pacer.block(api_method, args, wait)
            raise
