"""The real Prometheus Alertmanager (Debian package `prometheus-alertmanager`) delivers an alert
to the bot's webhook with a bearer token, and the page reaches the on-call person in Slack."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.models import Incident, TimelineEntry
from bot.oncall import service as oncall
from tests.conftest import START, eventually, not_installed

BINARY = Path("/usr/bin/prometheus-alertmanager")
TOKEN = "alertmanager-integration-token"
DEADLINE = 30.0  # seconds to wait for anything Alertmanager does


def alertmanager_binary() -> str | None:
    if BINARY.exists():
        return str(BINARY)
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


pytestmark = pytest.mark.skipif(
    alertmanager_binary() is None and not os.environ.get("CI"), reason=not_installed("Prometheus Alertmanager"),
)


@pytest.fixture
def settings_env(settings_env):
    return {**settings_env, "ALERTMANAGER_TOKEN": TOKEN}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: object | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(what: str, check, process: subprocess.Popen, log: Path, settle=None):
    """Poll check() (settling the bot first) until it is truthy, for at most DEADLINE seconds;
    fail at once, with Alertmanager's log, if it exits."""

    def attempt():
        if process.poll() is not None:
            pytest.fail(f"Alertmanager exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if settle is not None:
            settle()
        return check()

    try:
        return eventually(attempt, timeout=DEADLINE, message=what, interval=0.2)
    except AssertionError as timed_out:
        pytest.fail(f"{timed_out}; Alertmanager said:\n{log.read_text()[-3000:]}")


@pytest.fixture
def alertmanager(bot, tmp_path):
    """Alertmanager on 127.0.0.1 with clustering off, its webhook receiver pointing at the bot."""
    binary = alertmanager_binary()
    if binary is None:
        pytest.fail("CI must run the Alertmanager integration test: install the prometheus-alertmanager package")
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n"
        "  receiver: oncall-bot\n"
        "  group_by: [alertname, rotation]\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: oncall-bot\n"
        "    webhook_configs:\n"
        f"      - url: {bot.url}/alerts/alertmanager\n"
        "        send_resolved: true\n"
        "        http_config:\n"
        "          authorization:\n"
        "            type: Bearer\n"
        f"            credentials: {TOKEN}\n"
    )
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=debug"],
            stdout=output, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("Alertmanager to be ready", lambda: _ready(base), process, log)
        yield base, process, log
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _ready(base: str) -> bool:
    try:
        return http("GET", f"{base}/-/ready")[0] == 200
    except OSError:
        return False


def test_an_alert_posted_to_alertmanager_pages_the_on_call_person_through_the_bot(bot, standin, alertmanager):
    base, process, log = alertmanager
    with bot.rt.storage.read() as session:
        on_call = oncall.on_call_at(db_session=session, rotation=bot.rt.rotations["payments"], at=START).user
    labels = {"alertname": "CheckoutErrors", "severity": "critical", "rotation": "payments"}
    alert = {"labels": labels, "annotations": {"summary": "Checkout errors above 5%", "description": "Since 5 minutes."},
             "generatorURL": "http://prometheus.example:9090/graph?g0.expr=checkout_errors"}
    status, body = http("POST", f"{base}/api/v2/alerts", [alert])
    assert status == 200, body

    def paged() -> bool:
        return any("paged you for incident #1" in m.get("text", "") for m in standin.dms(on_call))

    wait_for(f"the page to reach {on_call}", paged, process, log, settle=bot.settle)
    with bot.rt.storage.read() as session:
        [incident] = session.exec(select(Incident)).all()
    assert incident.severity == 1 and incident.title == "Checkout errors above 5%"
    assert incident.dedup_key.startswith("alertmanager:") and "CheckoutErrors" in incident.dedup_key
    assert on_call in standin.members(bot.channel_of(1))

    # the alert ends: Alertmanager sends the resolved notification, noted on the timeline
    ended = {**alert, "endsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    status, body = http("POST", f"{base}/api/v2/alerts", [ended])
    assert status == 200, body

    def resolved_noted() -> bool:
        with bot.rt.storage.read() as session:
            entries = session.exec(select(TimelineEntry).where(TimelineEntry.kind == "alert")).all()
        return any(e.text.startswith("alert resolved: CheckoutErrors") for e in entries)

    wait_for("the resolved notification", resolved_noted, process, log, settle=bot.settle)
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1).status == "investigating"  # humans resolve incidents
