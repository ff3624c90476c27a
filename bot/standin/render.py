"""Turn recorded stand-in calls into what a person would see in Slack (console mode).

``render(call, names)`` returns display lines; ``names`` is anything with
``user_name(id)``, ``channel_name(id)`` (``#name`` or ``@user`` for DMs) and optionally
``usergroup_handle(id)`` and ``message(channel_id, ts)`` -- a SlackStandIn fits.
"""

from __future__ import annotations

import re
from typing import Any

_ANGLE = re.compile(r"<([^<>\n]+)>")


def _label(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return obj if isinstance(obj, str) else ""


def resolve_mentions(text: str, names: Any = None) -> str:
    """``<@U1>`` -> ``@alice``, ``<#C1>`` -> ``#general``, ``<url|label>`` -> ``label``, ..."""

    def one(match: re.Match) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            uid = target[1:]
            name = names.user_name(uid) if names else ""
            return "@" + (name if name and name != uid else label or uid)
        if target.startswith("#"):
            if label:
                return "#" + label
            found = names.channel_name(target[1:]) if names else target[1:]
            return found if found[:1] in "#@" else "#" + found
        if target.startswith("!subteam^"):
            gid = target.split("^", 1)[1]
            handle = getattr(names, "usergroup_handle", lambda g: g)(gid) if names else gid
            return label or "@" + handle
        if target.startswith("!date^"):
            return label
        if target.startswith("!"):
            return "@" + target[1:]
        return label or target

    text = _ANGLE.sub(one, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _element(e: Any) -> str:
    if not isinstance(e, dict):
        return ""
    kind = e.get("type", "")
    if kind == "button":
        return f"[{_label(e.get('text'))}]"
    if kind.endswith("select") or kind == "overflow":
        chosen = e.get("initial_option", {}).get("text") or e.get("placeholder") or "..."
        return f"[{_label(chosen)} v]"
    if kind in ("mrkdwn", "plain_text"):
        return _label(e)
    if kind == "image":
        return ""
    return f"[{kind}]"


def _rich(node: Any) -> str:
    if isinstance(node, dict):
        if node.get("type") == "user":
            return f"<@{node.get('user_id', '')}>"
        if node.get("type") == "channel":
            return f"<#{node.get('channel_id', '')}>"
        if node.get("type") == "emoji":
            return f":{node.get('name', '')}:"
        return node.get("text", "") + "".join(_rich(c) for c in node.get("elements", []))
    return ""


def blocks_text(blocks: Any) -> list[str]:
    """Readable lines of Block Kit: header/section/context text, [button] labels, ..."""
    lines: list[str] = []
    for b in blocks if isinstance(blocks, list) else []:
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind in ("header", "markdown"):
            lines.append(_label(b.get("text")) if kind == "header" else str(b.get("text", "")))
        elif kind == "section":
            parts = [_label(b.get("text"))] + ["  |  ".join(_label(f) for f in b.get("fields", []))]
            text = "\n".join(p for p in parts if p)
            accessory = _element(b.get("accessory"))
            lines.append(f"{text}  {accessory}".strip() if accessory else text)
        elif kind == "context":
            lines.append("  ·  ".join(t for t in map(_element, b.get("elements", [])) if t))
        elif kind == "actions":
            lines.append(" ".join(t for t in map(_element, b.get("elements", [])) if t))
        elif kind == "divider":
            lines.append("---")
        elif kind == "image":
            lines.append(f"[image: {b.get('alt_text', '')}]")
        elif kind == "input":
            lines.append(f"{_label(b.get('label'))}: [____]")
        elif kind == "rich_text":
            lines.append(_rich(b))
    return [line for line in lines if line]


def message_text(message: dict, names: Any = None) -> str:
    """What a message shows: its blocks (else its text) plus attachments and files."""
    lines = blocks_text(message.get("blocks"))
    if not lines and message.get("text"):
        lines = [str(message["text"])]
    for att in message.get("attachments") or []:
        if not isinstance(att, dict):
            continue
        lines += [str(att[k]) for k in ("pretext", "title", "text") if att.get(k)]
        lines += [f"{f.get('title', '')}: {f.get('value', '')}" for f in att.get("fields", [])]
        lines += blocks_text(att.get("blocks"))
    lines += [f"[file: {f.get('name', '')}]" for f in message.get("files") or []]
    return resolve_mentions("\n".join(lines), names)


def _indent(prefix: str, text: str) -> list[str]:
    first, *rest = text.split("\n") if text else [""]
    pad = " " * min(len(prefix), 8)
    return [prefix + first] + [pad + line for line in rest]


def _where(names: Any, channel_id: Any) -> str:
    if not channel_id:
        return ""
    return names.channel_name(channel_id) if names else str(channel_id)


def _user(names: Any, user_id: Any) -> str:
    return "@" + (names.user_name(user_id) if names and user_id else str(user_id or "?"))


def _snippet(names: Any, channel_id: str, ts: str) -> str:
    lookup = getattr(names, "message", None)
    msg = lookup(channel_id, ts) if lookup else None
    text = message_text(msg, names).split("\n")[0] if msg else ts
    return text if len(text) <= 60 else text[:57] + "..."


def _posted(names: Any, channel: str, who: str, text: str, tag: str = "") -> list[str]:
    where = _where(names, channel)
    if where.startswith("@"):
        return _indent(f"DM to {where}{tag}: ", text)
    return _indent(f"{where}  {who}{tag}: ", text)


def render(call: Any, names: Any = None, verbose: bool = False) -> list[str]:
    """Display lines for one recorded call; [] for calls nobody would see (unless verbose)."""
    method, args, resp = call.method, call.args, call.response
    status = getattr(call, "status", 200)
    if not resp.get("ok"):
        http = f" (HTTP {status})" if status != 200 else ""
        return [f"! {method} failed: {resp.get('error', 'unknown')}{http}"]
    bot = _user(names, resp.get("message", {}).get("user") or getattr(names, "bot_user_id", "bot"))
    if method == "chat.postMessage":
        tag = " (in thread)" if args.get("thread_ts") else ""
        return _posted(names, resp["channel"], bot, message_text(resp["message"], names), tag)
    if method == "chat.update":
        return _posted(names, resp["channel"], bot, message_text(args, names), " (edited)")
    if method == "chat.postEphemeral":
        where = _where(names, args.get("channel"))
        only = f"(only visible to {_user(names, args.get('user'))}) "
        return _indent(f"{where}  {only}", message_text(args, names))
    if method == "response_url":
        return _render_response(names, args, resp, bot)
    if method == "conversations.create":
        private = " (private)" if resp["channel"].get("is_private") else ""
        return [f"created channel #{resp['channel']['name']}{private}"]
    if method == "conversations.invite":
        ids = args.get("users")
        ids = ids if isinstance(ids, list) else str(ids or "").split(",")
        users = ", ".join(_user(names, u.strip()) for u in ids if u.strip())
        return [f"{_where(names, args.get('channel'))}  invited {users}"]
    if method == "conversations.join":
        return [f"{bot} joined {_where(names, args.get('channel'))}"]
    if method == "conversations.setTopic":
        return [f"{_where(names, args.get('channel'))} topic: {args.get('topic', '')}"]
    if method == "pins.add":
        channel, ts = args.get("channel"), args.get("timestamp")
        return [f':pushpin: pinned "{_snippet(names, channel, ts)}" in {_where(names, channel)}']
    if method == "reactions.add":
        channel, ts = args.get("channel"), args.get("timestamp")
        return [
            f':{args.get("name")}: on "{_snippet(names, channel, ts)}" in {_where(names, channel)}'
        ]
    if method == "files.completeUploadExternal":
        channel = args.get("channel_id") or str(args.get("channels") or "").split(",")[0]
        where = _where(names, channel)
        lines = [f"uploaded {f['name']} to {where or '(private)'}" for f in resp["files"]]
        comment = args.get("initial_comment")
        return lines + (_indent("    ", resolve_mentions(comment, names)) if comment else [])
    if method == "usergroups.users.update":
        group = resp["usergroup"]
        users = ", ".join(_user(names, u) for u in group.get("users", []))
        return [f"@{group['handle']} is now: {users or '(nobody)'}"]
    if method in ("views.open", "views.update", "views.publish"):
        view = resp["view"]
        if view.get("type") == "home":
            return [f"published App Home for {_user(names, args.get('user_id'))}"]
        verb = "opened" if method == "views.open" else "updated"
        body = blocks_text(view.get("blocks"))
        title = _label(view.get("title"))
        return [f'{verb} modal "{title}"'] + ["    | " + line for line in body]
    return [f"· {method}"] if verbose else []


def _render_response(names: Any, args: dict, resp: dict, bot: str) -> list[str]:
    where = _where(names, args.get("channel"))
    outcome = resp.get("outcome")
    if outcome == "deleted":
        return [f"{where}  (message deleted)".strip()]
    text = message_text(args, names)
    if outcome == "replaced":
        return _posted(names, args.get("channel"), bot, text, " (edited)")
    if outcome == "in_channel":
        return _posted(names, args.get("channel"), bot, text)
    only = f"(only visible to {_user(names, args.get('user'))}) "
    return _indent(f"{where}  {only}" if where else only, text)
