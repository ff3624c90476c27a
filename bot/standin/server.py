"""HTTP front of the stand-in: Slack's Web API, file upload URLs and response_urls.

:class:`SlackStandIn` is the workspace plus a stdlib ``ThreadingHTTPServer`` on 127.0.0.1
(whose requests ``http_handler.py`` decodes), call recording, failure injection and read-only
inspection helpers for tests.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, Self

from bot.standin.failures import InjectedFailures
from bot.standin.http_handler import RequestHandler
from bot.standin.limits import RateLimits
from bot.standin.methods import Workspace
from bot.standin.oidc import OpenIDProvider
from bot.standin.outage import Outage
from bot.standin.scopes import manifest_scopes, missing_scope
from bot.standin.workspace import SlackError, flag

log = logging.getLogger(__name__)

JSON_ARGS = ("blocks", "attachments", "view", "files", "metadata")
MAX_RESPONSE_URL_USES = 5


@dataclass(frozen=True)
class Call:
    """One recorded request: Web API method, ``response_url`` or ``upload_url``."""

    method: str
    args: dict[str, Any]
    response: dict[str, Any]
    at: float = field(default_factory=time.time)
    status: int = 200

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


class SlackStandIn(Workspace, OpenIDProvider, Outage, InjectedFailures):
    """A local stand-in for Slack's Web API; see the package docstring for usage."""

    def __init__(
        self,
        bot_token: str = "xoxb-standin",
        bot_user_id: str = "UBOT",
        team_id: str = "T0STANDIN",
        bot_name: str = "bot",
        team_name: str = "Stand-in Workspace",
        port: int = 0,
        scopes: frozenset[str] | None = None,
        limits: bool = True,
    ) -> None:
        super().__init__(bot_token, bot_user_id, team_id, bot_name, team_name)
        # The bot token's scopes: the repository's manifest unless told (None: no check).
        self.scopes = manifest_scopes() if scopes is None else scopes
        self._oidc_init()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self._calls: list[Call] = []
        self._listeners: list[Callable[[Call], None]] = []
        self._failures_init()
        self._responders: dict[str, dict] = {}
        self.rate_limits = RateLimits(limits)  # Slack's tiers (bot/slack/limits.py)

    def set_limits(self, on: bool) -> None:
        """Switch Slack's rate limits on or off (off: for tests about something else)."""
        self.rate_limits.enabled = on

    # -------------------------------------------------------------- lifecycle
    def start(self) -> Self:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self._port), RequestHandler)
        server.daemon_threads = True
        server.standin = self  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}/"
        self.file_base_url = self.base_url
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = "slack-standin"
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        if not self.base_url:
            raise RuntimeError("SlackStandIn is not started")
        return self.base_url + "api/"

    # -------------------------------------------------------------- recording
    @property
    def calls(self) -> list[Call]:
        with self.lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def reset_calls(self) -> None:
        with self.lock:
            self._calls.clear()

    def on_call(self, callback: Callable[[Call], None]) -> None:
        """``callback(call)`` runs (on a server thread) after every recorded call."""
        with self.lock:
            self._listeners.append(callback)

    def _record(self, method: str, args: dict, response: dict, status: int = 200) -> Call:
        call = Call(method, copy.deepcopy(args), copy.deepcopy(response), time.time(), status)
        with self.lock:
            self._calls.append(call)
        return call

    def _notify(self, call: Call) -> None:
        with self.lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(call)
            except Exception:  # a broken console printer must not break the API
                log.exception("on_call listener failed for %s", call.method)

    # ------------------------------------------------------------ entrypoints
    def handle_api(self, method: str, args: dict, token: str | None) -> tuple[int, dict, dict]:
        """One Web API request -> (HTTP status, extra headers, JSON body)."""
        args = {k: _maybe_json(k, v) for k, v in args.items() if k != "token"}
        if (down := self.outage_answer(method)) is not None:
            with self.lock:
                call = self._record(method, args, down[2], down[0])
            self._notify(call)
            return down
        status, headers = 200, {}
        with self.lock:
            if not token:  # the token first, as Slack: a refused app token is invalid_auth
                body = {"ok": False, "error": "not_authed"}
            elif token != self.bot_token:
                body = {"ok": False, "error": "invalid_auth"}
            elif not self.has_method(method):
                body = {"ok": False, "error": "unknown_method"}
            elif missing := self._missing_scope(method, args):
                body = {"ok": False, "error": "missing_scope", "needed": missing,
                        "provided": ",".join(sorted(self.scopes or ()))}
            elif retry_after := self.rate_limits.take(method, args):
                status, headers = 429, {"Retry-After": str(retry_after)}
                body = {"ok": False, "error": "ratelimited"}
            elif failure := self._take_failure(method, args):
                status, headers, body = failure
            else:
                try:
                    body = {"ok": True, **self.dispatch(method, args)}
                except SlackError as e:
                    body = {"ok": False, "error": e.error, **e.extra}
            call = self._record(method, args, body, status)
        self._notify(call)
        return status, headers, body

    def _missing_scope(self, method: str, args: dict) -> str | None:
        """The scope the bot token lacks for this call, as Slack's ``needed``; None if it may."""
        channel = self._channels.get(str(args.get("channel", "")))
        return missing_scope(self.scopes, method, channel, private=flag(args.get("is_private")))

    def response_url(
        self,
        name: str | None = None,
        channel_id: str | None = None,
        user_id: str | None = None,
        message_ts: str | None = None,
    ) -> str:
        """A response_url as in slash-command/interaction payloads.

        ``channel_id``/``user_id`` say where the command was typed and by whom;
        ``message_ts`` is the message an interaction came from (for replace/delete_original).
        Replies land as ephemerals for ``user_id`` or, with ``response_type: in_channel``,
        as bot messages in ``channel_id`` (only recorded as a call when there is no channel).
        """
        base = self.api_url[: -len("api/")]  # raises if the server is not started
        with self.lock:
            rid = f"R{next(self._seq):06d}"
            if name:
                rid += "-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)
            self._responders[rid] = {"channel": channel_id, "user": user_id, "uses": 0}
            self._responders[rid]["message_ts"] = message_ts
        return f"{base}respond/{rid}"

    def respond(self, rid: str, payload: dict) -> tuple[int, str]:
        """A POST to a response_url -> (HTTP status, text body)."""
        with self.lock:
            ctx = self._responders.get(rid)
            status, outcome = 200, "ok"
            if ctx is None:
                status, outcome = 404, "expired_url"
            elif ctx["uses"] >= MAX_RESPONSE_URL_USES:
                status, outcome = 404, "used_url"
            else:
                ctx["uses"] += 1
                try:
                    outcome = self._apply_response(ctx, payload)
                except SlackError as e:
                    status, outcome = 400, e.error
            ctx = ctx or {}
            where = {"url_id": rid, "channel": ctx.get("channel"), "user": ctx.get("user")}
            response = {"ok": status == 200, "outcome" if status == 200 else "error": outcome}
            call = self._record("response_url", {**where, **payload}, response, status)
        self._notify(call)
        return status, "ok" if status == 200 else outcome

    def _apply_response(self, ctx: dict, payload: dict) -> str:
        ch = self._channels.get(ctx["channel"] or "")
        original = self._find_message(ch, ctx["message_ts"]) if ch else None
        if flag(payload.get("delete_original")):
            if original:
                ch["messages"].remove(original)
            return "deleted"
        content = self._content(payload)
        if flag(payload.get("replace_original")) and original:
            original.update(content)
            original["edited"] = {"user": self.bot_user_id, "ts": self._ts()}
            return "replaced"
        if payload.get("response_type") == "in_channel":
            if ch:
                self._post(ch, content, payload.get("thread_ts"))
            return "in_channel"
        eph = {"channel": ctx["channel"], "user": ctx["user"], "ts": self._ts(), "text": ""}
        eph.update(content, via="response_url", thread_ts=payload.get("thread_ts"))
        eph["replace_original"] = flag(payload.get("replace_original"))
        self._ephemerals.append(eph)
        return "ephemeral"

    def upload(self, file_id: str, content: bytes) -> tuple[int, str]:
        """A POST to an upload_url from files.getUploadURLExternal."""
        stored = self.store_upload(file_id, content)
        status, text = (200, f"OK - {len(content)}") if stored else (404, "file_not_found")
        response = {"ok": stored, "status": text}
        call = self._record("upload_url", {"file_id": file_id, "length": len(content)}, response)
        self._notify(call)
        return status, text

    def download(self, file_id: str, token: str | None) -> bytes | None:
        with self.lock:
            f = self._files.get(file_id)
            ok = token == self.bot_token and f is not None and f["completed"]
            return f["content"] if ok else None

    # ------------------------------------------------------------- inspection
    def channel_by_name(self, name: str) -> dict | None:
        with self.lock:
            ch = self._by_name(name.lstrip("#"))
            return self._channel_obj(ch) if ch and not ch["is_im"] else None

    def messages(self, channel_id: str) -> list[dict]:
        with self.lock:
            ch = self._channels.get(channel_id)
            return copy.deepcopy(ch["messages"]) if ch else []

    def message(self, channel_id: str, ts: str) -> dict | None:
        with self.lock:
            ch = self._channels.get(channel_id)
            return copy.deepcopy(self._find_message(ch, ts)) if ch else None

    def pins(self, channel_id: str) -> list[dict]:
        with self.lock:
            ch = self._channels.get(channel_id) or {"messages": [], "pins": []}
            return [copy.deepcopy(m) for m in ch["messages"] if m["ts"] in ch["pins"]]

    def bookmarks(self, channel_id: str) -> list[dict]:
        with self.lock:
            return [dict(b) for b in self._channels[channel_id].get("bookmarks", [])]

    def topic(self, channel_id: str) -> str:
        with self.lock:
            return self._channels[channel_id]["topic"]["value"]

    def members(self, channel_id: str) -> list[str]:
        with self.lock:
            return list(self._channels[channel_id]["members"])

    def dms(self, user_id: str) -> list[dict]:
        """Messages in the bot's IM with ``user_id``."""
        with self.lock:
            return self.messages(self._ims[user_id]) if user_id in self._ims else []

    def ephemerals(self, user_id: str | None = None) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(e) for e in self._ephemerals if user_id in (None, e["user"])]

    def usergroup_users(self, usergroup_id: str) -> list[str]:
        with self.lock:
            return list(self._groups[usergroup_id]["users"])

    def files(self) -> list[dict]:
        """Completed uploads: id, name, title, content (bytes), size, channels, ..."""
        with self.lock:
            return [copy.deepcopy(f) for f in self._files.values() if f["completed"]]

    @property
    def views(self) -> list[dict]:
        """Opened modals and published home tabs, current state, oldest first."""
        with self.lock:
            return copy.deepcopy(list(self._views.values()))

    def home(self, user_id: str) -> dict | None:
        with self.lock:
            view_id = self._homes.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def user_name(self, user_id: str) -> str:
        with self.lock:
            return self._users[user_id]["name"] if user_id in self._users else user_id

    def channel_name(self, channel_id: str) -> str:
        """``#name`` for channels, ``@user`` for the bot's IMs, the id itself if unknown."""
        with self.lock:
            ch = self._channels.get(channel_id)
            if ch is None:
                return channel_id
            return "@" + self.user_name(ch["user"]) if ch["is_im"] else "#" + ch["name"]

    def usergroup_handle(self, usergroup_id: str) -> str:
        with self.lock:
            group = self._groups.get(usergroup_id)
            return group["handle"] if group else usergroup_id


def _maybe_json(key: str, value: Any) -> Any:
    if key in JSON_ARGS and isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
