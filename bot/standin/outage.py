"""A Slack outage for the stand-in: while it is on, every Web API call is answered 503, and
calls to the methods named as hanging are held first (longer than the bot's client timeout,
or until the outage ends) so the caller sees a timeout, as during Slack's real incidents."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class OutagePlan:
    status: int
    hang: frozenset[str]
    hang_seconds: float


class Outage:
    """Mixed into SlackStandIn: start_outage, end_outage, and the answer during one."""

    _plan: OutagePlan | None = None
    _over: threading.Event | None = None

    def start_outage(self, *, status: int = 503, hang: tuple[str, ...] = (), hang_seconds: float = 0.0) -> None:
        """Answer every Web API call with `status`; calls to `hang` methods are held up to
        hang_seconds first (ended early by end_outage)."""
        self._over = threading.Event()
        self._plan = OutagePlan(status, frozenset(hang), hang_seconds)

    def end_outage(self) -> None:
        """Slack is back: calls are answered as usual, held ones are let go."""
        over, self._plan = self._over, None
        if over is not None:
            over.set()

    @property
    def in_outage(self) -> bool:
        return self._plan is not None

    def outage_answer(self, method: str) -> tuple[int, dict, dict] | None:
        """During an outage: (status, headers, body) after holding a hanging call; else None.
        Called without the stand-in's lock, so a held call stops nobody else."""
        plan, over = self._plan, self._over
        if plan is None:
            return None
        if method in plan.hang and over is not None:
            over.wait(plan.hang_seconds)
        return plan.status, {}, {"ok": False, "error": "service_unavailable"}
