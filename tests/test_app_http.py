"""The pipeline end to end: signed HTTP requests into the served app, Slack stood in locally."""

from __future__ import annotations

import time
import urllib.parse

from tests.conftest import SIGNING_SECRET, sign


def test_incident_help_answers_a_signed_slash_command(bot):
    response = bot.command("U0ALICE", "/incident", "help")
    assert response.status == 200
    assert "/incident declare [--private] [SEVERITY] TITLE" in response.text
    assert "SEV1 is the worst" in response.text


def test_oncall_help_answers_a_signed_slash_command(bot):
    response = bot.command("U0BOB", "/oncall", "help")
    assert response.status == 200
    assert "/oncall override ROTATION @user START END" in response.text


def _help_body() -> str:
    return urllib.parse.urlencode({"command": "/incident", "text": "help", "user_id": "U0ALICE", "channel_id": "C0GENERAL", "team_id": "T0STANDIN", "response_url": "http://127.0.0.1:9/x", "trigger_id": "t"})


def test_unsigned_request_is_refused_without_calling_slack(bot, standin):
    standin.reset_calls()
    response = bot.post("/slack/events", _help_body(), {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 401
    bot.settle()
    assert standin.calls == []


def test_wrongly_signed_request_is_refused_without_calling_slack(bot, standin):
    standin.reset_calls()
    body = _help_body()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, secret="not-" + SIGNING_SECRET)}
    assert bot.post("/slack/events", body, headers).status == 401
    bot.settle()
    assert standin.calls == []


def test_stale_request_over_five_minutes_old_is_refused(bot, standin):
    standin.reset_calls()
    body = _help_body()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, timestamp=int(time.time()) - 301)}
    assert bot.post("/slack/events", body, headers).status == 401
    bot.settle()
    assert standin.calls == []


def test_tampered_body_is_refused(bot, standin):
    body = _help_body()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
    assert bot.post("/slack/events", body.replace("help", "list"), headers).status == 401


def test_healthz_reports_database_scheduler_rotations_and_backlog(bot):
    response = bot.get("/healthz")
    assert response.status == 200
    assert response.json() == {"ok": True, "database": "ok", "scheduler": "running", "rotations": 2, "backlog": 0,
                               "backlog_oldest_seconds": 0.0}


def test_unknown_route_is_a_json_404(bot):
    response = bot.get("/nope")
    assert response.status == 404
    assert response.json()["ok"] is False


def test_the_web_process_keeps_its_start_up_objects_out_of_full_garbage_collections(settings_env):
    """A full collection over the app's start-up objects paused every request for ~60-80 ms."""
    import gc

    from bot.config import load_settings
    from bot.serve import make_wsgi

    gc.unfreeze()
    web = make_wsgi(load_settings(settings_env), with_scheduler=False, with_outbox=False)
    try:
        assert gc.get_freeze_count() > 10_000
        assert web.test_client().get("/healthz").status_code == 200
    finally:
        gc.unfreeze()
        web.config["health"].stop()
        web.config["runtime"].storage.dispose()
