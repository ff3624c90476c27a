"""Logs: JSON lines with request and incident IDs, and secrets masked wherever they appear."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import urllib.parse

import pytest

from bot.observability.logs import (
    configure_logging,
    log_context,
    new_request_id,
    secrets_from_env,
)
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, sign

DATABASE_URL = "postgresql://u:pw@h/db"
OTHER_TOKEN = "xoxb-2222222222-3333333333-abcdefABCDEF"


@pytest.fixture
def captured():
    """Configure logging as `main()` does, into a buffer; put the root logger back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()

    def configure(*, as_json: bool = True) -> io.StringIO:
        configure_logging(json=as_json, secrets=[BOT_TOKEN, SIGNING_SECRET], stream=buffer)
        return buffer

    yield configure
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_tokens_the_signing_secret_and_database_passwords_are_masked(captured):
    buffer = captured()
    logging.getLogger("bot.test").warning(
        "token=%s secret %s other %s db %s",
        BOT_TOKEN,
        SIGNING_SECRET,
        OTHER_TOKEN,
        DATABASE_URL,
    )
    text = buffer.getvalue()
    for secret in (BOT_TOKEN, SIGNING_SECRET, OTHER_TOKEN, ":pw@"):
        assert secret not in text
    (entry,) = lines(buffer)
    assert "postgresql://u:***@h/db" in entry["message"]
    assert entry["level"] == "WARNING" and entry["logger"] == "bot.test"


def test_calendar_feed_addresses_and_sign_in_codes_are_masked_in_logged_urls(captured):
    buffer = captured()
    feed = "/ical/Zk3v9Qx_2bLm8Rt4Yw6Pq1Ns7Jh5Gd0A.ics?rotation=payments"
    logging.getLogger("bot.test").info("GET %s then /auth/slack/callback?code=abc123&state=xyz", feed)
    (entry,) = lines(buffer)
    assert entry["message"] == ("GET /ical/[REDACTED].ics?rotation=payments then "
                                "/auth/slack/callback?code=[REDACTED]&state=[REDACTED]")


def test_secrets_in_exceptions_are_masked_too(captured):
    buffer = captured()
    try:
        raise RuntimeError(
            f"Slack said no to {BOT_TOKEN} signed with {SIGNING_SECRET}; Authorization: Bearer abc123"
        )
    except RuntimeError:
        logging.getLogger("bot.test").exception("call failed")
    (entry,) = lines(buffer)
    assert "RuntimeError" in entry["exception"] and "Traceback" in entry["exception"]
    for secret in (BOT_TOKEN, SIGNING_SECRET, "abc123"):
        assert secret not in json.dumps(entry)


def test_bad_format_arguments_do_not_lose_the_line(captured):
    buffer = captured()
    alone = logging.getLogger("bot.test.alone")  # away from pytest's handlers, which would choke
    alone.propagate = False
    alone.addHandler(logging.getLogger().handlers[-1])
    try:
        alone.info("two %s %s", BOT_TOKEN)
    finally:
        alone.handlers.clear()
        alone.propagate = True
    (entry,) = lines(buffer)
    assert "two" in entry["message"] and BOT_TOKEN not in entry["message"]


def test_text_logs_for_people_carry_the_ids_too(captured):
    buffer = captured(as_json=False)
    with log_context(request_id="r-1", incident_id=7):
        logging.getLogger("bot.test").info("hello %s", BOT_TOKEN)
    line = buffer.getvalue().strip()
    assert line.endswith("hello [REDACTED:secret] [request_id=r-1 incident_id=7]")


def test_the_secrets_to_mask_come_from_the_environment():
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "DATABASE_URL": "postgresql://app:s3cret-pw@db/oncall",
    }
    assert set(secrets_from_env(env)) == {BOT_TOKEN, SIGNING_SECRET, "s3cret-pw"}


def test_log_lines_of_a_slack_request_carry_its_request_id_and_incident(bot, captured):
    buffer = captured()
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
    declared = [e for e in lines(buffer) if "declared by" in e["message"]]
    assert declared and declared[0].get("request_id")

    buffer.truncate(0)
    buffer.seek(0)
    channel = bot.channel_of(1)
    body = urllib.parse.urlencode(
        {
            "command": "/incident",
            "text": "sev 1",
            "user_id": "U0ALICE",
            "channel_id": channel,
            "team_id": "T0STANDIN",
            "response_url": bot.slack.response_url(channel_id=channel, user_id="U0ALICE"),
            "trigger_id": "t",
        }
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Request-Id": "req-from-the-lb",
        **sign(body),
    }
    logging.getLogger("bot.test").info("outside any request")
    bot.post("/slack/events", body, headers)
    bot.settle()
    entries = lines(buffer)
    assert "request_id" not in entries[0]
    during = [e for e in entries if e.get("request_id") == "req-from-the-lb"]
    assert during, "\n".join(map(str, entries))
    assert any(e.get("incident_id") == 1 for e in during), during


class _ThreadNotingBuffer(io.StringIO):
    """A stream that remembers which threads wrote to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[str] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.current_thread().name)
        return super().write(text)


def test_new_request_ids_are_16_hex_digits_and_a_forked_worker_makes_its_own():
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(len(i) == 16 and int(i, 16) >= 0 for i in ids)

    reader, writer = os.pipe()
    child = os.fork()  # as gunicorn forks its workers
    if child == 0:
        os.write(writer, new_request_id().encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    theirs = os.read(reader, 64).decode()
    os.close(reader)
    assert len(theirs) == 16 and theirs != new_request_id()
