"""The real `oncall-bot serve` in a subprocess, as an operator runs it, and the checks the
hostile-input tests make against it: what a request got, what was written, what was logged,
and whether the bot still answers in time."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from bot.models import Claim, Counter, Incident, OutboxTask, Page, TimelineEntry
from bot.standin import SlackStandIn
from bot.storage import Storage
from tests.conftest import (
    ALERT_TOKEN,
    BOT_TOKEN,
    ROTATIONS,
    SIGNING_SECRET,
    eventually,
    free_port,
    healthy,
    sign,
    start_standin,
)

ROOT = Path(__file__).parent.parent
_titles = itertools.count(1)


def bot_environment(standin: SlackStandIn, database_url: str, **more: str) -> dict[str, str]:
    """The environment of a bot process run as an operator runs it (no SLACK_ variables of ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": standin.api_url,
        "DATABASE_URL": database_url, "ROTATIONS_DIR": str(ROTATIONS), "INCIDENTS_CHANNEL": "C0INCIDENTS",
        "ALERTMANAGER_TOKEN": ALERT_TOKEN, "HOST": "127.0.0.1", **more,
    })
    return env


class Served:
    """`python -m bot serve` on a free port, its output in a file; answering /healthz when made.
    With a stand-in and a database URL, the helpers below drive it and read what it wrote."""

    def __init__(self, env: dict[str, str], output: Path, *args: str, standin: SlackStandIn | None = None,
                 database_url: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.slack = standin
        self.storage = Storage(database_url) if database_url else None
        self.output_path = output
        self._file = output.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "bot", "serve", *args], env={**env, "PORT": str(self.port)},
                                        cwd=ROOT, stdout=self._file, stderr=subprocess.STDOUT)
        eventually(lambda: healthy(self.url) or self.process.poll() is not None, timeout=60, message="serve to start")
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited with {self.process.returncode}: {self.output()[-3000:]}")

    def output(self) -> str:
        """What the process has written so far (stdout and stderr)."""
        return self.output_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as a deploy does; the exit code."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        finally:
            self._file.close()
            if self.storage is not None:
                self.storage.dispose()
        return self.process.returncode


def served_bot(request: Any, tmp_path_factory: Any, **settings: str):
    """A module fixture's body: a stand-in and `serve` on SQLite or a fresh PostgreSQL database
    (request.param), stopped cleanly at the end."""
    folder = tmp_path_factory.mktemp("served")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'bot.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    slack = start_standin()
    slack.set_limits(False)  # one bot for a whole module of tests about hostile input, not Slack's tiers
    server = Served(bot_environment(slack, url, **{"SLACK_PACING": "off", **settings}), folder / "serve.log",
                    standin=slack, database_url=url)
    yield server
    code = server.stop()
    slack.stop()
    assert code == 0, server.output()[-3000:]


def post(served: Served, path: str, body: bytes | str, headers: dict[str, str], timeout: float = 10,
         method: str = "POST") -> tuple[int, str]:
    """Send raw bytes; the status and body of the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=timeout)
    try:
        connection.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        connection.close()


def signed(served: Served, body: str | bytes, request_id: str,
           content_type: str = "application/x-www-form-urlencoded") -> tuple[int, str]:
    """POST /slack/events signed as Slack signs."""
    return post(served, "/slack/events", body, {"Content-Type": content_type, "X-Request-Id": request_id, **sign(body)})


def interaction(served: Served, payload: dict[str, Any], request_id: str) -> tuple[int, str]:
    return signed(served, urllib.parse.urlencode({"payload": json.dumps(payload)}), request_id)


def command(served: Served, text: str, *, request_id: str, channel: str = "C0GENERAL", name: str = "/incident",
            user: str = "U0ALICE") -> tuple[int, str]:
    """A signed slash command; the status and the reply's text (from the response_url when the
    acknowledgement was empty)."""
    assert served.slack is not None
    slack, seen = served.slack, len(served.slack.ephemerals(user))
    body = urllib.parse.urlencode({
        "command": name, "text": text, "user_id": user, "channel_id": channel, "team_id": "T0STANDIN",
        "trigger_id": "t", "response_url": served.slack.response_url(channel_id=channel, user_id=user),
    })
    status, reply = signed(served, body, request_id)
    text = json.loads(reply).get("text", "") if reply.startswith("{") else reply
    if status == 200 and not text:
        text = eventually(lambda: [e["text"] for e in slack.ephemerals(user)[seen:]], message="the reply")[0]
    return status, text


def declare(served: Served, title: str) -> tuple[float, str]:
    """A signed `/incident declare`: seconds until acknowledged, and the reply."""
    started = time.monotonic()
    status, text = command(served, f"declare sev3 {title}", request_id=f"declare-{title.split()[-1]}")
    assert status == 200, text
    return time.monotonic() - started, text


def healthz_seconds(served: Served, timeout: float = 5) -> float:
    """Seconds /healthz took to answer 200."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        reply = connection.getresponse()
        assert reply.status == 200, reply.read()
    finally:
        connection.close()
    return time.monotonic() - started


def assert_still_serving(served: Served) -> None:
    """/healthz answers 200 within 1 s and a declaration is acknowledged within 3 s."""
    assert healthz_seconds(served) < 1.0
    seconds, text = declare(served, f"Still serving {next(_titles)}")
    assert seconds < 3.0 and "Declared incident #" in text, (seconds, text)


def written(served: Served) -> tuple[int, ...]:
    """What input writes: counters, incidents, timeline entries, pages, event and alert claims,
    and declarations queued."""
    assert served.storage is not None
    with served.storage.read() as session:
        def count(model: Any, *where: Any) -> int:
            return int(session.exec(select(func.count()).select_from(model).where(*where)).one())

        return (
            int(session.exec(select(func.coalesce(func.sum(Counter.value), 0))).one()),
            count(Incident), count(TimelineEntry), count(Page),
            count(Claim, col(Claim.key).like("event:%") | col(Claim.key).like("alert:%")),
            count(OutboxTask, OutboxTask.kind == "incident.declare"),
        )


def quiet(served: Served) -> tuple[int, ...]:
    """Wait for the outbox to finish earlier work; what is written then."""
    assert served.storage is not None
    storage = served.storage

    def drained() -> bool:
        with storage.read() as session:
            pending = select(func.count()).select_from(OutboxTask).where(OutboxTask.status == "pending")
            return session.exec(pending).one() == 0

    eventually(drained, timeout=20, message="the outbox to drain")
    return written(served)


def logged_without_traceback(served: Served, request_id: str) -> None:
    """A log line carrying the request's ID says it was refused, and no traceback was logged."""
    def refusal() -> bool:
        return any(f"request_id={request_id}]" in line and "refused" in line for line in served.output().splitlines())

    eventually(refusal, message=f"a log line for {request_id}")
    assert "Traceback" not in served.output()
