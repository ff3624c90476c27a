"""Whether a Slack request body has the structure Slack gives it. Bolt's matchers and argument
builders index into bodies freely (``body["actions"][0]``, ``view.get(...)``) and answer 500
when a part is missing or of another type, so such bodies are refused before Bolt sees them."""

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


def well_formed(body: Any) -> bool:
    """True when every structural part of the body has the type Slack gives it."""
    if not isinstance(body, dict):
        return False
    if any(key in body and not isinstance(body[key], dict) for key in OBJECTS):
        return False
    if any(
        body.get(key) is not None and not isinstance(body[key], dict) for key in NULLABLE_OBJECTS
    ):
        return False
    event = body.get("event", {})
    if any(
        event.get(key) is not None and not isinstance(event[key], dict) for key in EVENT_OBJECTS
    ):
        return False
    actions = body.get("actions", [])
    if not isinstance(actions, list) or not all(
        isinstance(a, dict) and "action_id" in a for a in actions
    ):
        return False
    return bool(actions) or body.get("type") not in ACTION_TYPES
