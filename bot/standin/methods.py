"""The Web API methods of the in-memory Slack workspace, one ``api_<method>`` each (dots as
underscores); ``dispatch`` in the state class finds them by name."""

from __future__ import annotations

import mimetypes
import re
import time
from typing import Any

from bot.standin.workspace import (
    CONVERSATION_ID,
    NAME_OK,
    SlackError,
    WorkspaceState,
    _plain,
    block_problems,
    csv,
    flag,
)


class Workspace(WorkspaceState):
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

    # ========================================================== bookmarks
    def api_bookmarks_add(self, args: dict) -> dict:
        ch = self._joined(args.get("channel_id"))
        title, kind, link = args.get("title"), args.get("type"), args.get("link")
        if not title or kind != "link" or not link:
            raise SlackError("invalid_arguments")
        if not re.match(r"https?://", str(link)):
            raise SlackError("invalid_link")
        bookmark = {"id": self._next("Bk"), "channel_id": ch["id"], "title": str(title), "type": "link",
                    "link": str(link), "emoji": args.get("emoji") or "", "date_created": int(time.time())}
        ch.setdefault("bookmarks", []).append(bookmark)
        return {"bookmark": dict(bookmark)}

    def api_bookmarks_list(self, args: dict) -> dict:
        ch = self._joined(args.get("channel_id"))
        return {"bookmarks": [dict(b) for b in ch.get("bookmarks", [])]}

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
