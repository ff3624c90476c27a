"""Slack's Web API rate limits, as one table: the stand-in enforces it, the bot paces its calls
by it and the storm benchmark computes from it the floor the limits impose.

Each method's tier allows a number of calls per sliding 60-second window per workspace (tiers
from Slack's method documentation); chat.postMessage is limited per channel instead: about one
message a second, with short bursts allowed, kept here as 60 per sliding 60 seconds."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

WINDOW_SECONDS = 60.0


class Limit(NamedTuple):
    """At most `calls` calls in any `seconds`-long sliding window."""

    calls: int
    seconds: float = WINDOW_SECONDS


# Slack's tiers: Tier 1 1+ per minute, Tier 2 20+, Tier 3 50+, Tier 4 100+.
TIER_LIMITS = {1: Limit(1), 2: Limit(20), 3: Limit(50), 4: Limit(100)}
# Every method the bot calls, with its documented tier ("special" methods get Tier 4's room).
TIERS: dict[str, int] = {
    "auth.test": 4,  # special: far above what a bot needs
    "bookmarks.add": 2,
    "bookmarks.list": 3,
    "chat.getPermalink": 4,  # special
    "chat.postEphemeral": 4,
    "chat.update": 3,
    "conversations.create": 2,
    "conversations.history": 3,
    "conversations.info": 3,
    "conversations.invite": 3,
    "conversations.join": 3,
    "conversations.list": 2,
    "conversations.members": 4,
    "conversations.setTopic": 2,
    "files.completeUploadExternal": 4,
    "files.getUploadURLExternal": 4,
    "pins.add": 2,
    "reactions.add": 3,
    "usergroups.users.update": 2,
    "users.info": 4,
    "users.lookupByEmail": 3,
    "views.open": 4,
    "views.publish": 4,
    "views.update": 4,
}
# Methods limited per channel (the `channel` argument) rather than per workspace.
PER_CHANNEL: dict[str, Limit] = {"chat.postMessage": Limit(60)}


def budgets(method: str, args: dict[str, Any]) -> list[tuple[str, Limit]]:
    """The budgets one call takes a slot from: (key, limit) pairs, none for an unlimited method."""
    taken = []
    if method in TIERS:
        taken.append((method, TIER_LIMITS[TIERS[method]]))
    if method in PER_CHANNEL:
        taken.append((f"{method} {args.get('channel') or ''}", PER_CHANNEL[method]))
    return taken


def admit(instants: list[float], limit: Limit, now: float) -> tuple[list[float], float]:
    """One call at `now` against a budget's recent call instants: (the instants still in the
    window, with `now` added when admitted; 0.0) or (those instants; seconds until a slot frees)."""
    recent = [t for t in instants if t > now - limit.seconds]
    if len(recent) < limit.calls:
        return [*recent, now], 0.0
    return recent, max(0.0, recent[-limit.calls] + limit.seconds - now)


def floor_seconds(calls: int, limit: Limit) -> float:
    """The least time `calls` calls take under `limit`, starting with a full window: the first
    `limit.calls` at once, each further batch one window later."""
    return 0.0 if calls <= 0 else (math.ceil(calls / limit.calls) - 1) * limit.seconds
