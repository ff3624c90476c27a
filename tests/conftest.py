"""Shared fixtures: the Slack stand-in, signed requests, a served app, a manual clock."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from werkzeug.serving import make_server

from bot.clock import ManualClock
from bot.config import load_settings
from bot.runtime import Runtime
from bot.slack.app import create_app
from bot.slack.client import make_client
from bot.slack.signing import signed_headers
from bot.standin import SlackStandIn
from bot.testing.receivers import HttpReceiver, SmtpReceiver
from bot.web.app import create_web_app
from bot.wiring import build_runtime

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-standin"
ALERT_TOKEN = "test-alert-token"
ALERT_AUTH = {"Authorization": f"Bearer {ALERT_TOKEN}"}
# Sign in with Slack: the app's client ID and secret, known to the stand-in in the `web` fixture.
CLIENT_ID, CLIENT_SECRET = "1234567890.0987654321", "standin-client-secret"
ROTATIONS = Path(__file__).parent / "rotations"
# A Tuesday in March 2026, 15:00 UTC: Los Angeles (amer, 08:00 PDT) has just taken the payments
# pager from Dublin, so frank is on call.
START = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)

PEOPLE = [
    ("U0ALICE", "alice", "America/Los_Angeles"),
    ("U0FRANK", "frank", "America/Los_Angeles"),
    ("U0BOB", "bob", "Europe/Dublin"),
    ("U0ERIN", "erin", "Europe/Dublin"),
    ("U0CAROL", "carol", "Asia/Singapore"),
    ("U0DAVE", "dave", "Asia/Singapore"),
    ("U0GRACE", "grace", "UTC"),
    ("U0HEIDI", "heidi", "UTC"),
    ("U0MALLORY", "mallory", "Europe/Berlin"),
]


# Servers the tests run for real, by the Debian package that brings each.
SERVERS = {"PostgreSQL": "postgresql", "Prometheus Alertmanager": "prometheus-alertmanager", "Chromium": "chromium"}


def not_installed(server: str) -> str:
    """Why a test that needs this server skips; the count of such skips closes the run."""
    return f"{server} is not installed (apt-get install {SERVERS[server]})"


def sign(body: str | bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 request signature headers for a body, with the tests' secret unless told."""
    return signed_headers(secret, body, timestamp=timestamp)


def eventually(predicate: Callable[[], Any], timeout: float = 5.0, message: str = "condition",
               interval: float = 0.02) -> Any:
    """Poll predicate() every `interval` seconds until it is truthy, and return its value; fail
    the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


FEED_URL = re.compile(r"https?://[^/\s]+(/ical/[A-Za-z0-9_-]{32}\.ics)")


def feed_path(reply: str) -> str:
    """The path of the calendar feed address in a reply to `/oncall ical`."""
    found = FEED_URL.search(reply)
    assert found, f"no calendar feed address in {reply!r}"
    return found.group(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(base: str) -> bool:
    """True when a served bot answers /healthz with 200."""
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as reply:
            return reply.status == 200
    except OSError:
        return False


def slash_command(base: str, standin: SlackStandIn, text: str, *, user: str = "U0ALICE", command: str = "/incident",
                  timeout: float = 10) -> str:
    """POST a signed slash command to a served bot (another process); the acknowledgement body."""
    body = urllib.parse.urlencode({"command": command, "text": text, "user_id": user, "channel_id": "C0GENERAL",
                                   "team_id": "T0STANDIN", "trigger_id": "t", "response_url": standin.response_url()})
    request = urllib.request.Request(base + "/slack/events", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return reply.read().decode()


class TrackingExecutor(ThreadPoolExecutor):
    """Bolt's listener pool, with a way to wait until every listener has finished."""

    def __init__(self) -> None:
        super().__init__(max_workers=8)
        self._pending = 0
        self._cond = threading.Condition()

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        with self._cond:
            self._pending += 1

        def run():  # type: ignore[no-untyped-def]
            try:
                return fn(*args, **kwargs)
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

        return super().submit(run)

    def wait_idle(self, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self._pending == 0, timeout), "listeners still running"


@dataclass
class Response:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The ephemeral text of a slash-command acknowledgement."""
        if not self.body:
            return ""
        try:
            return str(self.json().get("text", ""))
        except ValueError:
            return self.body


class Bot:
    """The real app served over HTTP on loopback, driven the way Slack drives it."""

    def __init__(self, runtime: Runtime, standin: SlackStandIn, url: str, executor: TrackingExecutor) -> None:
        self.rt = runtime
        self.slack = standin
        self.url = url
        self.executor = executor
        self.clock: ManualClock = runtime.clock  # type: ignore[assignment]
        self._event_counter = 0
        self.web_app: Any = None  # the Flask app served, for tests that walk its routes

    def post(self, path: str, body: str, headers: dict[str, str]) -> Response:
        request = urllib.request.Request(self.url + path, data=body.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return Response(reply.status, reply.read().decode())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.read().decode())

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return Response(reply.status, reply.read().decode())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.read().decode())

    def signed_form(self, fields: dict[str, str], **sign_kwargs: Any) -> Response:
        body = urllib.parse.urlencode(fields)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, **sign_kwargs)}
        return self.post("/slack/events", body, headers)

    def command(self, user: str, command: str, text: str = "", channel: str = "C0GENERAL", settle: bool = True) -> Response:
        """A slash command as Slack posts it."""
        fields = {
            "token": "legacy", "team_id": "T0STANDIN", "channel_id": channel, "user_id": user,
            "user_name": user.lower(), "command": command, "text": text,
            "response_url": self.slack.response_url(channel_id=channel, user_id=user),
            "trigger_id": f"trigger-{time.monotonic_ns()}",
            "api_app_id": "A0BOT",
        }
        response = self.signed_form(fields)
        if settle:
            self.settle()
        return response

    def event(self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None) -> Response:
        """An Events API delivery (a retry carries X-Slack-Retry-Num and the same event_id)."""
        if event_id is None:
            self._event_counter += 1
            event_id = f"Ev{self._event_counter:08d}"
        body = json.dumps({
            "token": "legacy", "team_id": "T0STANDIN", "api_app_id": "A0BOT", "type": "event_callback",
            "event_id": event_id, "event_time": int(time.time()), "event": event,
        })
        headers = {"Content-Type": "application/json", **sign(body)}
        if retry_num is not None:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
        response = self.post("/slack/events", body, headers)
        self.settle()
        return response

    def interact(self, payload: dict[str, Any], settle: bool = True) -> Response:
        """An interactivity payload (buttons, shortcuts, view submissions)."""
        response = self.signed_form({"payload": json.dumps(payload)})
        if settle:
            self.settle()
        return response

    def press(self, user: str, action_id: str, value: str, channel: str = "C0GENERAL", settle: bool = True) -> Response:
        return self.interact({
            "type": "block_actions", "user": {"id": user}, "team": {"id": "T0STANDIN"},
            "api_app_id": "A0BOT", "trigger_id": "t", "channel": {"id": channel},
            "container": {"type": "message", "channel_id": channel, "message_ts": "1.0"},
            "response_url": self.slack.response_url(channel_id=channel, user_id=user),
            "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button",
                         "action_ts": str(time.time())}],
        }, settle)

    def settle(self) -> None:
        """Let listeners finish and run every queued Slack side effect and due job."""
        self.rt.settle(self.executor.wait_idle)

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward, firing due jobs at their own instants."""
        self.rt.advance_to(self.clock.now() + delta, wait=self.executor.wait_idle)

    def feed(self, user: str, reset: bool = False) -> str:
        """The path of a person's calendar feed, asked for as they would (`/oncall ical`)."""
        return feed_path(self.command(user, "/oncall", "ical reset" if reset else "ical").text)

    def channel_of(self, number: int) -> str:
        from bot.models import Incident

        with self.rt.storage.session() as session:
            incident = session.get(Incident, number)
            assert incident is not None and incident.channel_id, f"incident {number} has no channel"
            return incident.channel_id


def start_standin() -> SlackStandIn:
    """The Slack stand-in, started, with the tests' people, channels and user group."""
    slack = SlackStandIn(bot_token=BOT_TOKEN, bot_user_id="UBOT", team_id="T0STANDIN")
    slack.start()
    for user_id, name, tz in PEOPLE:
        slack.add_user(user_id, name, tz=tz, email=f"{name}@example.com", real_name=name.title())
    slack.add_channel("general", channel_id="C0GENERAL")
    slack.add_channel("incidents", channel_id="C0INCIDENTS")
    slack.add_channel("payments-oncall", channel_id="C0PAYCHAN")
    slack.add_usergroup("S0PAYONCALL", handle="payments-oncall")
    return slack


@pytest.fixture
def standin():
    slack = start_standin()
    yield slack
    slack.stop()


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server for the session; CI must have it, a laptop may not."""
    from bot.testing.postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {exc}")
        pytest.skip(not_installed("PostgreSQL"))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Every end-to-end test runs on SQLite and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
def settings_env(tmp_path, standin, database_url) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": standin.api_url,
        "DATABASE_URL": database_url,
        "ROTATIONS_DIR": str(ROTATIONS),
        "TEMPLATES_DIR": str(Path(__file__).parent.parent / "templates"),
        "INCIDENTS_CHANNEL": "C0INCIDENTS",
        "ALERTMANAGER_TOKEN": ALERT_TOKEN,
    }


def start_bot(env: dict[str, str], standin: SlackStandIn, clock: ManualClock, port: int = 0, *,
              retries: int = 3, client_timeout: int = 10, outbox_base_delay: float = 0):
    """Build the runtime and serve the app on 127.0.0.1 (on `port` when given); returns (bot, stop)."""
    import bot.web.routes  # noqa: F401

    settings = load_settings(env)
    client = make_client(token=BOT_TOKEN, base_url=standin.api_url, retries=retries, timeout=client_timeout)
    runtime = build_runtime(settings, client=client, clock=clock, manual=True, outbox_base_delay=outbox_base_delay)
    runtime.scheduler.start()
    from bot.jobs.handoffs import plan_handoffs

    plan_handoffs(runtime)
    executor = TrackingExecutor()
    bolt = create_app(runtime, signing_secret=settings.slack_signing_secret, listener_executor=executor)
    web_app = create_web_app(runtime, bolt)
    server = make_server("127.0.0.1", port, web_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bot = Bot(runtime, standin, f"http://127.0.0.1:{server.server_port}", executor)
    bot.web_app = web_app

    def stop() -> None:
        server.shutdown()
        executor.shutdown(wait=True)
        runtime.scheduler.stop()
        runtime.storage.dispose()

    return bot, stop


@pytest.fixture
def bot(settings_env, standin):
    served, stop = start_bot(settings_env, standin, ManualClock(START))
    yield served
    stop()


def web_env(settings_env: dict[str, str], standin: SlackStandIn, port: int) -> dict[str, str]:
    """Settings with the web pages on: Sign in with Slack against the stand-in, served at `port`."""
    standin.add_oidc_client(CLIENT_ID, CLIENT_SECRET)
    return {**settings_env, "SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "PUBLIC_URL": f"http://127.0.0.1:{port}"}


@pytest.fixture
def smtp():
    """A local mail server that keeps what it receives (contacts by e-mail)."""
    server = SmtpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def receiver():
    """A local HTTP server that keeps what it receives (json:// and ntfy:// contacts)."""
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def web(settings_env, standin):
    """The bot with its web pages on, at the PUBLIC_URL it was told."""
    port = free_port()
    served, stop = start_bot(web_env(settings_env, standin, port), standin, ManualClock(START), port=port)
    yield served
    stop()


class Visitor:
    """A browser without scripts: cookies kept, redirects followed by hand."""

    def __init__(self, bot: Bot) -> None:
        import requests

        self.bot = bot
        self.http = requests.Session()

    def get(self, path: str, **kwargs: Any) -> Any:
        url = path if path.startswith("http") else self.bot.url + path
        return self.http.get(url, allow_redirects=False, timeout=10, **kwargs)

    def post(self, path: str, data: dict[str, str]) -> Any:
        return self.http.post(self.bot.url + path, data=data, allow_redirects=False, timeout=10)

    def sign_in(self, user: str, next_path: str = "/") -> Any:
        """Sign in with Slack as `user`, picking them on the stand-in's page; the last answer."""
        to_slack = self.get(f"/login?next={urllib.parse.quote(next_path)}")
        assert to_slack.status_code == 302, to_slack.text
        back = self.get(to_slack.headers["Location"] + "&pick=" + user)
        assert back.status_code == 302, back.text
        return self.get(back.headers["Location"])


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the run, after pytest's own counts, with one line on tests skipped for a missing server."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    reasons = [str(r.longrepr[2]) for r in reporter.stats.get("skipped", []) if isinstance(r.longrepr, tuple)]
    line = missing_servers_line(reasons)
    if line:
        reporter.write_line(line, yellow=True)


def missing_servers_line(skip_reasons: list[str]) -> str | None:
    """E.g. "12 tests skipped: PostgreSQL not installed (apt-get install postgresql; ...)"."""
    counts = {server: sum(not_installed(server) in reason for reason in skip_reasons) for server in SERVERS}
    missing = {server: count for server, count in counts.items() if count}
    if not missing:
        return None
    if len(missing) == 1:
        what, it = next(iter(missing)), "it"
    else:
        what, it = " and ".join(f"{server} ({count})" for server, count in missing.items()), "them"
    packages = " ".join(SERVERS[server] for server in missing)
    return (f"{sum(missing.values())} tests skipped: {what} not installed "
            f"(apt-get install {packages}; as root, bash scripts/test.sh installs {it})")
