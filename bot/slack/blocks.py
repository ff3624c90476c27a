"""Block Kit builders: what the bot's messages look like."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.incidents.commands import SEVERITIES, severity_label
from bot.incidents.service import TEXT_LIMIT, TITLE_LIMIT
from bot.models import Incident, Page
from bot.slack.malformed import MalformedRequest
from bot.text import QUOTED, plain, safe, truncate, user

SEVERITY_EMOJI = {1: ":red_circle:", 2: ":large_orange_circle:", 3: ":large_yellow_circle:", 4: ":white_circle:"}


def metadata(incident_id: int | None, step: str | None = None) -> dict[str, Any]:
    """Slack message metadata naming the incident, so other apps can follow its messages, and
    the step that posted it, so a step repeated after a crash finds its message."""
    payload: dict[str, Any] = {} if incident_id is None else {"incident_id": incident_id}
    if step is not None:
        payload["step"] = step
    return {"event_type": "incident_message" if incident_id is not None else "oncall_message", "event_payload": payload}


def topic(incident: Incident, commander_name: str, role_names: dict[str, str] | None = None) -> str:
    """The channel topic (Slack shows it as plain text, so names, not mentions); <= 250 chars.
    Roles come before the title, so a long title is what gets cut."""
    head = f"{severity_label(incident.severity)} · {incident.status} · Commander: @{commander_name}"
    roles = "".join(f" · {role}: @{name}" for role, name in (role_names or {}).items())
    return truncate(truncate(f"{head}{roles}", 200) + f" · {safe(incident.title)}", 250)


def incident_line(incident: Incident) -> str:
    channel = f"<#{incident.channel_id}>" if incident.channel_id else "(channel pending)"
    return (
        f"{SEVERITY_EMOJI.get(incident.severity, '')} *#{incident.id} {safe(incident.title)}* · "
        f"{severity_label(incident.severity)} · {incident.status} · {channel} · "
        f"commander {user(incident.commander)}"
    )


def web_link(settings: Settings, path: str) -> str | None:
    """The address of one of the web pages (`/incidents/3`), when the web pages are on."""
    return f"{settings.base_url}{path}" if settings.web_pages else None


def summary(incident: Incident, roles: dict[str, str] | None = None,
            page: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The pinned summary: text fallback and blocks with I'm responding, Join and Resolve (and a
    link to the incident's web page, when given)."""
    title = safe(incident.title)
    text = f"Incident #{incident.id}: {title} ({severity_label(incident.severity)}, {incident.status})"
    fields = [
        f"*Severity*\n{SEVERITY_EMOJI.get(incident.severity, '')} {severity_label(incident.severity)}",
        f"*Status*\n{incident.status}",
        f"*Commander*\n{user(incident.commander)}",
        f"*Declared by*\n{user(incident.declarer)}",
    ]
    if incident.rotation:
        fields.append(f"*Rotation*\n{safe(incident.rotation)}")
    if roles:
        fields.append("*Roles*\n" + "\n".join(f"{role}: {user(who)}" for role, who in roles.items()))
    if incident.private:
        fields.append("*Private*\n:lock: nothing is posted outside this channel")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(f"Incident #{incident.id}: {plain(incident.title)}", 150)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if incident.description:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": truncate(safe(incident.description), 2900)}})
    if page:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{page}|Incident page>"}]})
    if incident.status != "resolved":
        value = str(incident.id)
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "I'm responding"}, "action_id": "incident_respond", "value": value, "style": "primary"},
                    {"type": "button", "text": {"type": "plain_text", "text": "Join"}, "action_id": "incident_join", "value": value},
                    {"type": "button", "text": {"type": "plain_text", "text": "Resolve"}, "action_id": "incident_resolve", "value": value, "style": "danger"},
                ],
            }
        )
    else:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": safe(incident.summary or "Resolved.")}]})
    return text, blocks


def page_dm(incident: Incident, page_id: int, paged_by: str) -> tuple[str, list[dict[str, Any]]]:
    """The page a responder receives, with Acknowledge and Escalate."""
    channel = f"<#{incident.channel_id}>" if incident.channel_id else "its channel (being created)"
    text = (
        f":rotating_light: {user(paged_by)} paged you for incident #{incident.id} "
        f"*{safe(incident.title)}* ({severity_label(incident.severity)}) in {channel}."
    )
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}, page_buttons(page_id)]


def page_buttons(page_id: int) -> dict[str, Any]:
    """Acknowledge and Escalate for one page."""
    return {
        "type": "actions",
        "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"}, "action_id": "page_ack", "value": str(page_id), "style": "primary"},
            {"type": "button", "text": {"type": "plain_text", "text": "Escalate"}, "action_id": "page_escalate", "value": str(page_id), "style": "danger"},
        ],
    }


def declare_modal(channel_id: str, rotations: list[str]) -> dict[str, Any]:
    """The form behind a bare `/incident declare`."""
    severity_options = [
        {"text": {"type": "plain_text", "text": severity_label(n)}, "value": str(n)} for n in SEVERITIES
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "input", "block_id": "title", "label": {"type": "plain_text", "text": "Title"},
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": TITLE_LIMIT}},
        {"type": "input", "block_id": "severity", "label": {"type": "plain_text", "text": "Severity"},
         "element": {"type": "static_select", "action_id": "value", "options": severity_options,
                     "initial_option": severity_options[2]}},
        {"type": "input", "block_id": "description", "optional": True,
         "label": {"type": "plain_text", "text": "What is happening?"},
         "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": TEXT_LIMIT}},
    ]
    blocks.append(
        {"type": "input", "block_id": "private", "optional": True,
         "label": {"type": "plain_text", "text": "Visibility"},
         "element": {"type": "checkboxes", "action_id": "value", "options": [
             {"text": {"type": "plain_text", "text": "Private"}, "value": "private",
              "description": {"type": "plain_text", "text": "A private channel; nothing is posted outside it"}}]}}
    )
    if rotations:
        options = [{"text": {"type": "plain_text", "text": r[:75]}, "value": r} for r in rotations[:100]]
        blocks.append(
            {"type": "input", "block_id": "rotation", "optional": True,
             "label": {"type": "plain_text", "text": "Rotation to page"},
             "element": {"type": "static_select", "action_id": "value", "options": options}}
        )
    return {
        "type": "modal",
        "callback_id": "declare_incident",
        "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": "Declare an incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


@dataclass(frozen=True)
class DeclareForm:
    """What the declare form sent back: raw text, as typed."""

    title: str
    severity: int
    description: str | None
    rotation: str | None
    private: bool = False


def read_declare_form(values: dict[str, Any]) -> DeclareForm:
    """The declare form's state values (view.state.values); MalformedRequest when a part that
    the form always sends is missing or of another type."""

    def element(block: str, *, required: bool) -> dict[str, Any]:
        found = values.get(block)
        found = found.get("value") if isinstance(found, dict) else None
        if isinstance(found, dict):
            return found
        if required or block in values:
            raise MalformedRequest(f"the form's {block} field is missing")
        return {}

    def text(block: str, *, required: bool = False) -> str | None:
        value = element(block, required=required).get("value")
        if value is not None and not isinstance(value, str):
            raise MalformedRequest(f"the form's {block} field is not text")
        return value

    def choice(block: str, *, required: bool = False) -> str | None:
        option = element(block, required=required).get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
        if option is not None and (not isinstance(value, str) or len(value) > QUOTED):
            raise MalformedRequest(f"the form's {block} choice is not one of its options")
        return value

    severity = choice("severity", required=True)
    if severity not in {str(n) for n in SEVERITIES}:
        raise MalformedRequest("the form's severity is not one of its options")
    chosen = element("private", required=False).get("selected_options") or []
    if not isinstance(chosen, list):
        raise MalformedRequest("the form's private box is not a list of options")
    private = any(isinstance(o, dict) and o.get("value") == "private" for o in chosen)
    return DeclareForm(title=text("title", required=True) or "", severity=int(severity),
                       description=text("description"), rotation=choice("rotation"), private=private)


BUTTON_VALUE_LIMIT = 2000  # Slack's limit on a button's value


def duplicate_prompt(number: int, title: str, channel_id: str | None,
                     declaration: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """"Is this #N <title>?" with Join #N and Declare anyway (which carries the declaration)."""
    where = f" in <#{channel_id}>" if channel_id else ""
    text = (f":eyes: Is this #{number} *{safe(title)}*{where}? It was declared in the last 30 minutes and is "
            "still open. Nothing was declared yet.")
    value = json.dumps(declaration)
    if len(value) > BUTTON_VALUE_LIMIT:  # the description is what can make it long
        declaration = {**declaration, "description": None}
        value = json.dumps(declaration)
        text += " (Declaring anyway leaves your description out: add it with `/incident note`.)"
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": f"Join #{number}"}, "action_id": "duplicate_join",
             "value": str(number), "style": "primary"},
            {"type": "button", "text": {"type": "plain_text", "text": "Declare anyway"},
             "action_id": "duplicate_declare", "value": value}]},
    ]


def page_message(page: Page, incident: Incident | None) -> tuple[str, list[dict[str, Any]]]:
    """The DM for a page, with buttons while it waits and its outcome once answered."""
    if incident is not None:
        text, dm_blocks = page_dm(incident, page.id or 0, page.paged_by)
    else:
        text = f":rotating_light: Alert: *{safe(page.reason or 'unnamed alert')}*" + (f" (on call for `{safe(page.rotation)}`)" if page.rotation else "")
        dm_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}, page_buttons(page.id or 0)]
    if page.acknowledged_at is not None:
        dm_blocks = dm_blocks[:1] + [{"type": "context", "elements": [{"type": "mrkdwn", "text": f":white_check_mark: Acknowledged by {user(page.acknowledged_by)}"}]}]
    elif page.escalated_at is not None:
        dm_blocks = dm_blocks[:1] + [{"type": "context", "elements": [{"type": "mrkdwn", "text": ":arrow_double_up: Escalated to the next responder"}]}]
    elif page.resolved_at is not None:
        dm_blocks = dm_blocks[:1] + [{"type": "context", "elements": [{"type": "mrkdwn", "text": ":white_check_mark: Resolved by itself before anyone answered"}]}]
    return text, dm_blocks
