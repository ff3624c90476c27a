"""POST /slack/events, answered in front of Flask (SlackEndpoint): request IDs, HTTP metrics,
refused bodies and methods, and an unexpected failure, over HTTP as Slack and a load balancer
send them."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

from slack_bolt import App

from tests.conftest import sign
from tests.test_metrics import scrape, value


def _post(bot, body: str, **headers: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(bot.url + "/slack/events", data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def _oncall(bot, **headers: str) -> tuple[int, dict[str, str], str]:
    body = urllib.parse.urlencode({
        "team_id": "T0STANDIN", "channel_id": "C0GENERAL", "user_id": "U0ALICE", "command": "/oncall",
        "text": "help", "response_url": bot.slack.response_url(channel_id="C0GENERAL", user_id="U0ALICE"),
        "trigger_id": "t", "api_app_id": "A0BOT",
    })
    return _post(bot, body, **{"Content-Type": "application/x-www-form-urlencoded", **sign(body), **headers})


def test_a_slack_request_keeps_the_callers_request_id_and_is_counted_by_route(bot):
    """(Its log lines carry the ID: tests/test_logs.py.)"""
    status, headers, body = _oncall(bot, **{"X-Request-Id": "lb-7"})
    assert status == 200 and "who holds the pager" in body
    assert headers["X-Request-Id"] == "lb-7"

    status, headers, _ = _oncall(bot, **{"X-Request-Id": "not plain; dropped"})
    assert status == 200 and re.fullmatch(r"[0-9a-f]{16}", headers["X-Request-Id"])

    samples = scrape(bot)
    assert value(samples, "oncall_http_responses_total", route="/slack/events", method="POST", status="200") == 2


def test_a_malformed_body_and_another_method_are_refused_plainly_and_counted(bot):
    status, _, body = _post(bot, "{not json", **{"Content-Type": "application/json", **sign("{not json")})
    assert (status, json.loads(body)) == (400, {"ok": False, "error": "malformed request body"})

    request = urllib.request.Request(bot.url + "/slack/events")
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("GET /slack/events was answered")
    except urllib.error.HTTPError as error:
        assert error.code == 405 and error.headers["Allow"] == "POST"
        assert json.loads(error.read())["ok"] is False

    samples = scrape(bot)
    assert value(samples, "oncall_http_responses_total", route="/slack/events", method="POST", status="400") == 1
    assert value(samples, "oncall_http_responses_total", route="/slack/events", method="GET", status="405") == 1


def test_an_unexpected_failure_answers_a_plain_500_and_logs_its_traceback(bot, caplog, monkeypatch):
    def broken(self, request):
        raise RuntimeError("dispatch broke")

    monkeypatch.setattr(App, "dispatch", broken)
    status, headers, body = _oncall(bot, **{"X-Request-Id": "lb-8"})
    assert (status, json.loads(body)) == (500, {"ok": False, "error": "internal error"})
    assert headers["X-Request-Id"] == "lb-8" and "Traceback" not in body
    failure = next(r for r in caplog.records if r.getMessage() == "unhandled error on /slack/events")
    assert failure.exc_info is not None and "dispatch broke" in str(failure.exc_info[1])
    monkeypatch.undo()
    assert value(scrape(bot), "oncall_http_responses_total", route="/slack/events", method="POST", status="500") == 1
