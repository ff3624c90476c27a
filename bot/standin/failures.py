"""Failures injected into the stand-in's answers: the next calls to a method, or a random share
of all calls, answered with a 429 (with its Retry-After), a 5xx or an `ok: false` error."""

from __future__ import annotations

import random
from typing import Any

DEFAULT_ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


class InjectedFailures:
    """Mixed into SlackStandIn: fail_next, set_failure_rate, and the failure a call draws."""

    lock: Any

    def _failures_init(self) -> None:
        self._failures: list[dict] = []
        self._random: dict[str, Any] = {"rate": 0.0}

    def fail_next(
        self,
        method: str | None,
        status: int | None = 429,
        error: str | None = None,
        retry_after: int = 1,
        count: int = 1,
        channel: str | None = None,
    ) -> None:
        """Fail the next ``count`` calls to ``method`` (None or "*": any method), only those
        naming ``channel`` when given (a user ID: their DM, as the bot names it).

        ``status=None`` answers HTTP 200 with ``{"ok": false, "error": error}``.
        """
        error = error or DEFAULT_ERRORS.get(status or 0, "fatal_error")
        with self.lock:
            self._failures.append(
                {"method": method, "status": status, "error": error}
                | {"retry_after": retry_after, "count": count, "channel": channel}
            )

    def set_failure_rate(
        self,
        rate: float,
        statuses: tuple[int, ...] = (429, 500),
        seed: int = 0,
        retry_after: int = 0,
        methods: tuple[str, ...] | None = None,
    ) -> None:
        """Fail a random ``rate`` share of Web API calls (0 turns it off)."""
        with self.lock:
            self._random = {"rate": rate, "statuses": tuple(statuses), "rng": random.Random(seed)}
            self._random |= {"retry_after": retry_after, "methods": methods}

    def _take_failure(self, method: str, args: dict) -> tuple[int, dict, dict] | None:
        for f in self._failures:
            if f["method"] in (None, "*", method) and f["channel"] in (None, args.get("channel")):
                f["count"] -= 1
                if f["count"] <= 0:
                    self._failures.remove(f)
                return self._failure(f["status"], f["error"], f["retry_after"])
        r = self._random
        wanted = r["rate"] and (r["methods"] is None or method in r["methods"])
        if wanted and r["rng"].random() < r["rate"]:
            status = r["rng"].choice(r["statuses"])
            return self._failure(status, DEFAULT_ERRORS.get(status), r["retry_after"])
        return None

    @staticmethod
    def _failure(status: int | None, error: str | None, retry_after: int) -> tuple:
        headers = {"Retry-After": str(retry_after)} if status == 429 else {}
        return status or 200, headers, {"ok": False, "error": error or "fatal_error"}
