"""A broken environment stops `oncall-bot serve` (and `socket`, `clock`) before it answers anything:
one line naming the setting and exit code 2, never a traceback; an empty rotations folder starts
with a warning. Run as an operator runs it, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from bot.storage import Storage
from tests.conftest import ROTATIONS, free_port
from tests.serving import ROOT, Served, bot_environment, healthz_seconds


def run_bot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=120)


def refused(result: subprocess.CompletedProcess, setting: str) -> str:
    """The one line the bot said on stderr, after checking it refused to start."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("oncall-bot:")]
    assert len(lines) == 1 and setting in lines[0], result.stderr
    return lines[0]


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'bot.db'}"


@pytest.mark.parametrize("url, said", [
    ("mysql://bot:secret@db.example.com/oncall", "must be sqlite:///FILE or postgresql://"),
    ("sqlite:////nonexistent/folder/oncall.db", "a folder that does not exist"),
    ("redis://localhost", "must be sqlite:///FILE or postgresql://"),
])
def test_an_unusable_database_url_is_one_line(standin, url, said):
    line = refused(run_bot(bot_environment(standin, url), "serve"), "DATABASE_URL")
    assert said in line and "secret" not in line


def test_an_unreachable_postgresql_is_one_line(standin):
    url = f"postgresql://bot:secret@127.0.0.1:{free_port()}/oncall"
    for command in ("serve", "clock"):
        line = refused(run_bot(bot_environment(standin, url), command), "DATABASE_URL")
        assert "Connection refused" in line and "secret" not in line


def test_a_read_only_sqlite_database_is_one_line(standin, tmp_path):
    Storage(f"sqlite:///{tmp_path / 'bot.db'}").migrate()
    url = f"sqlite:///file:{tmp_path / 'bot.db'}?mode=ro&uri=true"
    line = refused(run_bot(bot_environment(standin, url), "serve"), "DATABASE_URL")
    assert "readonly database" in line


def test_a_read_only_postgresql_is_one_line(standin, postgres):
    url = postgres.create_database()
    Storage(url).migrate()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    line = refused(run_bot(bot_environment(standin, url), "serve"), "DATABASE_URL")
    assert "read-only transaction" in line


def test_a_missing_rotations_folder_is_one_line(standin, sqlite_url):
    for command in ("serve", "socket", "clock"):
        env = bot_environment(standin, sqlite_url, ROTATIONS_DIR="/nonexistent", SLACK_APP_TOKEN="xapp-1")
        assert "'/nonexistent' is not a folder" in refused(run_bot(env, command), "ROTATIONS_DIR")


def test_a_rotation_file_with_errors_is_one_line(standin, sqlite_url, tmp_path):
    folder = tmp_path / "rotations"
    folder.mkdir()
    (folder / "payments.toml").write_text((ROTATIONS / "payments.toml").read_text().replace("Europe/Dublin", "Europe/Nowhere"))
    (folder / "broken.toml").write_text("name = [\n")
    line = refused(run_bot(bot_environment(standin, sqlite_url, ROTATIONS_DIR=str(folder)), "serve"), "ROTATIONS_DIR")
    assert "broken.toml" in line and "more; `oncall-bot check" in line


def test_an_empty_rotations_folder_starts_with_a_warning(standin, sqlite_url, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    served = Served(bot_environment(standin, sqlite_url, ROTATIONS_DIR=str(folder)), tmp_path / "serve.log")
    try:
        assert healthz_seconds(served) < 1
        assert "holds no rotation files: nobody is paged" in served.output()
    finally:
        assert served.stop() == 0


def test_a_bot_token_slack_refuses_is_one_line(standin, sqlite_url):
    for command in ("serve", "clock", "socket"):
        env = bot_environment(standin, sqlite_url, SLACK_BOT_TOKEN="xoxb-revoked", SLACK_APP_TOKEN="xapp-1")
        assert "invalid_auth" in refused(run_bot(env, command), "SLACK_BOT_TOKEN")


def test_an_app_token_slack_refuses_is_one_line(standin, sqlite_url):
    env = bot_environment(standin, sqlite_url, SLACK_APP_TOKEN="xapp-1-refused")
    assert "invalid_auth" in refused(run_bot(env, "socket"), "SLACK_APP_TOKEN")


def test_healthz_says_503_and_why_while_postgresql_is_read_only(standin, postgres, tmp_path):
    url = postgres.create_database()
    name = url.rsplit("/", 1)[1]
    served = Served(bot_environment(standin, url), tmp_path / "serve.log")

    def set_read_only(on: bool) -> None:
        with psycopg.connect(postgres.url(), autocommit=True) as admin:
            setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
            admin.execute(f'ALTER DATABASE "{name}" {setting}')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

    try:
        set_read_only(True)
        body = _wait_for_health(served, 503)
        assert body["ok"] is False and body["database"] == "unavailable" and "read-only" in body["error"]
        set_read_only(False)
        assert _wait_for_health(served, 200)["rotations"] == 2
    finally:
        assert served.stop() == 0


def _wait_for_health(served: Served, status: int) -> dict:
    """The /healthz body once it answers with status (within 30 s), each answer within 1 s."""
    deadline = time.monotonic() + 30
    while True:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(served.url + "/healthz", timeout=5) as reply:
                got, body = reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            got, body = error.code, json.loads(error.read())
        assert time.monotonic() - started < 1
        if got == status or time.monotonic() > deadline:
            assert got == status, body
            return body
        time.sleep(0.5)


def test_migrate_alone_says_the_same_in_one_line(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=ROOT, capture_output=True, text=True, check=False,
                            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "mysql://x@y/z"}, timeout=60)
    refused(result, "DATABASE_URL")
