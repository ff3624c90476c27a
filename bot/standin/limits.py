"""Slack's rate limits in the stand-in: every Web API call takes a slot from its method's tier
budget (and chat.postMessage from its channel's), per workspace; a call with no slot free gets
what Slack answers, HTTP 429 `ratelimited` with `Retry-After` in whole seconds."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.slack.limits import admit, budgets


class RateLimits:
    """Sliding-window budgets, on unless switched off; `now` is replaceable so a test can move
    past a window without waiting a minute."""

    def __init__(self, enabled: bool = True, now: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.now = now
        self._instants: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def take(self, method: str, args: dict[str, Any]) -> int | None:
        """Take this call's slots and return None, or the Retry-After seconds when one budget is
        full (then no slot is taken: a refused call does not count)."""
        if not self.enabled:
            return None
        wanted = budgets(method, args)
        with self._lock:
            now = self.now()
            admitted = {}
            for key, limit in wanted:
                kept, wait = admit(self._instants.get(key, []), limit, now)
                if wait > 0:
                    return max(1, math.ceil(wait))
                admitted[key] = kept
            self._instants.update(admitted)
        return None

    def reset(self) -> None:
        with self._lock:
            self._instants.clear()
