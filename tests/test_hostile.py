"""Hostile traffic against the real `oncall-bot serve` (gunicorn, as in production), on both
databases: each case gets the status it should, nothing is written for refused input, no
traceback is logged for a sender's mistake, and meanwhile /healthz answers 200 within 1 s and
a signed declaration is acknowledged within 3 s."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from bot.models import Claim, Incident
from tests.conftest import ALERT_AUTH, eventually, feed_path, sign
from tests.serving import (
    assert_still_serving,
    command,
    declare,
    interaction,
    logged_without_traceback,
    post,
    quiet,
    served_bot,
    signed,
    written,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    yield from served_bot(request, tmp_path_factory)


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


# --- limits -----------------------------------------------------------------------------------

def raw_exchange(served, request: bytes, timeout: float = 5) -> bytes:
    """Send bytes on a socket of its own; what comes back until the answer's end or a close."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=timeout) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < _length(received):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _length(received: bytes) -> int:
    for line in received.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.mark.parametrize("path", ["/slack/events", "/alerts/alertmanager", "/alerts/webhook", "/healthz", "/metrics",
                                  "/ical/payments.ics", "/no/such/route"])
def test_a_body_over_1_mib_is_413_on_every_route_before_it_is_sent(served, path):
    before = quiet(served)
    started = time.monotonic()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n"
    answer = raw_exchange(served, head.encode())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"ok": False, "error": "the body is larger than 1048576 bytes (1 MiB)"}
    assert time.monotonic() - started < 2  # answered without waiting for the 100 MB
    assert written(served) == before
    assert_still_serving(served)


def alert(i: int, status: str = "firing") -> dict:
    return {"status": status, "labels": {"alertname": "DiskFull", "severity": "critical", "disk": str(i)}}


def test_a_notification_of_10000_alerts_is_taken_and_counts_all_past_the_first_100(served):
    payload = {"version": "4", "groupKey": "storm-of-10000", "status": "firing", "receiver": "bot",
               "alerts": [alert(i) for i in range(10_000)]}
    body = json.dumps(payload, separators=(",", ":"))
    assert 600_000 < len(body) < 1024 * 1024
    before = quiet(served)
    status, text = post(served, "/alerts/alertmanager", body, {"Content-Type": "application/json", **ALERT_AUTH})
    assert status == 200 and json.loads(text)["action"] == "declared", text
    with served.storage.read() as session:
        incident = session.exec(select(Incident).where(Incident.dedup_key == "alertmanager:storm-of-10000")).one()
        fired = session.exec(select(func.count()).select_from(Claim).where(col(Claim.key).like("alert:%:fired:%"))).one()
    assert "…and 9990 more" in incident.description
    assert written(served)[4] - before[4] <= 102 and fired >= 100  # one per alert acted on, the group's, the body's
    assert_still_serving(served)


# --- text -------------------------------------------------------------------------------------

def incident_channel(served, title: str) -> str:
    """Declare; the channel the outbox made for it."""
    _, text = declare(served, title)
    number = int(text.split("#", 1)[1].split()[0])

    def channel() -> str | None:
        with served.storage.read() as session:
            found = session.get(Incident, number)
            return found.channel_id if found else None

    return eventually(channel, timeout=20, message="the incident channel")


def test_titles_over_200_characters_are_refused_naming_the_limit(served):
    before = quiet(served)
    status, reply = command(served, "declare sev2 " + "x" * 201, request_id="long-title")
    assert status == 200 and "201 characters" in reply and "200" in reply and "x" * 81 not in reply
    assert written(served) == before
    status, reply = command(served, "declare sev2 " + "y" * 200, request_id="title-at-the-limit")
    assert "Declared incident #" in reply


@pytest.mark.parametrize("text, what", [("note", "note"), ("action", "action item"), ("resolve", "summary")])
def test_notes_action_items_and_summaries_over_3000_characters_are_refused(served, text, what):
    channel = incident_channel(served, f"Long {what} {time.monotonic_ns()}")
    before = quiet(served)
    status, reply = command(served, f"{text} " + "z" * 3001, request_id=f"long-{text}", channel=channel)
    assert status == 200 and f"The {what} is 3,001 characters long; the limit is 3,000" in reply
    assert "z" * 81 not in reply
    assert written(served) == before
    status, reply = command(served, f"{text} " + "z" * 3000, request_id=f"{text}-at-the-limit", channel=channel)
    assert "limit" not in reply


@pytest.mark.parametrize("name, text", [
    ("/incident", "sev " + "9" * 40_000), ("/incident", "status " + "q" * 40_000), ("/incident", "q" * 40_000),
    ("/incident", "commander " + "q" * 40_000), ("/incident", "declare sev" + "9" * 40_000 + " Title"),
    ("/oncall", "q" * 40_000), ("/oncall", "next " + "q" * 40_000), ("/oncall", "schedule payments " + "9" * 40_000),
    ("/oncall", "override payments <@U0BOB> " + "q" * 40_000 + " 2026-01-01T00:00"),
])
def test_refusals_quote_at_most_80_characters_of_the_input(served, name, text):
    before = quiet(served)
    status, reply = command(served, text, request_id="quoted", name=name)
    assert status == 200 and reply and len(reply) < 1_500
    assert "q" * 81 not in reply and "9" * 81 not in reply
    assert written(served) == before


@pytest.mark.parametrize("title", ["\u200b\u200b\u200b", "\u202e\u2066\u2069", "\u3164 \u00ad", "\ufeff\u200d"])
def test_a_title_with_nothing_visible_is_refused_as_empty(served, title):
    before = quiet(served)
    _, reply = command(served, f"declare sev2 {title}", request_id="invisible")
    assert "needs a title" in reply
    assert written(served) == before


def test_direction_overrides_and_invisible_characters_are_removed_from_titles(served):
    _, reply = command(served, "declare sev2 Pay\u202ements \u200bdown\u2066", request_id="override-title")
    number = int(reply.split("#", 1)[1].split()[0])
    channel = eventually(lambda: served.slack.channel_by_name(f"inc-{number}-payments-down"), timeout=20,
                         message="the channel")
    with served.storage.read() as session:
        assert session.get(Incident, number).title == "Payments down"
    assert channel["name"] == f"inc-{number}-payments-down"


# --- calendar ---------------------------------------------------------------------------------

def frank_feed(served) -> str:
    status, reply = command(served, "ical", name="/oncall", user="U0FRANK", request_id="feed")
    assert status == 200
    return feed_path(reply)


@pytest.mark.parametrize("query", ["rotation=payments%0A", "rotation=pay%0DBEGIN:VEVENT", "rotation=%00", "x=%0D%0A",
                                   "rotation%0A=1", "rotation=payments%C2%85"])
def test_control_characters_in_a_calendar_address_are_400(served, query):
    status, text = post(served, f"{frank_feed(served)}?{query}", b"", {}, method="GET")
    assert status == 400 and "control characters" in json.loads(text)["error"]
    assert "Traceback" not in served.output()


@pytest.mark.parametrize("query", ["rotation=bob", "rotation=payments;X-INJECTED=1", "rotation=" + "p" * 300])
def test_a_calendar_of_no_loaded_rotation_is_404(served, query):
    status, text = post(served, f"{frank_feed(served)}?{query}", b"", {}, method="GET")
    assert status == 404 and json.loads(text)["ok"] is False


@pytest.mark.parametrize("path", ["/ical/nosuch.ics", "/ical/payments%0d.ics", "/ical/..%2f..%2fetc.ics",
                                  "/ical/payments.ics?user=U0FRANK"])
def test_a_calendar_address_without_a_known_secret_is_404(served, path):
    status, _ = post(served, path, b"", {}, method="GET")
    assert status == 404


def test_a_calendar_feed_address_and_a_sign_in_code_never_reach_the_access_log(served):
    feed = frank_feed(served)
    secret = feed.removeprefix("/ical/").removesuffix(".ics")
    assert post(served, feed, b"", {}, method="GET")[0] == 200
    assert post(served, "/auth/slack/callback?code=c0de-of-slack&state=st4te", b"", {}, method="GET")[0] == 404
    eventually(lambda: "GET /ical/[REDACTED].ics" in served.output(), message="the access line")
    eventually(lambda: "callback?code=[REDACTED]&state=[REDACTED]" in served.output(), message="the access line")
    assert secret not in served.output() and "c0de-of-slack" not in served.output()


def test_a_calendar_holds_one_line_per_property_and_only_its_events(served):
    status, text = post(served, frank_feed(served), b"", {}, method="GET")
    assert status == 200 and "\r" not in text.replace("\r\n", "")
    assert text.count("BEGIN:VEVENT") == text.count("END:VEVENT") >= 1
    assert "X-WR-CALNAME:On call: my shifts" in text and "U0FRANK" in text
