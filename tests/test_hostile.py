"""Hostile traffic against the real `oncall-bot serve` (gunicorn, as in production), on both
databases: each case gets the status it should, nothing is written for refused input, no
traceback is logged for a sender's mistake, and meanwhile /healthz answers 200 within 1 s and
a signed declaration is acknowledged within 3 s."""

from __future__ import annotations

import http.client
import itertools
import json
import time
import urllib.parse

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from bot.models import Claim, Counter, Incident, OutboxTask, Page, TimelineEntry
from bot.storage import Storage
from tests.conftest import Served, bot_environment, eventually, sign, start_standin

_titles = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'bot.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    slack = start_standin()
    server = Served(bot_environment(slack, url), folder / "serve.log")
    server.slack = slack  # type: ignore[attr-defined]
    server.storage = Storage(url)  # type: ignore[attr-defined]
    yield server
    server.storage.dispose()  # type: ignore[attr-defined]
    code = server.stop()
    slack.stop()
    assert code == 0, server.output()[-3000:]


def post(served, path: str, body: bytes | str, headers: dict[str, str], timeout: float = 10) -> tuple[int, str]:
    """POST raw bytes; the status and body of the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=timeout)
    try:
        connection.request("POST", path, body=body.encode() if isinstance(body, str) else body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        connection.close()


def signed(served, body: str | bytes, request_id: str, content_type: str = "application/x-www-form-urlencoded") -> tuple[int, str]:
    return post(served, "/slack/events", body, {"Content-Type": content_type, "X-Request-Id": request_id, **sign(body)})


def interaction(served, payload: dict, request_id: str) -> tuple[int, str]:
    return signed(served, urllib.parse.urlencode({"payload": json.dumps(payload)}), request_id)


def declare(served, title: str) -> tuple[float, str]:
    """A signed `/incident declare`: seconds until acknowledged, and the reply."""
    body = urllib.parse.urlencode({
        "command": "/incident", "text": f"declare sev3 {title}", "user_id": "U0ALICE", "channel_id": "C0GENERAL",
        "team_id": "T0STANDIN", "trigger_id": "t", "response_url": served.slack.response_url(),
    })
    started = time.monotonic()
    status, text = signed(served, body, f"declare-{title.split()[-1]}")
    assert status == 200, text
    return time.monotonic() - started, text


def assert_still_serving(served) -> None:
    """/healthz answers 200 within 1 s and a declaration is acknowledged within 3 s."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert time.monotonic() - started < 1.0
    seconds, text = declare(served, f"Still serving {next(_titles)}")
    assert seconds < 3.0 and "Declared incident #" in text, (seconds, text)


def written(served) -> tuple[int, ...]:
    """What input writes: counters, incidents, timeline entries, pages, event and alert claims,
    and declarations queued."""
    with served.storage.read() as session:
        def count(model, *where) -> int:
            return session.exec(select(func.count()).select_from(model).where(*where)).one()

        return (
            session.exec(select(func.coalesce(func.sum(Counter.value), 0))).one(),
            count(Incident), count(TimelineEntry), count(Page),
            count(Claim, col(Claim.key).like("event:%") | col(Claim.key).like("alert:%")),
            count(OutboxTask, OutboxTask.kind == "incident.declare"),
        )


def quiet(served) -> tuple[int, ...]:
    """Wait for the outbox to finish earlier work; what is written then."""
    def drained() -> bool:
        with served.storage.read() as session:
            pending = select(func.count()).select_from(OutboxTask).where(OutboxTask.status == "pending")
            return session.exec(pending).one() == 0

    eventually(drained, timeout=20, message="the outbox to drain")
    return written(served)


def logged_without_traceback(served, request_id: str) -> None:
    """A log line carrying the request's ID says it was refused, and no traceback was logged."""
    def refusal() -> bool:
        return any(f"request_id={request_id}]" in line and "refused" in line for line in served.output().splitlines())

    eventually(refusal, message=f"a log line for {request_id}")
    assert "Traceback" not in served.output()


# --- signatures -------------------------------------------------------------------------------

HELP = urllib.parse.urlencode({"command": "/incident", "text": "help", "user_id": "U0ALICE", "channel_id": "C0GENERAL",
                               "team_id": "T0STANDIN", "trigger_id": "t", "response_url": "http://127.0.0.1:9/x"})


@pytest.mark.parametrize("timestamp", ["abc", "1.5", "-1", "1e9", "9" * 40, "1\u00b2", ""])
def test_a_timestamp_that_is_not_a_number_is_401_and_one_log_line(served, timestamp):
    request_id = f"ts-{abs(hash(timestamp)) % 10**8}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Request-Id": request_id,
               "X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": sign(HELP)["X-Slack-Signature"]}
    status, text = post(served, "/slack/events", HELP, headers)
    assert (status, json.loads(text)) == (401, {"ok": False, "error": "invalid request signature"})
    logged_without_traceback(served, request_id)
    assert_still_serving(served)


FORGED = HELP.replace("help", "declare+Forged")
SIGNATURES = {  # the headers for a body, made when the test runs
    "none": lambda body: {},
    "no timestamp": lambda body: {"X-Slack-Signature": sign(body)["X-Slack-Signature"]},
    "no signature": lambda body: {"X-Slack-Request-Timestamp": str(int(time.time()))},
    "malformed signature": lambda body: {**sign(body), "X-Slack-Signature": "v1=nope"},
    "stale": lambda body: sign(body, timestamp=int(time.time()) - 301),
    "from the future": lambda body: sign(body, timestamp=int(time.time()) + 301),
    "wrong secret": lambda body: sign(body, secret="not-the-secret"),
    "another body": lambda body: sign(HELP),
}


@pytest.mark.parametrize("case", sorted(SIGNATURES))
def test_missing_stale_or_wrong_signatures_are_401_and_write_nothing(served, case):
    before = quiet(served)
    status, _ = post(served, "/slack/events", FORGED,
                     {"Content-Type": "application/x-www-form-urlencoded", **SIGNATURES[case](FORGED)})
    assert status == 401
    assert written(served) == before
    assert "Traceback" not in served.output()


# --- signed, but not what Slack sends -----------------------------------------------------------

USER = {"id": "U0ALICE"}
TEAM = {"id": "T0STANDIN"}
FORM = {"title": {"value": {"type": "plain_text_input", "value": "Forged form"}},
        "severity": {"value": {"type": "static_select", "selected_option": {"value": "2"}}}}


def view(**parts) -> dict:
    return {"id": "V1", "type": "modal", "callback_id": "declare_incident", "state": {"values": FORM}, **parts}


MALFORMED = {
    "view without state": {"type": "view_submission", "user": USER, "team": TEAM,
                           "view": {k: v for k, v in view().items() if k != "state"}},
    "view without type": {"type": "view_submission", "user": USER, "team": TEAM,
                          "view": {k: v for k, v in view().items() if k != "type"}},
    "view without user": {"type": "view_submission", "team": TEAM, "view": view()},
    "form without severity": {"type": "view_submission", "user": USER, "team": TEAM,
                              "view": view(state={"values": {"title": FORM["title"]}})},
    "form with a severity not offered": {"type": "view_submission", "user": USER, "team": TEAM, "view": view(state={
        "values": {**FORM, "severity": {"value": {"selected_option": {"value": "0"}}}}})},
    "form with a title that is not text": {"type": "view_submission", "user": USER, "team": TEAM, "view": view(state={
        "values": {**FORM, "title": {"value": {"value": ["x"]}}}})},
    "button without user": {"type": "block_actions", "team": TEAM, "response_url": "http://127.0.0.1:9/x",
                            "actions": [{"action_id": "page_ack", "value": "1"}]},
    "button without response_url": {"type": "block_actions", "user": USER, "team": TEAM,
                                    "actions": [{"action_id": "incident_resolve", "value": "1"}]},
    "button without actions": {"type": "block_actions", "user": USER, "team": TEAM, "actions": [],
                               "response_url": "http://127.0.0.1:9/x"},
    "shortcut without message": {"type": "message_action", "callback_id": "add_to_timeline", "user": USER,
                                 "team": TEAM, "trigger_id": "t", "channel": {"id": "C0GENERAL"}},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_signed_payloads_slack_never_sends_are_400_write_nothing_and_log_one_line(served, case):
    before = quiet(served)
    request_id = "malformed-" + case.replace(" ", "-")
    status, text = interaction(served, MALFORMED[case], request_id)
    assert (status, json.loads(text)) == (400, {"ok": False, "error": "malformed request body"})
    assert written(served) == before
    logged_without_traceback(served, request_id)
    assert_still_serving(served)


COMMANDS_AND_EVENTS = {
    "command without user": (urllib.parse.urlencode({
        "command": "/incident", "text": "declare Forged", "channel_id": "C0GENERAL", "trigger_id": "t",
        "response_url": "http://127.0.0.1:9/x"}), "application/x-www-form-urlencoded"),
    "event without type": (json.dumps({"type": "event_callback", "event_id": "Ev1", "event": {"reaction": "pushpin"}}),
                           "application/json"),
    "pin without its message": (json.dumps({"type": "event_callback", "event_id": "Ev2", "event": {
        "type": "reaction_added", "reaction": "pushpin", "item": {"type": "message"}}}), "application/json"),
    "home without user": (json.dumps({"type": "event_callback", "event_id": "Ev3", "event": {"type": "app_home_opened"}}),
                          "application/json"),
    "payload not JSON": (urllib.parse.urlencode({"payload": "{not json"}), "application/x-www-form-urlencoded"),
    "payload not an object": (urllib.parse.urlencode({"payload": "[1]"}), "application/x-www-form-urlencoded"),
    "not UTF-8": (b"command=/incident&text=\xff\xfe", "application/x-www-form-urlencoded"),
}


@pytest.mark.parametrize("case", sorted(COMMANDS_AND_EVENTS))
def test_signed_commands_and_events_slack_never_sends_are_400(served, case):
    body, content_type = COMMANDS_AND_EVENTS[case]
    before = quiet(served)
    request_id = "malformed-" + case.replace(" ", "-")
    status, _ = signed(served, body, request_id, content_type)
    assert status == 400
    assert written(served) == before
    logged_without_traceback(served, request_id)


def test_a_signed_payload_of_a_kind_the_bot_does_not_handle_is_404_and_one_line(served):
    request_id = "unknown-kind"
    status, text = interaction(served, {"type": "something_new", "user": USER, "team": TEAM}, request_id)
    assert (status, json.loads(text)["ok"]) == (404, False)
    eventually(lambda: f"request_id={request_id}" in served.output(), message="the log line")
    lines = [line for line in served.output().splitlines() if f"request_id={request_id}]" in line]
    assert len(lines) == 1 and "no listener" in lines[0] and "Traceback" not in served.output()
