"""The web pages behind Sign in with Slack, and what an anonymous visitor gets: nothing the bot
knows, from any route."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer

from bot.clock import ManualClock
from tests.conftest import ALERT_AUTH, START, Visitor, free_port, start_bot, web_env

PAGES = ["/", "/incidents/1", "/postmortems/1", "/rotations/payments", "/login", "/auth/slack/callback"]
# What the bot knows that a visitor must not learn: a title, people (IDs and names), a rotation's name.
KNOWN = ("Checkout", "U0FRANK", "frank", "U0DAVE", "payments", "PDT", "inc-1")


def an_incident_with_a_postmortem(bot, *, private: bool = False) -> str:
    bot.command("U0FRANK", "/incident", "declare --private sev2 Checkout down" if private else "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    bot.command("U0FRANK", "/incident", "note rolled back the deploy", channel=channel)
    bot.advance(timedelta(minutes=20))
    bot.command("U0FRANK", "/incident", "resolve rollback fixed it", channel=channel)
    return channel


def cookie_of(visitor: Visitor) -> str:
    return visitor.http.cookies.get("oncall_session")


# --- without Sign in with Slack ---------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES + ["/logout"])
def test_without_a_client_id_the_pages_answer_404(bot, path):
    an_incident_with_a_postmortem(bot) if path == "/" else None
    reply = bot.get(path)
    assert reply.status == 404
    assert not any(word in reply.body for word in KNOWN)


# --- signing in -------------------------------------------------------------------------------


def test_signing_in_shows_the_incidents_and_who_is_on_call_in_my_zone(web, standin):
    an_incident_with_a_postmortem(web)
    web.command("U0FRANK", "/incident", "declare sev1 Search is slow")
    frank = Visitor(web)
    assert frank.get("/").headers["Location"] == "/login?next=/"
    landed = frank.sign_in("U0FRANK")
    assert landed.status_code == 303 and landed.headers["Location"] == "/"
    home = frank.get("/")
    assert home.status_code == 200
    assert "#2 Search is slow" in home.text and "Checkout down" not in home.text  # resolved: not open
    assert "times in America/Los_Angeles" in home.text
    assert re.search(r"payments</a>: frank \(amer\)", home.text)
    page = frank.get("/incidents/1").text
    assert "Tue 10 Mar 2026 08:00 PDT" in page  # declared at 15:00 UTC
    assert "rolled back the deploy" in page and "Postmortem draft" in page
    postmortem = frank.get("/postmortems/1")
    assert postmortem.status_code == 200 and "rollback fixed it" in postmortem.text
    rotation = frank.get("/rotations/payments")
    assert rotation.status_code == 200 and "PDT" in rotation.text and "dave" in rotation.text
    assert frank.get("/rotations/nosuch").status_code == 404
    assert frank.get("/incidents/99").status_code == 404


def test_the_session_cookie_is_httponly_lax_and_secure_behind_https(web, settings_env, standin):
    frank = Visitor(web)
    frank.sign_in("U0FRANK")
    cookie = next(c for c in frank.http.cookies if c.name == "oncall_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and not cookie.secure
    assert cookie.get_nonstandard_attr("SameSite") == "Lax"
    port = free_port()
    env = {**web_env(settings_env, standin, port), "PUBLIC_URL": "https://oncall.example.com"}
    served, stop = start_bot(env, standin, ManualClock(START), port=port)
    try:
        to_slack = Visitor(served).get("/login")
        assert to_slack.status_code == 302 and "Secure" in to_slack.headers["Set-Cookie"]
        assert "redirect_uri=https%3A%2F%2Foncall.example.com%2Fauth%2Fslack%2Fcallback" in to_slack.headers["Location"]
    finally:
        stop()


def test_a_private_incident_is_shown_only_to_its_channel_members(web, standin):
    channel = an_incident_with_a_postmortem(web, private=True)
    assert "U0MALLORY" not in standin.members(channel)
    mallory = Visitor(web)
    mallory.sign_in("U0MALLORY")
    for path in ("/incidents/1", "/postmortems/1"):
        refused = mallory.get(path)
        assert refused.status_code == 404 and "Checkout" not in refused.text
    web.command("U0MALLORY", "/incident", "declare sev3 Her own incident")
    assert "Checkout" not in mallory.get("/").text and "Her own incident" in mallory.get("/").text
    assert "Her own incident" in mallory.get("/incidents/2").text  # a public one: anyone signed in
    standin.add_member(channel, "U0MALLORY")  # joins: Slack's conversations.members says so
    assert "Checkout down" in mallory.get("/incidents/1").text


def test_after_signing_in_the_page_asked_for_is_shown_and_never_another_site(web):
    frank = Visitor(web)
    assert frank.get("/incidents/1").headers["Location"] == "/login?next=/incidents/1"
    assert frank.sign_in("U0FRANK", "/rotations/payments").headers["Location"] == "/rotations/payments"
    other = Visitor(web)
    assert other.sign_in("U0FRANK", "//evil.example/x").headers["Location"] == "/"


# --- refused and logged -----------------------------------------------------------------------


def test_a_forged_session_cookie_is_refused_and_logged(web, caplog):
    frank = Visitor(web)
    frank.sign_in("U0FRANK")
    real = cookie_of(frank)
    forged = URLSafeTimedSerializer("not-the-key", salt="cookie-session", signer_kwargs={
        "key_derivation": "hmac", "digest_method": __import__("hashlib").sha1}).dumps(
        {"user": "U0FRANK", "sid": "x", "csrf": "x", "at": 9e12})
    tampered = real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB")
    for cookie in (forged, tampered):
        visitor = Visitor(web)
        visitor.http.cookies.set("oncall_session", cookie, domain="127.0.0.1")
        with caplog.at_level(logging.WARNING, logger="bot.web.signin"):
            caplog.clear()
            reply = visitor.get("/incidents/1")
        assert reply.status_code == 303 and reply.headers["Location"].startswith("/login")
        assert any("does not verify" in r.getMessage() for r in caplog.records)


def test_a_session_cookie_kept_after_signing_out_is_refused_and_logged(web, caplog):
    web.command("U0FRANK", "/incident", "declare sev2 Checkout down")
    frank = Visitor(web)
    frank.sign_in("U0FRANK")
    kept = cookie_of(frank)
    csrf = re.search(r'name="csrf" value="([^"]+)"', frank.get("/").text).group(1)
    refused = frank.post("/logout", {"csrf": "wrong"})
    assert refused.status_code == 403 and frank.get("/").status_code == 200  # still signed in
    assert frank.post("/logout", {"csrf": csrf}).status_code == 200
    assert frank.get("/").status_code == 303
    replay = Visitor(web)
    replay.http.cookies.set("oncall_session", kept, domain="127.0.0.1")
    with caplog.at_level(logging.WARNING, logger="bot.web.signin"):
        reply = replay.get("/incidents/1")
    assert reply.status_code == 303 and "Checkout" not in reply.text
    assert any("signed-out session of U0FRANK replayed" in r.getMessage() for r in caplog.records)


def test_a_wrong_openid_state_or_a_reused_code_is_refused_logged_and_signs_nobody_in(web, standin, caplog):
    web.command("U0FRANK", "/incident", "declare sev2 Checkout down")
    visitor = Visitor(web)
    to_slack = visitor.get("/login")
    back = visitor.get(to_slack.headers["Location"] + "&pick=U0FRANK").headers["Location"]
    wrong = re.sub(r"state=[^&]+", "state=forged", back)
    with caplog.at_level(logging.WARNING, logger="bot.web.signin"):
        reply = visitor.get(wrong)
    assert reply.status_code == 400 and "Sign-in failed" in reply.text
    assert any("refused a sign-in" in r.getMessage() for r in caplog.records)
    assert visitor.get("/").status_code == 303
    tokens_before = len(standin.calls_to("openid.connect.token"))
    assert tokens_before == 0  # a wrong state never reaches Slack
    good = Visitor(web)
    first = good.sign_in("U0FRANK")
    assert first.status_code == 303
    again = Visitor(web)
    to_slack = again.get("/login")
    state = re.search(r"state=([^&]+)", to_slack.headers["Location"]).group(1)
    used = [c for c in standin.calls_to("openid.connect.token")][-1]
    assert used.response["ok"] is True
    reused = again.get(re.sub(r"state=[^&]+", f"state={state}", back))  # frank's first code, spent already
    assert reused.status_code == 400 and again.get("/").status_code == 303


# --- an anonymous visitor ---------------------------------------------------------------------


def sample_path(rule) -> str:
    """A concrete path for a Flask rule, its variables filled with plausible values."""
    values = {"number": "1", "name": "payments", "name_": "payments", "secret": "A" * 32}
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values.get(m.group(1), "x"), rule.rule)


def test_an_anonymous_visitor_gets_nothing_the_bot_knows_from_any_route(web, standin):
    an_incident_with_a_postmortem(web)
    web.command("U0FRANK", "/oncall", "ical")
    rules = list(web.web_app.url_map.iter_rules())
    paths = {sample_path(rule) for rule in rules if rule.endpoint != "static"}
    paths |= {"/ack/x", "/ical/payments.ics", "/ical/payments.ics?user=U0FRANK", "/incidents/1?x=1",
              "/postmortems/1.md", "/rotations/payments.ics", "/slack/events", "/alerts/webhook"}
    assert {"/", "/incidents/1", "/postmortems/1", "/rotations/payments", "/login", "/logout"} <= paths
    visitor = Visitor(web)
    for path in sorted(paths):
        for method in ("GET", "POST"):
            reply = visitor.http.request(method, web.url + path, allow_redirects=False, timeout=10)
            where = f"{method} {path} -> {reply.status_code}"
            if path == "/login" and method == "GET":
                assert reply.status_code == 302 and reply.headers["Location"].startswith(standin.base_url), where
                continue
            if path in ("/healthz", "/metrics") and method == "GET":
                assert reply.status_code == 200, where
                assert not any(word in reply.text for word in ("Checkout", "U0FRANK", "frank")), where
                continue
            assert reply.status_code in (303, 400, 401, 403, 404, 405), where
            if reply.status_code == 303:
                assert reply.headers["Location"].startswith("/login?next="), where
            assert not any(word in reply.text for word in KNOWN), where
            assert reply.headers["X-Content-Type-Options"] == "nosniff", where
            assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"], where


def test_alerts_answer_404_without_a_token_and_metrics_want_theirs_when_set(settings_env, standin):
    env = {k: v for k, v in settings_env.items() if k != "ALERTMANAGER_TOKEN"}
    served, stop = start_bot({**env, "METRICS_TOKEN": "m3trics"}, standin, ManualClock(START))
    try:
        for path in ("/alerts/alertmanager", "/alerts/webhook"):
            reply = served.post(path, json.dumps({"title": "Queue backed up"}),
                                {"Content-Type": "application/json", **ALERT_AUTH})
            assert reply.status == 404
        assert standin.dms("U0FRANK") == [] and standin.calls_to("conversations.create") == []
        assert served.get("/metrics").status == 401
        assert served.get("/metrics", {"Authorization": "Bearer wrong"}).status == 401
        scraped = served.get("/metrics", {"Authorization": "Bearer m3trics"})
        assert scraped.status == 200 and "oncall_" in scraped.body
    finally:
        stop()


def test_visible_to_shows_a_public_incident_to_everyone_and_any_other_only_to_its_members():
    from types import SimpleNamespace

    from bot.web.visibility import visible_to

    members = {("C1", "U0FRANK")}

    def is_member(channel, user):
        return (channel, user) in members

    unknown = SimpleNamespace(channel_id="C1")  # before incidents say whether they are private
    assert visible_to("U0FRANK", unknown, is_member) and not visible_to("U0BOB", unknown, is_member)
    assert visible_to("U0BOB", SimpleNamespace(channel_id="C1", private=False), is_member)
    assert not visible_to("U0BOB", SimpleNamespace(channel_id="C1", private=True), is_member)
    assert visible_to("U0BOB", SimpleNamespace(channel_id=None), is_member)  # no channel yet


def test_sign_in_with_slack_needs_both_the_client_id_and_its_secret():
    from bot.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together"):
        load_settings({"SLACK_CLIENT_ID": "1.2"})
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        load_settings({"PUBLIC_URL": "oncall.example.com"})
    settings = load_settings({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s", "PUBLIC_URL": "https://x.example/"})
    assert settings.web_pages and settings.base_url == "https://x.example"
    assert load_settings({"PORT": "8080"}).base_url == "http://localhost:8080"


def test_links_the_bot_posts_in_slack_lead_to_the_web_pages_when_they_are_on(web, standin):
    channel = an_incident_with_a_postmortem(web)
    summary = standin.pins(channel)[0]
    assert f"<{web.url}/incidents/1|Incident page>" in json.dumps(summary["blocks"])
    broadcasts = [m["text"] for m in standin.messages("C0INCIDENTS")]
    assert f"<{web.url}/incidents/1|incident page>" in broadcasts[0]
    assert f"Postmortem draft: <{web.url}/postmortems/1|postmortem-inc-1.md>" in broadcasts[-1]
    (upload,) = [c for c in standin.calls_to("files.completeUploadExternal")]
    assert f"<{web.url}/postmortems/1|postmortem-inc-1.md>" in upload.args["initial_comment"]


def test_without_the_web_pages_no_link_leads_to_them(bot, standin):
    channel = an_incident_with_a_postmortem(bot)
    shown = json.dumps([standin.messages(channel), standin.messages("C0INCIDENTS")])
    assert "/incidents/1" not in shown and "/postmortems/1" not in shown


def test_a_person_of_another_workspace_cannot_sign_in(web, standin):
    assert Visitor(web).sign_in("U0FRANK").status_code == 303  # the bot learns its workspace
    standin.team_id = "T0OTHER"  # from now on Slack's ID tokens name another workspace
    visitor = Visitor(web)
    refused = visitor.sign_in("U0FRANK")
    assert refused.status_code == 403 and "this bot&#39;s Slack workspace" in refused.text
    assert visitor.get("/").status_code == 303
