"""In-memory Slack workspace: state plus the Web API methods the bot uses.

``dispatch`` runs one method under ``self.lock`` and returns its success body (without
``ok``) or raises :class:`SlackError` carrying Slack's error code.
"""

from __future__ import annotations

import itertools
import mimetypes
import re
import threading
import time
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


class Workspace:
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
            msg = {"type": "message", "text": text, "user": user_id, "ts": self._ts(), "team": self.team_id}
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
        us = max(int(time.time() * 1_000_000), self._last_us + 1)
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

    # ===================================================== Web API: auth, team
    def api_auth_test(self, args: dict) -> dict:
        return {
            "url": f"https://{self.domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def api_team_info(self, args: dict) -> dict:
        team = {"id": self.team_id, "name": self.team_name, "domain": self.domain}
        team.update(email_domain="", url=f"https://{self.domain}.slack.com/")
        return {"team": {**team, "icon": {"image_default": True}}}

    # ================================================================== chat
    def api_chat_postMessage(self, args: dict) -> dict:
        ch = self._joined(args.get("channel"), names=True, users=True)
        content = self._content(args)
        extra = {"metadata": args["metadata"]} if isinstance(args.get("metadata"), dict) else {}
        if args.get("thread_ts") and flag(args.get("reply_broadcast")):
            extra["subtype"] = "thread_broadcast"
        msg = self._post(ch, content, args.get("thread_ts"), **extra)
        return {"channel": ch["id"], "ts": msg["ts"], "message": dict(msg)}

    def api_chat_postEphemeral(self, args: dict) -> dict:
        ch = self._channel(args.get("channel"), names=True)
        user = args.get("user")
        if user not in self._users or user not in ch["members"]:
            raise SlackError("user_not_in_channel")
        content, ts = self._content(args), self._ts()
        eph = {"channel": ch["id"], "user": user, "ts": ts, "text": "", **content}
        self._ephemerals.append({**eph, "thread_ts": args.get("thread_ts"), "via": "api"})
        return {"message_ts": ts}

    def api_chat_update(self, args: dict) -> dict:
        ch = self._channel(args.get("channel"))
        msg = self._message(ch, args.get("ts"))
        if msg.get("user") != self.bot_user_id:
            raise SlackError("cant_update_message")
        msg.update(self._content(args))
        msg["edited"] = {"user": self.bot_user_id, "ts": self._ts()}
        body = {k: msg[k] for k in ("text", "blocks", "attachments", "user") if k in msg}
        return {"channel": ch["id"], "ts": msg["ts"], "text": msg["text"], "message": body}

    def api_chat_getPermalink(self, args: dict) -> dict:
        ch = self._channel(args.get("channel"))
        msg = self._message(ch, args.get("message_ts"))
        link = f"https://{self.domain}.slack.com/archives/{ch['id']}/p{msg['ts'].replace('.', '')}"
        if msg.get("thread_ts", msg["ts"]) != msg["ts"]:
            link += f"?thread_ts={msg['thread_ts']}&cid={ch['id']}"
        return {"channel": ch["id"], "permalink": link}

    # ========================================================= conversations
    def api_conversations_create(self, args: dict) -> dict:
        name = str(args.get("name") or "")
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not NAME_OK.match(name):
            raise SlackError("invalid_name_specials")
        if not re.search(r"[a-z0-9]", name):
            raise SlackError("invalid_name_punctuation")
        if self._by_name(name):
            raise SlackError("name_taken")
        ch = self._new_channel(name, None, self.bot_user_id, flag(args.get("is_private")))
        return {"channel": self._channel_obj(ch)}

    def api_conversations_invite(self, args: dict) -> dict:
        ch = self._channel(args.get("channel"))
        if ch["is_im"]:
            raise SlackError("method_not_supported_for_channel_type")
        if self.bot_user_id not in ch["members"]:
            raise SlackError("not_in_channel")
        users = csv(args.get("users"))
        if not users:
            raise SlackError("no_user")
        errors = []
        for uid in users:
            problem = (
                "cant_invite_self" if uid == self.bot_user_id
                else "user_not_found" if uid not in self._users
                else "already_in_channel" if uid in ch["members"]
                else None
            )  # fmt: skip
            if problem:
                errors.append({"user": uid, "ok": False, "error": problem})
        bad = {e["user"] for e in errors}
        if errors and not flag(args.get("force")):
            raise SlackError(errors[0]["error"], errors=errors)
        ch["members"].extend(u for u in dict.fromkeys(users) if u not in bad)
        return {"channel": self._channel_obj(ch), **({"errors": errors} if errors else {})}

    def api_conversations_join(self, args: dict) -> dict:
        ch = self._channel(args.get("channel"))
        if ch["is_im"] or ch["is_private"]:
            raise SlackError("method_not_supported_for_channel_type")
        warning = {"warning": "already_in_channel"} if self.bot_user_id in ch["members"] else {}
        if not warning:
            ch["members"].append(self.bot_user_id)
        return {"channel": self._channel_obj(ch), **warning}

    def api_conversations_setTopic(self, args: dict) -> dict:
        ch = self._joined(args.get("channel"))
        topic = str(args.get("topic") or "")
        if len(topic) > 250:
            raise SlackError("too_long")
        ch["topic"] = {"value": topic, "creator": self.bot_user_id, "last_set": int(time.time())}
        return {"channel": self._channel_obj(ch)}

    def api_conversations_info(self, args: dict) -> dict:
        return {"channel": self._channel_obj(self._channel(args.get("channel")))}

    def api_conversations_members(self, args: dict) -> dict:
        members = list(self._channel(args.get("channel"))["members"])
        return {"members": members, "response_metadata": {"next_cursor": ""}}

    def api_conversations_open(self, args: dict) -> dict:
        if args.get("channel"):
            ch = self._channel(args["channel"])
        else:
            users = [u for u in csv(args.get("users")) if u != self.bot_user_id]
            if not users:
                raise SlackError("users_list_not_supplied")
            if len(users) > 1:
                raise SlackError("method_not_supported_for_channel_type")
            self._user(users[0])
            existed = users[0] in self._ims
            ch = self._im_for(users[0])
            if existed:
                obj = self._channel_obj(ch)
                return {"no_op": True, "already_open": True, "channel": obj}
        full = flag(args.get("return_im"))
        return {"channel": self._channel_obj(ch) if full else {"id": ch["id"]}}

    def api_conversations_history(self, args: dict) -> dict:
        ch = self._joined(args.get("channel"))
        limit = int(args.get("limit") or 100)
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or 9e12)
        inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")

        def within(ts: float) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        top = [
            m
            for m in reversed(ch["messages"])
            if within(float(m["ts"]))
            and (m.get("thread_ts", m["ts"]) == m["ts"] or m.get("subtype") == "thread_broadcast")
        ]
        meta = {"next_cursor": ""}
        return {"messages": [dict(m) for m in top[:limit]], "has_more": len(top) > limit,
                "pin_count": len(ch["pins"]), "response_metadata": meta}  # fmt: skip

    def api_conversations_list(self, args: dict) -> dict:
        types = set(csv(args.get("types")) or ["public_channel"])
        out = []
        for ch in self._channels.values():
            kind = "im" if ch["is_im"] else "private_channel" if ch["is_private"] else None
            visible = kind is None or self.bot_user_id in ch["members"]
            if visible and (kind or "public_channel") in types:
                out.append(self._channel_obj(ch))
        return {"channels": out, "response_metadata": {"next_cursor": ""}}

    # ================================================== pins and reactions
    def api_pins_add(self, args: dict) -> dict:
        ch = self._channel(args.get("channel"))
        if not args.get("timestamp"):
            raise SlackError("no_item_specified")
        msg = self._message(ch, args["timestamp"])
        if msg["ts"] in ch["pins"]:
            raise SlackError("already_pinned")
        ch["pins"].append(msg["ts"])
        msg["pinned_to"] = [ch["id"]]
        return {}

    def api_reactions_add(self, args: dict) -> dict:
        ch = self._channel(args.get("channel"))
        name = str(args.get("name") or "").strip(":")
        if not name:
            raise SlackError("invalid_name")
        msg = self._message(ch, args.get("timestamp"))
        reaction = next((r for r in msg.setdefault("reactions", []) if r["name"] == name), None)
        if reaction is None:
            reaction = {"name": name, "users": [], "count": 0}
            msg["reactions"].append(reaction)
        if self.bot_user_id in reaction["users"]:
            raise SlackError("already_reacted")
        reaction["users"].append(self.bot_user_id)
        reaction["count"] += 1
        return {}

    # ======================================================== users, groups
    def api_users_info(self, args: dict) -> dict:
        return {"user": self._user_obj(self._user(args.get("user")))}

    def api_users_list(self, args: dict) -> dict:
        members = [self._user_obj(u) for u in self._users.values()]
        return {"members": members, "cache_ts": int(time.time()), "response_metadata": {}}

    def api_users_lookupByEmail(self, args: dict) -> dict:
        email = str(args.get("email") or "").lower()
        user = next((u for u in self._users.values() if (u["email"] or "").lower() == email), None)
        if not email or user is None:
            raise SlackError("users_not_found")
        return {"user": self._user_obj(user)}

    def api_usergroups_list(self, args: dict) -> dict:
        with_users = flag(args.get("include_users"))
        return {"usergroups": [self._group_obj(g, with_users) for g in self._groups.values()]}

    def _group(self, args: dict) -> dict:
        if (group := self._groups.get(args.get("usergroup"))) is None:
            raise SlackError("no_such_subteam")
        return group

    def api_usergroups_users_list(self, args: dict) -> dict:
        return {"users": list(self._group(args)["users"])}

    def api_usergroups_users_update(self, args: dict) -> dict:
        group, users = self._group(args), list(dict.fromkeys(csv(args.get("users"))))
        if not users or any(u not in self._users for u in users):
            raise SlackError("invalid_users")
        group.update(users=users, updated=int(time.time()), updated_by=self.bot_user_id)
        return {"usergroup": self._group_obj(group)}

    # ================================================================= files
    def api_files_getUploadURLExternal(self, args: dict) -> dict:
        filename, length = args.get("filename"), str(args.get("length") or "")
        if not filename or not length.isdigit():
            field = "filename" if not filename else "length"
            msg = f"[ERROR] missing required field: {field}"
            raise SlackError("invalid_arguments", response_metadata={"messages": [msg]})
        fid = self._next("F")
        mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        self._files[fid] = {
            "id": fid,
            "name": filename,
            "title": filename,
            "length": int(length),
            "content": None,
            "size": 0,
            "mimetype": mimetype,
            "channels": [],
            "created": int(time.time()),
            "completed": False,
        }
        return {"upload_url": f"{self.file_base_url}upload/{fid}", "file_id": fid}

    def store_upload(self, file_id: str, content: bytes) -> bool:
        """The POST to an upload_url; False if no such pending upload."""
        with self.lock:
            f = self._files.get(file_id)
            if f is None or f["completed"]:
                return False
            f.update(content=content, size=len(content))
            return True

    def api_files_completeUploadExternal(self, args: dict) -> dict:
        items = args.get("files")
        if not isinstance(items, list) or not items:
            raise SlackError("invalid_arguments")
        found = [self._files.get(i.get("id")) if isinstance(i, dict) else None for i in items]
        if any(f is None or f["content"] is None or f["completed"] for f in found):
            raise SlackError("file_not_found")
        target = args.get("channel_id") or (csv(args.get("channels")) or [None])[0]
        ch = None
        if target:
            if not CONVERSATION_ID.match(str(target)):
                raise SlackError("invalid_arguments")
            if target not in self._channels:
                raise SlackError("invalid_channel")
            ch = self._joined(target)
        for item, f in zip(items, found, strict=True):
            f.update(completed=True, title=item.get("title") or f["name"])
            f["channels"] += [ch["id"]] if ch else []
        objs = [self._file_obj(f) for f in found]
        if ch:
            text = {"text": args["initial_comment"]} if args.get("initial_comment") else {}
            self._post(ch, text, args.get("thread_ts"), files=objs, upload=True)
        return {"files": objs}

    # ================================================================= views
    def _view_obj(self, view: Any, view_id: str, root_view_id: str | None = None) -> dict:
        if isinstance(view, str) or not isinstance(view, dict) or "type" not in view:
            raise SlackError("invalid_arguments")
        problems = block_problems(view.get("blocks", []), max_blocks=100)
        title = _plain(view.get("title"))
        if view["type"] == "modal" and not 0 < len(title) <= 24:
            problems.append("must be less than 25 characters [json-pointer:/view/title/text]")
        if problems:
            messages = [f"[ERROR] {p}" for p in problems]
            raise SlackError("invalid_arguments", response_metadata={"messages": messages})
        obj = {"id": view_id, "team_id": self.team_id, "state": {"values": {}}}
        obj.update(dict.fromkeys(("private_metadata", "callback_id", "external_id"), ""))
        obj.update(clear_on_close=False, notify_on_close=False, previous_view_id=None)
        obj.update(root_view_id=root_view_id or view_id, app_id=self.app_id, bot_id=self.bot_id)
        obj.update(view, id=view_id, hash=f"{int(time.time())}.{next(self._seq):08x}")
        self._views[view_id] = obj
        return dict(obj)

    def api_views_open(self, args: dict) -> dict:
        if not args.get("trigger_id"):
            msg = "[ERROR] missing required field: trigger_id"
            raise SlackError("invalid_arguments", response_metadata={"messages": [msg]})
        return {"view": self._view_obj(args.get("view"), self._next("V"))}

    def api_views_update(self, args: dict) -> dict:
        ext = args.get("external_id")
        view_id = args.get("view_id") or next(
            (v["id"] for v in self._views.values() if ext and v.get("external_id") == ext), None
        )
        if view_id not in self._views:
            raise SlackError("not_found")
        old = self._views[view_id]
        if args.get("hash") and args["hash"] != old["hash"]:
            raise SlackError("hash_conflict")
        return {"view": self._view_obj(args.get("view"), view_id, old["root_view_id"])}

    def api_views_publish(self, args: dict) -> dict:
        user_id = args.get("user_id")
        self._user(user_id)
        view = args.get("view")
        if isinstance(view, dict) and view.get("type") != "home":
            raise SlackError("invalid_arguments")
        view_id = self._homes.get(user_id) or self._next("V")
        obj = self._view_obj(view, view_id)
        self._homes[user_id] = view_id
        return {"view": obj}
