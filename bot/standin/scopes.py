"""Which OAuth scopes each Web API method needs of a bot token, from Slack's method reference
(api.slack.com/methods), and the scopes an app's manifest grants.

A method whose scope depends on the conversation takes the ``channels:`` scope for a public
channel, ``groups:`` for a private one and ``im:`` for a direct message, as Slack does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"

# method -> scope, or {conversation kind: scope}; "" needs no scope.
SCOPES: dict[str, str | dict[str, str]] = {
    "auth.test": "",
    "team.info": "team:read",
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write",
    "chat.getPermalink": "",
    "conversations.create": {"public": "channels:manage", "private": "groups:write"},
    "conversations.invite": {"public": "channels:manage", "private": "groups:write", "im": "im:write"},
    "conversations.join": "channels:join",
    "conversations.setTopic": {"public": "channels:manage", "private": "groups:write", "im": "im:write"},
    "conversations.info": {"public": "channels:read", "private": "groups:read", "im": "im:read"},
    "conversations.members": {"public": "channels:read", "private": "groups:read", "im": "im:read"},
    "conversations.open": "im:write",
    "conversations.history": {"public": "channels:history", "private": "groups:history", "im": "im:history"},
    "conversations.list": "channels:read",
    "bookmarks.add": "bookmarks:write",
    "bookmarks.list": "bookmarks:read",
    "pins.add": "pins:write",
    "reactions.add": "reactions:write",
    "users.info": "users:read",
    "users.list": "users:read",
    "users.lookupByEmail": "users:read.email",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
    "usergroups.users.update": "usergroups:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "views.open": "",
    "views.update": "",
    "views.publish": "",
    # Sign in with Slack: the app's client ID and secret, or the user's own token from it.
    "openid.connect.token": "",
    "openid.connect.userInfo": "",
}


def needed_scope(method: str, kind: str = "public") -> str:
    """The scope a bot token needs to call ``method`` on a conversation of this kind
    (``public``, ``private`` or ``im``); "" when none. KeyError for a method not listed."""
    scope = SCOPES[method]
    if isinstance(scope, dict):
        return scope.get(kind, scope["public"])
    return scope


def manifest_scopes(path: Path = MANIFEST) -> frozenset[str] | None:
    """The bot scopes an app manifest grants; None when there is no such file."""
    if not path.is_file():
        return None
    manifest: Any = yaml.safe_load(path.read_text())
    scopes = manifest.get("oauth_config", {}).get("scopes", {}).get("bot", [])
    return frozenset(str(scope) for scope in scopes)


def missing_scope(granted: frozenset[str] | None, method: str, channel: dict[str, Any] | None, *,
                  private: bool = False) -> str | None:
    """The scope a token granted these scopes (None: every scope) lacks to call ``method`` on
    ``channel`` (or on a new channel, ``private`` or not), as Slack's ``needed``; None if none."""
    if granted is None:
        return None
    if channel is not None:
        kind = "im" if channel["is_im"] else "private" if channel["is_private"] else "public"
    else:
        kind = "private" if private else "public"
    try:
        scope = needed_scope(method, kind)
    except KeyError:
        return f"(no scope known for {method}: add it to bot/standin/scopes.py)"
    return scope if scope and scope not in granted else None
