"""GET /metrics as Prometheus scrapes it: Slack requests by name and outcome, latency, Web API
calls and errors, and the figures read from the database (open incidents, pages, outbox)."""

from __future__ import annotations

import urllib.parse
import urllib.request
from datetime import timedelta

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families
from slack_bolt import App, BoltRequest

from bot.clock import ManualClock
from bot.observability.metrics import BotMetrics, DatabaseCollector
from bot.observability.slack_requests import mark_outcome, observe_requests
from tests.conftest import START, start_bot


def scrape(bot) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, keyed by (sample name, labels)."""
    response = bot.get("/metrics")
    assert response.status == 200, response.body
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.body)
        for sample in family.samples
    }


def value(samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def test_a_declaration_and_a_bad_command_show_up_with_their_outcomes(bot):
    assert (
        "Declared incident #1"
        in bot.command("U0ALICE", "/incident", "declare sev2 Checkout down").text
    )
    assert "not an /incident command" in bot.command("U0ALICE", "/incident", "frobnicate").text
    assert (
        "is not a severity"
        in bot.command("U0ALICE", "/incident", "sev 0", channel=bot.channel_of(1)).text
    )
    samples = scrape(bot)

    requests = "oncall_slack_requests_total"
    assert value(samples, requests, kind="command", name="/incident declare", outcome="ok") == 1
    assert (
        value(samples, requests, kind="command", name="/incident (unknown)", outcome="usage_error")
        == 1
    )
    assert (
        value(samples, requests, kind="command", name="/incident sev", outcome="usage_error") == 1
    )
    assert value(samples, requests, kind="command", name="/incident sev", outcome="ok") == 0
    assert (
        value(samples, "oncall_slack_ack_seconds_count", kind="command", name="/incident declare")
        == 1
    )
    assert (
        value(
            samples, "oncall_slack_handling_seconds_count", kind="command", name="/incident declare"
        )
        == 1
    )

    assert value(samples, "oncall_slack_api_calls_total", method="conversations.create") >= 1
    assert value(samples, "oncall_slack_api_calls_total", method="pins.add") >= 1
    assert value(samples, "oncall_slack_api_call_seconds_count", method="conversations.create") >= 1

    assert value(samples, "oncall_database_up") == 1
    assert value(samples, "oncall_incidents_open", severity="sev2") == 1
    assert all(value(samples, "oncall_incidents_open", severity=f"sev{n}") == 0 for n in (1, 3, 4))
    assert value(samples, "oncall_incidents_declared_total") == 1
    assert value(samples, "oncall_outbox_tasks", status="pending") == 0
    assert value(samples, "oncall_outbox_tasks", status="failed") == 0
    assert value(samples, "oncall_pages_total") == 1  # frank, on call for payments


def test_metrics_are_served_in_the_prometheus_text_format(bot):
    with urllib.request.urlopen(bot.url + "/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"] == prometheus_client.CONTENT_TYPE_LATEST
        assert "# TYPE oncall_incidents_open gauge" in reply.read().decode()


def test_resolving_takes_the_incident_out_of_the_open_gauge(bot):
    bot.command("U0ALICE", "/incident", "declare sev1 Database down")
    bot.command("U0ALICE", "/incident", "resolve Failed over", channel=bot.channel_of(1))
    samples = scrape(bot)
    assert value(samples, "oncall_incidents_open", severity="sev1") == 0
    assert (
        value(
            samples,
            "oncall_slack_requests_total",
            kind="command",
            name="/incident resolve",
            outcome="ok",
        )
        == 1
    )


def test_slack_api_errors_are_counted_by_method_and_error_code(bot, standin):
    standin.fail_next("conversations.create", status=None, error="restricted_action")
    bot.command("U0ALICE", "/incident", "declare sev3 Search slow")
    samples = scrape(bot)
    assert (
        value(
            samples,
            "oncall_slack_api_errors_total",
            method="conversations.create",
            error="restricted_action",
        )
        == 1
    )
    assert (
        value(samples, "oncall_slack_api_calls_total", method="conversations.create") == 2
    )  # the outbox retried


def test_an_unanswered_page_counts_as_an_escalation(bot):
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
    bot.advance(timedelta(minutes=11))
    samples = scrape(bot)
    assert value(samples, "oncall_pages_total") == 2  # frank, then payments-secondary
    assert value(samples, "oncall_page_escalations_total") == 1
    assert value(samples, "oncall_pages_unanswered") == 1


def test_buttons_and_events_are_named_by_action_id_and_event_type(bot, standin):
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
    page_id = next(
        b["elements"][0]["value"]
        for m in standin.dms("U0FRANK")
        for b in m.get("blocks", [])
        if b["type"] == "actions"
    )
    bot.press("U0FRANK", "page_ack", page_id)
    bot.event({"type": "member_joined_channel", "user": "U0BOB", "channel": bot.channel_of(1)})
    samples = scrape(bot)
    assert (
        value(samples, "oncall_slack_requests_total", kind="action", name="page_ack", outcome="ok")
        == 1
    )
    assert (
        value(
            samples,
            "oncall_slack_requests_total",
            kind="event",
            name="member_joined_channel",
            outcome="ok",
        )
        == 1
    )


def test_a_listener_that_fails_counts_as_an_error(bot, standin):
    standin.fail_next("views.open", status=None, error="expired_trigger_id")
    bot.command("U0ALICE", "/incident", "declare")  # no title: opens the form, which Slack refuses
    samples = scrape(bot)
    assert (
        value(
            samples,
            "oncall_slack_requests_total",
            kind="command",
            name="/incident declare",
            outcome="error",
        )
        == 1
    )
    assert (
        value(
            samples,
            "oncall_slack_api_errors_total",
            method="views.open",
            error="expired_trigger_id",
        )
        == 1
    )


def test_http_responses_are_counted_by_route_and_carry_a_request_id(bot):
    bot.get("/no/such/page")
    bot.get("/healthz")
    with urllib.request.urlopen(
        urllib.request.Request(bot.url + "/healthz", headers={"X-Request-Id": "lb-42"})
    ) as reply:
        assert reply.headers["X-Request-Id"] == "lb-42"
    samples = scrape(bot)
    assert (
        value(
            samples, "oncall_http_responses_total", route="(unmatched)", method="GET", status="404"
        )
        == 1
    )
    assert (
        value(samples, "oncall_http_responses_total", route="/healthz", method="GET", status="200")
        == 2
    )


def test_two_bots_in_one_process_keep_their_own_numbers(bot, standin, settings_env, tmp_path):
    other, stop = start_bot(
        {**settings_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"},
        standin,
        ManualClock(START),
    )
    try:
        bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
        assert bot.rt.metrics.registry is not prometheus_client.REGISTRY
        assert (
            value(
                scrape(other),
                "oncall_slack_requests_total",
                kind="command",
                name="/incident declare",
                outcome="ok",
            )
            == 0
        )
        assert (
            value(
                scrape(bot),
                "oncall_slack_requests_total",
                kind="command",
                name="/incident declare",
                outcome="ok",
            )
            == 1
        )
    finally:
        stop()


def test_a_multiprocess_deploy_still_serves_the_database_figures(bot, tmp_path, monkeypatch):
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
    (tmp_path / "prometheus").mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    assert value(scrape(bot), "oncall_incidents_open", severity="sev2") == 1


def test_an_unreachable_database_is_reported_not_raised():
    class Broken:
        def read(self):
            raise OSError("connection refused")

    metrics = BotMetrics()
    metrics.registry.register(DatabaseCollector(Broken(), ManualClock(START)))  # type: ignore[arg-type]
    text = metrics.exposition().decode()
    assert "oncall_database_up 0.0" in text


def test_a_listener_can_mark_its_request_refused(bot):
    """The hook handlers call when they decline to act, shown on a Bolt app of its own."""
    app = App(
        client=bot.rt.client,
        signing_secret="unused",
        request_verification_enabled=False,
        token_verification_enabled=False,
        process_before_response=True,
    )
    observe_requests(app, bot.rt.storage, bot.rt.metrics)

    @app.command("/incident")
    def refuse(ack):
        mark_outcome("refused")
        ack(text="Only the commander may do that.")

    body = urllib.parse.urlencode(
        {"command": "/incident", "text": "sev 1", "user_id": "U0BOB", "channel_id": "C0X"}
    )
    headers = {"content-type": ["application/x-www-form-urlencoded"]}
    assert app.dispatch(BoltRequest(body=body, headers=headers)).status == 200
    samples = scrape(bot)
    assert (
        value(
            samples,
            "oncall_slack_requests_total",
            kind="command",
            name="/incident sev",
            outcome="refused",
        )
        == 1
    )
