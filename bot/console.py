"""`console`: the same app, handlers, database and scheduler, with Slack's Web API stood in by a
local in-memory workspace. Type slash commands as a named user and see what Slack would show.

Lines (typed, or replayed from `--script FILE`):
  @alice /incident declare sev2 Checkout down      a slash command (in #general)
  @alice #inc-1 /incident sev 1                    ... typed in a channel (a prefix of its name)
  @bob #inc-1 says Error rate is back to normal     a message posted by a person
  @alice #inc-1 pins last                           :pushpin: on the channel's last human message
  @frank press Acknowledge                          press the newest button with that label they can see
                                                    (on the web page they opened last, else in Slack)
  @frank open LINK                                  open a link they received (`open link`: the newest)
  @alice submit title=Disk full; severity=1; private=yes   fill in and submit the open form
  @alice #inc-1 shortcut last                       "Add to incident timeline" on the last message
  @alice home                                       open App Home and show it
  +45m  +2h  +1d                                    move the clock on; due handoffs, reminders and
                                                    escalations fire at their own instants
  at 2026-03-10T15:00Z                              set the clock (before anything else happens)
  user alice U0ALICE America/Los_Angeles            add a person with a time zone
  # a comment
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from concurrent.futures import Executor, Future
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, TextIO

from slack_bolt.request import BoltRequest

from bot.clock import ManualClock
from bot.notify.contacts import Contact
from bot.notify.flows import Message
from bot.runtime import Runtime
from bot.slack.app import create_app
from bot.slack.signing import signed_headers
from bot.standin import SlackStandIn, render

SECRET = "console-signing-secret"
TOKEN = "xoxb-console"
CLIENT_ID, CLIENT_SECRET = "0000000000.1111111111", "console-client-secret"  # Sign in with Slack
DURATION = re.compile(r"^\+(\d+)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
QUIET = {"users.info", "users.lookupByEmail", "conversations.history", "conversations.members",
         "chat.getPermalink", "auth.test", "conversations.info", "conversations.join"}


class ConsoleError(Exception):
    """A console line that cannot be understood."""


class InlineExecutor(Executor):
    """Runs what a listener hands on after its acknowledgement at once, in the listener's own
    thread, so that the console shows everything in the order it happened."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001  (kept in the future, as a pool would)
            future.set_exception(exc)
        return future


class Console:
    def __init__(self, runtime: Runtime, slack: SlackStandIn, out: TextIO) -> None:
        self.rt = runtime
        self.slack = slack
        self.out = out
        self.clock: ManualClock = runtime.clock  # type: ignore[assignment]
        self.bolt = create_app(runtime, signing_secret=SECRET, listener_executor=InlineExecutor())
        self.names: dict[str, str] = {}
        self._stamp: str | None = None  # printed before the first line a fired job shows
        self.links: dict[str, str] = {}  # the newest link each person received outside Slack
        self.forms: dict[str, tuple[str, str, str]] = {}  # (path, csrf, button) of the page each opened last
        import bot.web.routes  # noqa: F401  (the acknowledgement link's page)
        from bot.web.app import create_web_app

        self.web = create_web_app(runtime, self.bolt).test_client()
        slack.on_call(self._show)
        if runtime.notifications is not None:  # outside Slack: printed like a DM, never sent
            runtime.notifications.sender = self.push

    def push(self, user_id: str, contact: Contact, message: Message) -> None:
        who = next((name for name, uid in self.names.items() if uid == user_id), user_id)
        if self._stamp:
            self.out.write(self._stamp + "\n")
            self._stamp = None
        body = message.body.replace("\n", " ")
        self.out.write(f"    [push to @{who}] ({contact.name}) {message.title}: {body}\n")
        if message.link:
            self.links[user_id] = message.link

    def _show(self, call: Any) -> None:
        if call.method in QUIET:
            return
        lines = render(call, names=self.slack)
        if lines and self._stamp:
            self.out.write(self._stamp + "\n")
            self._stamp = None
        for line in lines:
            self.out.write(f"    {line}\n")

    def say(self, text: str) -> None:
        self.out.write(text + "\n")

    def add_user(self, name: str, user_id: str, tz: str) -> None:
        self.slack.add_user(user_id, name, tz=tz, email=f"{name}@example.com", real_name=name.title())
        self.names[name] = user_id
        if self.slack.channel_by_name("general"):
            self.slack.add_member(self.slack.channel_by_name("general")["id"], user_id)

    def user_id(self, name: str) -> str:
        if name not in self.names:
            raise ConsoleError(f"unknown person @{name}; add them with `user {name} U0{name.upper()} Europe/Dublin`")
        return self.names[name]

    def channel_id(self, prefix: str) -> str:
        name = prefix.lstrip("#")
        exact = self.slack.channel_by_name(name)
        if exact:
            return str(exact["id"])
        for channel in self.slack.channel_list():
            if channel["name"].startswith(name):
                return str(channel["id"])
        raise ConsoleError(f"no channel #{name}")

    def run_line(self, line: str) -> None:
        line = line.strip()
        if not line or line.startswith("#"):
            return
        stamp = self.clock.now().strftime("%a %Y-%m-%d %H:%M UTC")
        if match := DURATION.match(line):
            amount, unit = int(match.group(1)), UNITS[match.group(2)]
            self.say(f"[{stamp}] … {line[1:]} later")
            self.advance(timedelta(**{unit: amount}))
            return
        if line.startswith("at "):
            self.clock.set(clock_instant(line[3:].strip()))
            self.say(f"[clock set to {self.clock.now():%a %Y-%m-%d %H:%M} UTC]")
            return
        if line.startswith("user "):
            parts = line.split()
            if len(parts) != 4:
                raise ConsoleError("use: user NAME USER_ID TIME_ZONE")
            self.add_user(parts[1], parts[2], parts[3])
            return
        if not line.startswith("@"):
            raise ConsoleError("a line starts with @person, +45m, at, user or #")
        who, _, rest = line[1:].partition(" ")
        user_id = self.user_id(who)
        channel = self.slack.channel_by_name("general")["id"]
        if rest.startswith("#"):
            target, _, rest = rest.partition(" ")
            channel = self.channel_id(target)
        self.say(f"[{stamp}] @{who}: {rest}")
        if rest.startswith("/"):
            command, _, text = rest.partition(" ")
            self.slash(user_id, channel, command, text)
        elif rest.startswith("says "):
            self.slack.post_as_user(channel, user_id, rest[5:])
            self.say(f"    {self.slack.channel_name(channel)}  @{who}: {rest[5:]}")
        elif rest == "pins last":
            self.pin_last(user_id, channel)
        elif rest.startswith("press "):
            self.press(user_id, rest[6:].strip())
        elif rest.startswith("open "):
            self.open(user_id, rest[5:].strip())
        elif rest == "submit" or rest.startswith("submit "):
            self.submit(user_id, rest[6:].strip())
        elif rest == "shortcut last":
            self.shortcut_last(user_id, channel)
        elif rest == "home":
            self.home(user_id)
        else:
            raise ConsoleError("after @person: /command ..., says TEXT, pins last, open LINK, press LABEL, "
                               "submit FIELD=VALUE; ..., shortcut last or home")
        self.settle()

    def dispatch(self, body: str, content_type: str) -> Any:
        headers = {"content-type": content_type, **signed_headers(SECRET, body)}
        return self.bolt.dispatch(BoltRequest(body=body, headers=headers))

    def slash(self, user_id: str, channel: str, command: str, text: str) -> None:
        # Slack escapes a picked person as <@U123|name> (the manifest sets should_escape).
        text = re.sub(r"@([a-z0-9_.-]+)", lambda m: f"<@{self.names[m.group(1)]}|{m.group(1)}>" if m.group(1) in self.names else m.group(0), text)
        body = urllib.parse.urlencode({
            "command": command, "text": text, "user_id": user_id, "channel_id": channel, "team_id": "T0CONSOLE",
            "response_url": self.slack.response_url(channel_id=channel, user_id=user_id),
            "trigger_id": f"console-{time.monotonic_ns()}", "api_app_id": "A0CONSOLE",
        })
        response = self.dispatch(body, "application/x-www-form-urlencoded")
        if response.body:
            try:
                reply = json.loads(response.body).get("text", "")
            except ValueError:
                reply = response.body
            if reply:
                self.say("    (only visible to you) " + render_text(reply, self.slack).replace("\n", "\n        "))

    def event(self, event: dict[str, Any]) -> None:
        body = json.dumps({"type": "event_callback", "team_id": "T0CONSOLE", "api_app_id": "A0CONSOLE",
                           "event_id": f"EvC{time.monotonic_ns()}", "event_time": int(time.time()), "event": event})
        self.dispatch(body, "application/json")

    def pin_last(self, user_id: str, channel: str) -> None:
        messages = [m for m in self.slack.messages(channel) if not m.get("bot_id") and m.get("user") != "UBOT"]
        if not messages:
            raise ConsoleError("no message from a person in that channel yet")
        last = messages[-1]
        self.event({"type": "reaction_added", "user": user_id, "reaction": "pushpin",
                    "item": {"type": "message", "channel": channel, "ts": last["ts"]}, "event_ts": str(time.time())})

    def open(self, user_id: str, link: str) -> None:
        """Open a link as a browser would (GET) and show the page as text."""
        if link == "link":
            if user_id not in self.links:
                raise ConsoleError("they have received no link outside Slack")
            link = self.links[user_id]
        path = "/" + link.split("://", 1)[-1].partition("/")[2] if "://" in link else link
        reply = self.web.get(path)
        self._page(user_id, path, reply.status_code, reply.get_data(as_text=True))

    def _page(self, user_id: str, path: str, status: int, page: str) -> None:
        form = re.search(r"<form method=post action='([^']+)'><input type=hidden name=csrf value='([^']+)'>"
                         r"<button type=submit>([^<]+)</button>", page)
        if form:
            self.forms[user_id] = (form.group(1), form.group(2), form.group(3))
        else:
            self.forms.pop(user_id, None)
        words = " ".join(re.sub(r"<(style|title)>.*?</\1>|<[^>]+>", " ", page).split())
        button = f" [{form.group(3)}]" if form else ""
        self.say(f"    [web page {status}] {words}{button}")

    def press(self, user_id: str, label: str) -> None:
        """Press the button with that label on the web page the person opened last, else the
        newest one in their DMs or channels."""
        if user_id in self.forms and self.forms[user_id][2].lower() == label.lower():
            path, csrf, _ = self.forms.pop(user_id)
            reply = self.web.post(path, data={"csrf": csrf})
            self._page(user_id, path, reply.status_code, reply.get_data(as_text=True))
            return
        candidates: list[tuple[float, str, dict[str, Any], dict[str, Any]]] = []
        for channel_id, messages in self._visible(user_id):
            for message in messages:
                for block in message.get("blocks") or []:
                    for element in block.get("elements", []) if block.get("type") == "actions" else []:
                        if element.get("type") == "button" and element["text"]["text"].lower() == label.lower():
                            candidates.append((float(message["ts"]), channel_id, message, element))
        if not candidates:
            raise ConsoleError(f"no [{label}] button visible to that person")
        _, channel_id, message, element = max(candidates, key=lambda c: c[0])
        payload = {
            "type": "block_actions", "user": {"id": user_id}, "team": {"id": "T0CONSOLE"}, "api_app_id": "A0CONSOLE",
            "trigger_id": f"console-{time.monotonic_ns()}", "channel": {"id": channel_id},
            "container": {"type": "message", "channel_id": channel_id, "message_ts": message["ts"]},
            "message": message, "response_url": self.slack.response_url(channel_id=channel_id, user_id=user_id),
            "actions": [{"action_id": element["action_id"], "block_id": "b", "value": element.get("value", ""),
                         "type": "button", "action_ts": str(time.time())}],
        }
        self.dispatch(urllib.parse.urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def submit(self, user_id: str, fields: str) -> None:
        """Fill the newest open form (`title=...; severity=2; private=yes`) and submit it."""
        modals = [v for v in self.slack.views if v.get("type") == "modal"]
        if not modals:
            raise ConsoleError("no form is open; `/incident declare` with no text opens one")
        view = modals[-1]
        given = {k.strip().lower(): v.strip() for k, _, v in (f.partition("=") for f in fields.split(";") if f.strip())}
        values: dict[str, Any] = {}
        for block in view.get("blocks", []):
            element, name = block.get("element", {}), block.get("block_id", "")
            if block.get("type") != "input" or name not in given:
                continue
            value, kind = given.pop(name), element.get("type")
            options = [o for o in element.get("options", []) if value.lower() in (o["value"].lower(), o["text"]["text"].lower())]
            if kind == "plain_text_input":
                values[name] = {"value": {"type": kind, "value": value}}
            elif kind == "static_select" and options:
                values[name] = {"value": {"type": kind, "selected_option": options[0]}}
            elif kind == "checkboxes":
                chosen = element.get("options", [])[:1] if value.lower() in ("yes", "true", "on", "1") else []
                values[name] = {"value": {"type": kind, "selected_options": chosen}}
            else:
                raise ConsoleError(f"`{value}` is not one of the choices for {name}")
        if given:
            raise ConsoleError(f"the form has no field {', '.join(given)}")
        payload = {"type": "view_submission", "user": {"id": user_id}, "team": {"id": "T0CONSOLE"},
                   "api_app_id": "A0CONSOLE", "trigger_id": f"console-{time.monotonic_ns()}",
                   "view": {**view, "state": {"values": values}}}
        response = self.dispatch(urllib.parse.urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")
        if response.body and "errors" in response.body:
            self.say(f"    (form) {response.body}")

    def shortcut_last(self, user_id: str, channel: str) -> None:
        """Run the "Add to incident timeline" message shortcut on the channel's last human message."""
        messages = [m for m in self.slack.messages(channel) if not m.get("bot_id") and m.get("user") != "UBOT"]
        if not messages:
            raise ConsoleError("no message from a person in that channel yet")
        payload = {"type": "message_action", "callback_id": "add_to_timeline", "user": {"id": user_id},
                   "team": {"id": "T0CONSOLE"}, "channel": {"id": channel}, "message": messages[-1],
                   "message_ts": messages[-1]["ts"], "trigger_id": f"console-{time.monotonic_ns()}",
                   "response_url": self.slack.response_url(channel_id=channel, user_id=user_id)}
        self.dispatch(urllib.parse.urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def home(self, user_id: str) -> None:
        """Open App Home as that person and show what it says."""
        self.event({"type": "app_home_opened", "user": user_id, "channel": "D0HOME", "tab": "home"})
        view = self.slack.home(user_id) or {}
        for block in view.get("blocks", []):
            text = render_text((block.get("text") or {}).get("text", ""), self.slack)
            self.say("    (App Home) " + text.replace("\n", "\n        "))

    def _visible(self, user_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
        seen = []
        dms = self.slack.dms(user_id)
        if dms:
            seen.append((dms[0].get("channel", user_id), dms))
        for channel in self.slack.channel_list():
            if user_id in channel["members"]:
                seen.append((channel["id"], self.slack.messages(channel["id"])))
        return seen

    def settle(self) -> None:
        self.rt.settle()

    def advance(self, delta: timedelta) -> None:
        def stamp(now: datetime) -> None:  # shown only if the fired job shows something
            self._stamp = f"[{now:%a %Y-%m-%d %H:%M} UTC]"

        self.rt.advance_to(self.clock.now() + delta, on_step=stamp)
        self._stamp = None


def render_text(text: str, names: Any) -> str:
    from bot.standin import resolve_mentions

    return resolve_mentions(text, names)


def clock_instant(text: str) -> datetime:
    """A console clock setting (`at 2026-03-10T15:00Z`): ISO, UTC unless it says otherwise."""
    text = text.replace("Z", "+00:00")
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
