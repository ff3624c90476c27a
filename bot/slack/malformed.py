"""Whether a Slack request body has the structure Slack gives it. Bolt's matchers and argument
builders, and the listeners after them, index into bodies freely (``body["actions"][0]``,
``view["state"]``, ``command["user_id"]``) and would answer 500 when a part is missing or of
another type, so such bodies are refused with 400 before Bolt sees them. A listener that finds
a part of its own payload missing (a form's block) raises MalformedRequest, which app.error
turns into 400 as well."""

from __future__ import annotations

from typing import Any

# Parts Slack always sends as objects when it sends them at all.
OBJECTS = ("event", "view", "container", "channel", "user", "message", "state", "workflow_step")
# Slack sends these as null for org-wide installs.
NULLABLE_OBJECTS = ("team", "enterprise")
# Parts of an event read by Bolt's message matchers.
EVENT_OBJECTS = ("item", "message", "previous_message", "workflow_step")
# Payload types whose first action (and its action_id) Bolt reads.
ACTION_TYPES = ("block_actions", "interactive_message")
# What each kind of request always carries and is read without a default, as dotted paths to
# strings; "{}" at the end of a path means an object.
NEEDED: dict[str, tuple[str, ...]] = {
    "command": ("command", "user_id", "channel_id", "trigger_id", "response_url"),
    "block_actions": ("user.id", "response_url"),
    "interactive_message": ("user.id", "response_url"),
    "view_submission": ("user.id", "view.type", "view.callback_id", "view.state.values{}"),
    "view_closed": ("user.id", "view.type", "view.callback_id"),
    "shortcut": ("user.id", "callback_id", "trigger_id"),
    "message_action": ("user.id", "callback_id", "trigger_id", "channel.id", "message.ts"),
    "event_callback": ("event.type",),
    "url_verification": ("challenge",),
}
# The same for the events the bot listens to, by event type (and "type:item type").
EVENT_NEEDED: dict[str, tuple[str, ...]] = {
    "app_home_opened": ("user",),
    "reaction_added": ("item{}",),
    "reaction_added:message": ("item.channel", "item.ts"),
}


class MalformedRequest(Exception):
    """A signed Slack request lacks a part Slack always sends; the message names it (for the log)."""


def problem(body: Any) -> str | None:
    """What is missing from a Slack request body or of the wrong type, or None when it has
    Slack's shape."""
    if not isinstance(body, dict):
        return "the body is not an object"
    for key in OBJECTS:
        if key in body and not isinstance(body[key], dict):
            return f"{key} is not an object"
    for key in NULLABLE_OBJECTS:
        if body.get(key) is not None and not isinstance(body[key], dict):
            return f"{key} is not an object"
    event = body.get("event", {})
    for key in EVENT_OBJECTS:
        if event.get(key) is not None and not isinstance(event[key], dict):
            return f"event.{key} is not an object"
    actions = body.get("actions", [])
    if not isinstance(actions, list) or not all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions):
        return "actions is not a list of actions"
    if not actions and body.get("type") in ACTION_TYPES:
        return "actions is empty"
    if "text" in body and not isinstance(body["text"], str):
        return "text is not a string"
    kind = "command" if "command" in body else body.get("type")
    needed = NEEDED.get(kind, ()) if isinstance(kind, str) else ()
    if kind == "event_callback" and isinstance(event.get("type"), str):
        item = event.get("item") or {}
        for key in (event["type"], f"{event['type']}:{item.get('type')}"):
            needed += tuple(f"event.{path}" for path in EVENT_NEEDED.get(key, ()))
    return next((f"{path.removesuffix('{}')} is missing" for path in needed if not _has(body, path)), None)


def _has(body: dict[str, Any], path: str) -> bool:
    """True when the dotted path leads to a non-empty string (to an object, for a path ending in "{}")."""
    want_object = path.endswith("{}")
    value: Any = body
    for key in path.removesuffix("{}").split("."):
        if not isinstance(value, dict):
            return False
        value = value.get(key)
    return isinstance(value, dict) if want_object else isinstance(value, str) and value != ""
