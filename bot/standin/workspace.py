"""In-memory Slack workspace: its state, seeding and the helpers the Web API methods share
(the methods themselves are in ``methods.py``).

``dispatch`` runs one method under ``self.lock`` and returns its success body (without
``ok``) or raises :class:`SlackError` carrying Slack's error code.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytz

NAME_OK = re.compile(r"^[a-z0-9_-]+$")
CONVERSATION_ID = re.compile(r"^[CGDZ][A-Z0-9]+$")
_TZ_LABELS = {
    "PST": "Pacific Standard Time",
    "PDT": "Pacific Daylight Time",
    "MST": "Mountain Standard Time",
    "MDT": "Mountain Daylight Time",
    "CST": "Central Standard Time",
    "CDT": "Central Daylight Time",
    "EST": "Eastern Standard Time",
    "EDT": "Eastern Daylight Time",
    "GMT": "Greenwich Mean Time",
    "BST": "British Summer Time",
    "UTC": "UTC",
    "CET": "Central European Time",
    "CEST": "Central European Summer Time",
    "IST": "India Standard Time",
    "JST": "Japan Standard Time",
    "AEST": "Australian Eastern Standard Time",
    "AEDT": "Australian Eastern Daylight Time",
}
_FALSE_FLAGS = ("is_archived", "is_shared", "is_ext_shared", "is_org_shared", "is_mpim", "is_im")


class SlackError(Exception):
    """A Web API failure: ``error`` is Slack's code, ``extra`` is merged into the body."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def tz_fields(tz: str) -> tuple[int, str]:
    """(tz_offset in seconds, tz_label) of an IANA zone at the current time."""
    local = datetime.now(pytz.utc).astimezone(pytz.timezone(tz))
    abbrev = local.tzname() or tz
    return int(local.utcoffset().total_seconds()), _TZ_LABELS.get(abbrev, abbrev)


def flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def csv(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def _plain(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def block_problems(blocks: Any, max_blocks: int = 50) -> list[str]:
    """Slack's Block Kit limits most likely to bite: counts and text lengths."""
    if not isinstance(blocks, list):
        return ["must be an array"]
    problems = [f"no more than {max_blocks} items allowed"] if len(blocks) > max_blocks else []
    limits = {"section": 3000, "header": 150, "context": 10, "actions": 25}
    for i, b in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        if not isinstance(b, dict) or "type" not in b:
            problems.append(f"missing required field: type {where}")
            continue
        kind = b["type"]
        if kind in ("section", "header") and len(_plain(b.get("text"))) > limits[kind]:
            problems.append(f"must be less than {limits[kind] + 1} characters {where}/text")
        if kind in ("context", "actions") and len(b.get("elements", [])) > limits[kind]:
            problems.append(f"no more than {limits[kind]} items allowed {where}/elements")
        buttons = [e for e in b.get("elements", []) if isinstance(e, dict)]
        buttons += [b["accessory"]] if isinstance(b.get("accessory"), dict) else []
        for e in buttons:
            if e.get("type") == "button" and len(_plain(e.get("text"))) > 75:
                problems.append(f"must be less than 76 characters {where}/text")
    return problems


class WorkspaceState:
    """State of one workspace seen by one bot user. Thread-safe through ``self.lock``."""

    def __init__(
        self,
        bot_token: str = "xoxb-standin",
        bot_user_id: str = "UBOT",
        team_id: str = "T0STANDIN",
        bot_name: str = "bot",
        team_name: str = "Stand-in Workspace",
    ) -> None:
        self.lock = threading.RLock()
        self.bot_token, self.bot_user_id, self.team_id = bot_token, bot_user_id, team_id
        self.bot_name, self.team_name, self.domain = bot_name, team_name, "standin"
        self.bot_id, self.app_id = "B0STANDIN", "A0STANDIN"
        self.file_base_url = "http://127.0.0.1/"  # replaced by the server once bound
        self._users: dict[str, dict] = {}
        self._channels: dict[str, dict] = {}
        self._ims: dict[str, str] = {}
        self._groups: dict[str, dict] = {}
        self._files: dict[str, dict] = {}
        self._views: dict[str, dict] = {}
        self._homes: dict[str, str] = {}
        self._ephemerals: list[dict] = []
        self._seq = itertools.count(1)
        self._last_us = 0
        self.now: Callable[[], float] = time.time  # message timestamps (the console sets its clock)
        self.add_user(bot_user_id, bot_name, real_name=bot_name, is_bot=True)

    # ----------------------------------------------------------------- seeding
    def add_user(
        self,
        user_id: str,
        name: str,
        tz: str = "America/Los_Angeles",
        email: str | None = None,
        real_name: str | None = None,
        is_bot: bool = False,
    ) -> str:
        pytz.timezone(tz)  # fail fast on an unknown zone name
        with self.lock:
            self._users[user_id] = {
                "id": user_id,
                "name": name,
                "real_name": real_name or name,
                "tz": tz,
                "email": email,
                "is_bot": is_bot,
                "updated": int(time.time()),
            }
        return user_id

    def add_channel(
        self, name: str, channel_id: str | None = None, members=(), is_private: bool = False
    ) -> str:
        """A channel someone else created; the bot is a member only if listed in ``members``."""
        with self.lock:
            ch = self._new_channel(name, channel_id, creator="", is_private=is_private)
            ch["members"].extend(dict.fromkeys(members))
            return ch["id"]

    def add_member(self, channel_id: str, *user_ids: str) -> None:
        with self.lock:
            members = self._channels[channel_id]["members"]
            members.extend(u for u in dict.fromkeys(user_ids) if u not in members)

    def add_usergroup(self, usergroup_id: str, handle: str, name=None, users=()) -> str:
        now = int(time.time())
        with self.lock:
            self._groups[usergroup_id] = {
                "id": usergroup_id,
                "handle": handle,
                "name": name or handle,
                "users": list(users),
                "created": now,
                "updated": now,
                "updated_by": "",
            }
        return usergroup_id

    # --------------------------------------------------------------- dispatch
    def post_as_user(self, channel_id: str, user_id: str, text: str) -> str:
        """A person (not the bot) writes in a channel; returns the message ts (tests, console)."""
        with self.lock:
            ch = self._channel(channel_id, names=True)
            self._user(user_id)
            if user_id not in ch["members"]:
                ch["members"].append(user_id)
            msg = {
                "type": "message",
                "text": text,
                "user": user_id,
                "ts": self._ts(),
                "team": self.team_id,
            }
            ch["messages"].append(msg)
            return str(msg["ts"])

    def channel_list(self) -> list[dict]:
        """Every channel except DMs: id, name, members (a snapshot)."""
        with self.lock:
            return [
                {"id": c["id"], "name": c["name"], "members": list(c["members"])}
                for c in self._channels.values()
                if not c["is_im"]
            ]

    def has_method(self, method: str) -> bool:
        return callable(getattr(self, "api_" + method.replace(".", "_"), None))

    def dispatch(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return getattr(self, "api_" + method.replace(".", "_"))(args)

    # ---------------------------------------------------------------- helpers
    def _next(self, prefix: str) -> str:
        return f"{prefix}{next(self._seq):08X}"

    def _ts(self) -> str:
        us = max(int(self.now() * 1_000_000), self._last_us + 1)
        self._last_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def _by_name(self, name: str) -> dict | None:
        return next((c for c in self._channels.values() if c["name"] == name), None)

    def _new_channel(self, name: str, cid: str | None, creator: str, is_private=False) -> dict:
        cid = cid or self._next("G" if is_private else "C")
        empty = {"value": "", "creator": "", "last_set": 0}
        self._channels[cid] = {
            "id": cid,
            "name": name,
            "created": int(time.time()),
            "creator": creator,
            "is_private": is_private,
            "is_im": False,
            "user": None,
            "pins": [],
            "members": [creator] if creator else [],
            "messages": [],
            "topic": dict(empty),
            "purpose": dict(empty),
        }
        return self._channels[cid]

    def _im_for(self, user_id: str) -> dict:
        if user_id not in self._ims:
            ch = self._new_channel("", self._next("D"), creator="")
            ch.update(is_im=True, user=user_id, members=[self.bot_user_id, user_id])
            self._ims[user_id] = ch["id"]
        return self._channels[self._ims[user_id]]

    def _channel(self, ref: Any, *, names: bool = False, users: bool = False) -> dict:
        if ref and isinstance(ref, str):
            if ref in self._channels:
                return self._channels[ref]
            if users and ref in self._users and ref != self.bot_user_id:
                return self._im_for(ref)
            if names and (ch := self._by_name(ref.lstrip("#"))) and not ch["is_im"]:
                return ch
        raise SlackError("channel_not_found")

    def _joined(self, ref: Any, **kw: bool) -> dict:
        ch = self._channel(ref, **kw)
        if self.bot_user_id not in ch["members"]:
            raise SlackError("not_in_channel")
        return ch

    @staticmethod
    def _find_message(ch: dict, ts: Any) -> dict | None:
        return next((m for m in ch["messages"] if m["ts"] == ts), None)

    def _message(self, ch: dict, ts: Any) -> dict:
        if (msg := self._find_message(ch, ts)) is None:
            raise SlackError("message_not_found")
        return msg

    def _user(self, user_id: Any) -> dict:
        if not isinstance(user_id, str) or user_id not in self._users:
            raise SlackError("user_not_found")
        return self._users[user_id]

    @staticmethod
    def _content(args: dict) -> dict:
        """text/blocks/attachments of a message, validated the way Slack does."""
        out = {k: args[k] for k in ("text", "blocks", "attachments") if args.get(k)}
        if isinstance(out.get("blocks"), str):
            raise SlackError("invalid_blocks_format")
        if problems := block_problems(out.get("blocks", [])):
            messages = [f"[ERROR] {p}" for p in problems]
            raise SlackError(
                "invalid_blocks", errors=problems, response_metadata={"messages": messages}
            )
        if not out:
            raise SlackError("no_text")
        return out

    def _post(self, ch: dict, content: dict, thread_ts: Any = None, **extra: Any) -> dict:
        msg = {"type": "message", "text": "", **content, "user": self.bot_user_id}
        msg.update(bot_id=self.bot_id, app_id=self.app_id, ts=self._ts(), team=self.team_id)
        if thread_ts:
            msg["thread_ts"] = thread_ts
            if parent := self._find_message(ch, thread_ts):
                parent.setdefault("thread_ts", thread_ts)
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = msg["ts"]
        msg.update(extra)
        ch["messages"].append(msg)
        return msg

    def _channel_obj(self, ch: dict) -> dict:
        if ch["is_im"]:
            return {
                "id": ch["id"],
                "created": ch["created"],
                "is_im": True,
                "user": ch["user"],
                "is_org_shared": False,
                "context_team_id": self.team_id,
                "priority": 0,
                "is_user_deleted": False,
            }
        private = ch["is_private"]
        return {
            "id": ch["id"],
            "name": ch["name"],
            "name_normalized": ch["name"],
            "is_channel": not private,
            "is_group": private,
            "is_private": private,
            **dict.fromkeys(_FALSE_FLAGS, False),
            "created": ch["created"],
            "creator": ch["creator"],
            "unlinked": 0,
            "is_general": ch["name"] == "general",
            "context_team_id": self.team_id,
            "is_member": self.bot_user_id in ch["members"],
            "pending_shared": [],
            "topic": dict(ch["topic"]),
            "purpose": dict(ch["purpose"]),
            "previous_names": [],
            "num_members": len(ch["members"]),
        }

    def _user_obj(self, u: dict) -> dict:
        offset, label = tz_fields(u["tz"])
        profile = {"real_name": u["real_name"], "real_name_normalized": u["real_name"]}
        profile.update(display_name=u["name"], display_name_normalized=u["name"], team=self.team_id)
        if u["email"]:
            profile["email"] = u["email"]
        if u["is_bot"]:
            profile.update(bot_id=self.bot_id, api_app_id=self.app_id)
        flags = ("deleted", "is_admin", "is_owner", "is_primary_owner", "is_restricted")
        return {
            "id": u["id"],
            "team_id": self.team_id,
            "name": u["name"],
            "real_name": u["real_name"],
            "tz": u["tz"],
            "tz_label": label,
            "tz_offset": offset,
            **dict.fromkeys(flags + ("is_ultra_restricted", "is_app_user"), False),
            "is_bot": u["is_bot"],
            "updated": u["updated"],
            "profile": profile,
        }

    def _group_obj(self, g: dict, include_users: bool = True) -> dict:
        obj = {
            "id": g["id"],
            "team_id": self.team_id,
            "is_usergroup": True,
            "is_subteam": True,
            "name": g["name"],
            "description": "",
            "handle": g["handle"],
            "is_external": False,
            "date_create": g["created"],
            "date_update": g["updated"],
            "date_delete": 0,
            "auto_type": None,
            "created_by": "",
            "updated_by": g["updated_by"],
            "deleted_by": None,
            "prefs": {"channels": [], "groups": []},
            "user_count": len(g["users"]),
        }
        return {**obj, "users": list(g["users"])} if include_users else obj

    def _file_obj(self, f: dict) -> dict:
        url = f"{self.file_base_url}files/{f['id']}/{f['name']}"
        return {
            "id": f["id"],
            "created": f["created"],
            "timestamp": f["created"],
            "name": f["name"],
            "title": f["title"],
            "mimetype": f["mimetype"],
            "filetype": f["name"].rsplit(".", 1)[-1] if "." in f["name"] else "binary",
            "user": self.bot_user_id,
            "user_team": self.team_id,
            "size": f["size"],
            "mode": "hosted",
            "is_external": False,
            "is_public": True,
            "url_private": url,
            "url_private_download": url,
            "permalink": url,
            "channels": list(f["channels"]),
            "groups": [],
            "ims": [],
        }
