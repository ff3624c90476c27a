"""Alerts end to end over HTTP: Alertmanager's webhook (v4) and the generic webhook."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot.alerts.alertmanager import PayloadError, parse_alertmanager, parse_webhook
from bot.alerts.service import AlertPolicy
from bot.clock import ManualClock
from bot.config import parse_severity_map
from bot.models import Claim, Incident, OutboxTask, Page, TimelineEntry
from tests.conftest import ALERT_AUTH, ALERT_TOKEN, ROTATIONS, START, start_bot

TOKEN = ALERT_TOKEN
GROUP = '{}/{rotation="payments"}:{alertname="HighErrorRate"}'
JSON = {"Content-Type": "application/json", **ALERT_AUTH}


def am_alert(name="HighErrorRate", *, severity="critical", rotation="payments", status="firing",
             starts_at="2026-03-10T14:58:00Z", instance="checkout-1", summary=None, description=None, **labels):
    labels = {"alertname": name, "instance": instance, **labels}
    if severity:
        labels["severity"] = severity
    if rotation:
        labels["rotation"] = rotation
    return {
        "status": status, "labels": labels,
        "annotations": {"summary": summary or f"{name} on {instance}",
                        "description": description or "Error rate is above 5% for 5 minutes."},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-10T15:30:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=errors&g0.tab=1",
        "fingerprint": f"fp-{name}-{instance}",
    }


def am_payload(*alerts, group_key=GROUP, status=None):
    alerts = alerts or (am_alert(),)
    status = status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved")
    return {
        "version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": status, "receiver": "oncall-bot",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093", "alerts": list(alerts),
    }


def post(bot, path, body, headers=None):
    """POST with the bearer token, or with exactly `headers`' Authorization when given."""
    text = body if isinstance(body, str) else json.dumps(body)
    base = JSON if headers is None else {"Content-Type": "application/json"}
    response = bot.post(path, text, {**base, **(headers or {})})
    bot.settle()
    return response


def alertmanager(bot, *alerts, **kwargs):
    return post(bot, "/alerts/alertmanager", am_payload(*alerts, **kwargs))


def rows(bot, table):
    with bot.rt.storage.read() as session:
        return session.exec(select(table).order_by(table.id if hasattr(table, "id") else table.key)).all()


def alert_entries(bot):
    return [e.text for e in rows(bot, TimelineEntry) if e.kind == "alert"]


def written(bot):
    """How many rows an alert could have written: incidents, pages, alert markers, Slack work."""
    claims = [c for c in rows(bot, Claim) if c.key.startswith("alert")]
    return len(rows(bot, Incident)), len(rows(bot, Page)), len(claims), len(rows(bot, OutboxTask))


def texts(messages):
    return "\n".join(m.get("text", "") for m in messages)


# --- Alertmanager ------------------------------------------------------------------------------


def test_a_critical_alert_declares_an_incident_opens_its_channel_and_pages_the_on_call_person(bot, standin):
    reply = alertmanager(bot)
    assert reply.status == 200
    assert reply.json() == {"ok": True, "action": "declared", "incident": 1, "paged": ["U0FRANK"], "warnings": []}
    [incident] = rows(bot, Incident)
    assert incident.severity == 1 and incident.title == "HighErrorRate on checkout-1"
    assert incident.commander == "U0FRANK" and incident.declarer == "alertmanager"
    assert "Error rate is above 5%" in incident.description
    assert "<http://prometheus.example:9090/graph?g0.expr=errors&amp;g0.tab=1|source>" in incident.description
    channel = bot.channel_of(1)
    assert standin.channel_by_name("inc-1-higherrorrate-on-checkout-1")["id"] == channel
    assert "U0FRANK" in standin.members(channel)
    marks = {b["title"]: b["link"] for b in standin.bookmarks(channel)}
    assert marks["Alert source"] == "http://prometheus.example:9090/graph?g0.expr=errors&g0.tab=1"
    assert "alertmanager paged you for incident #1" in texts(standin.dms("U0FRANK"))
    assert "Incident declared" in texts(standin.messages("C0INCIDENTS"))
    assert alert_entries(bot) == ["Alert firing: HighErrorRate (HighErrorRate on checkout-1)"]


def test_a_warning_alert_only_pages(bot, standin):
    reply = alertmanager(bot, am_alert("DiskFilling", severity="warning"))
    assert reply.json()["action"] == "paged" and reply.json()["incident"] is None
    assert reply.json()["paged"] == ["U0FRANK"]
    assert rows(bot, Incident) == []
    [page] = rows(bot, Page)
    assert page.incident_id is None and page.rotation == "payments"
    assert page.reason == "[WARNING] DiskFilling on checkout-1"
    dm = standin.dms("U0FRANK")
    assert "Alert: *[WARNING] DiskFilling on checkout-1*" in dm[0]["text"]
    assert [b for b in dm[0]["blocks"] if b["type"] == "actions"]  # Acknowledge / Escalate
    assert "Error rate is above 5%" in dm[1]["text"]  # the details follow


def test_the_same_group_again_attaches_to_the_open_incident(bot, standin):
    alertmanager(bot)
    reply = alertmanager(bot, am_alert(), am_alert(instance="checkout-2"))
    assert reply.json() == {"ok": True, "action": "attached", "incident": 1, "paged": [], "warnings": []}
    assert len(rows(bot, Incident)) == 1 and len(rows(bot, Page)) == 1
    assert alert_entries(bot)[-1] == "Alert firing: HighErrorRate (HighErrorRate on checkout-2)"
    assert "Also firing: HighErrorRate (HighErrorRate on checkout-2)" in texts(standin.messages(bot.channel_of(1)))


def test_a_repeated_identical_notification_acts_once(bot, standin):
    first = alertmanager(bot)
    for _ in range(3):  # Alertmanager resends the group on repeat_interval
        again = alertmanager(bot)
        assert again.json() == {"ok": True, "action": "duplicate", "incident": 1, "paged": [], "warnings": []}
    assert first.json()["action"] == "declared"
    assert len(rows(bot, Incident)) == 1 and len(rows(bot, Page)) == 1 and len(alert_entries(bot)) == 1
    assert len(standin.dms("U0FRANK")) == 1


def test_simultaneous_deliveries_of_one_notification_act_once(bot, standin):
    body = json.dumps(am_payload())  # Alertmanager HA peers each send the group
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda _: bot.post("/alerts/alertmanager", body, JSON), range(6)))
    bot.settle()
    assert sorted(r.json()["action"] for r in replies) == ["declared"] + ["duplicate"] * 5
    assert len(rows(bot, Incident)) == 1 and len(rows(bot, Page)) == 1
    assert len(standin.dms("U0FRANK")) == 1


def test_repeats_of_one_group_and_fingerprints_page_once_even_when_their_bodies_differ(bot, standin):
    """HA peers each send the group with their own externalURL, and a retry after a timeout may
    carry a newer annotation: the bodies differ, the alerts (fingerprint and start) do not."""
    peers = [{**am_payload(), "externalURL": f"http://alertmanager-{n}.example:9093"} for n in range(6)]
    peers[5]["alerts"][0]["annotations"]["description"] = "Error rate is above 6% for 5 minutes."
    first, second = (post(bot, "/alerts/alertmanager", peer).json()["action"] for peer in peers[:2])
    assert (first, second) == ("declared", "duplicate")
    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(lambda peer: bot.post("/alerts/alertmanager", json.dumps(peer), JSON), peers[2:]))
    bot.settle()
    assert [r.json()["action"] for r in replies] == ["duplicate"] * 4
    assert len(rows(bot, Incident)) == 1 and len(rows(bot, Page)) == 1 and len(alert_entries(bot)) == 1
    assert len(standin.dms("U0FRANK")) == 1  # one page


def test_a_new_fingerprint_in_a_paged_group_pages_nobody_new_concurrently_either(bot, standin):
    alertmanager(bot, am_alert("DiskFilling", severity="warning"))
    grown = json.dumps(am_payload(am_alert("DiskFilling", severity="warning"),
                                  am_alert("DiskFilling", severity="warning", instance="db-2")))
    with ThreadPoolExecutor(max_workers=2) as pool:
        replies = list(pool.map(lambda _: bot.post("/alerts/alertmanager", grown, JSON), range(2)))
    bot.settle()
    assert sorted(r.json()["action"] for r in replies) == ["attached", "duplicate"]
    assert len(rows(bot, Page)) == 1
    assert texts(standin.dms("U0FRANK")).count("Also firing in this alert group: DiskFilling (DiskFilling on db-2)") == 1


@contextmanager
def database_unwritable(bot, database_url, request):
    """PostgreSQL turned read-only, or the SQLite file gone from under the bot (a lost volume)."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        bot.rt.storage.engine.dispose()
        bot.rt.storage.read_engine.dispose()
        path.rename(path.with_suffix(".away"))
        path.mkdir()
        try:
            yield
        finally:
            path.rmdir()
            path.with_suffix(".away").rename(path)
            bot.rt.storage.engine.dispose()
            bot.rt.storage.read_engine.dispose()
        return
    postgres = request.getfixturevalue("postgres")
    name = database_url.rsplit("/", 1)[1]

    def read_only(on: bool) -> None:
        with psycopg.connect(postgres.url(), autocommit=True) as admin:
            setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
            admin.execute(f'ALTER DATABASE "{name}" {setting}')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

    read_only(True)
    try:
        yield
    finally:
        read_only(False)
        bot.rt.storage.engine.dispose()  # the server cut the pooled connections: start afresh
        bot.rt.storage.read_engine.dispose()


def test_an_alert_the_database_cannot_take_gets_503_and_the_retry_pages_once(bot, standin, database_url, request):
    body = json.dumps(am_payload())
    with database_unwritable(bot, database_url, request):
        for _ in range(2):  # Alertmanager retries 5xx (and drops 429 and other 4xx)
            refused = bot.post("/alerts/alertmanager", body, JSON)
            assert refused.status == 503, refused.body
            assert refused.json()["ok"] is False and "send it again" in refused.json()["error"]
    assert written(bot) == (0, 0, 0, 0)
    assert standin.dms("U0FRANK") == []
    taken = post(bot, "/alerts/alertmanager", body)
    assert taken.status == 200 and taken.json()["action"] == "declared"
    assert post(bot, "/alerts/alertmanager", body).json()["action"] == "duplicate"
    assert len(rows(bot, Page)) == 1 and len([m for m in standin.dms("U0FRANK") if "paged you" in m["text"]]) == 1


def test_a_resolved_notification_notes_the_timeline_and_leaves_the_incident_open(bot, standin):
    alertmanager(bot)
    bot.clock.advance(timedelta(minutes=5))
    reply = alertmanager(bot, am_alert(status="resolved"))
    assert reply.json()["action"] == "noted" and reply.json()["incident"] == 1
    assert alert_entries(bot)[-1] == "alert resolved: HighErrorRate (HighErrorRate on checkout-1)"
    assert rows(bot, Incident)[0].status == "investigating"
    assert "stays open until someone runs `/incident resolve`" in texts(standin.messages(bot.channel_of(1)))
    assert alertmanager(bot, am_alert(status="resolved")).json()["action"] == "duplicate"
    assert len(alert_entries(bot)) == 2


def test_a_group_that_fires_again_while_its_incident_is_open_attaches(bot):
    alertmanager(bot)
    alertmanager(bot, am_alert(status="resolved"))
    bot.clock.advance(timedelta(minutes=10))
    reply = alertmanager(bot, am_alert(starts_at="2026-03-10T15:09:00Z"))
    assert reply.json()["action"] == "attached" and len(rows(bot, Incident)) == 1


def test_after_humans_resolve_the_incident_a_new_firing_declares_a_new_one(bot):
    alertmanager(bot)
    bot.command("U0FRANK", "/incident", "resolve rolled back", channel=bot.channel_of(1))
    assert alertmanager(bot).json()["action"] == "duplicate"  # the same firing, repeated
    bot.clock.advance(timedelta(hours=1))
    reply = alertmanager(bot, am_alert(starts_at="2026-03-10T15:59:00Z"))
    assert reply.json()["action"] == "declared" and reply.json()["incident"] == 2


def test_an_unanswered_alert_page_absorbs_its_group_and_an_acknowledged_one_does_not(bot, standin):
    alertmanager(bot, am_alert("DiskFilling", severity="warning"))
    reply = alertmanager(bot, am_alert("DiskFilling", severity="warning", instance="db-2"))
    assert reply.json()["action"] == "attached" and len(rows(bot, Page)) == 1
    assert "Also firing in this alert group: DiskFilling (DiskFilling on db-2)" in texts(standin.dms("U0FRANK"))
    bot.press("U0FRANK", "page_ack", str(rows(bot, Page)[0].id))
    reply = alertmanager(bot, am_alert("DiskFilling", severity="warning", instance="db-3"))
    assert reply.json()["action"] == "paged" and len(rows(bot, Page)) == 2


def test_an_alert_page_whose_group_resolves_stops_escalating(bot, standin):
    alertmanager(bot, am_alert("DiskFilling", severity="warning"))
    bot.clock.advance(timedelta(minutes=3))
    reply = alertmanager(bot, am_alert("DiskFilling", severity="warning", status="resolved"))
    assert reply.json()["action"] == "noted"
    assert "Resolved: DiskFilling (DiskFilling on checkout-1). The page above stops escalating." in texts(standin.dms("U0FRANK"))
    bot.advance(timedelta(minutes=20))
    assert len(rows(bot, Page)) == 1  # no escalation to payments-secondary
    reply = alertmanager(bot, am_alert("DiskFilling", severity="warning", starts_at="2026-03-10T15:22:00Z"))
    assert reply.json()["action"] == "paged" and len(rows(bot, Page)) == 2  # a new episode pages again


def test_an_alert_page_whose_group_resolves_loses_its_buttons_and_cannot_be_answered(bot, standin):
    alertmanager(bot, am_alert("DiskFilling", severity="warning"))
    page = rows(bot, Page)[0]
    alertmanager(bot, am_alert("DiskFilling", severity="warning", status="resolved"))
    [update] = [c for c in standin.calls_to("chat.update") if c.args.get("ts") == rows(bot, Page)[0].dm_ts]
    shown = json.dumps(update.args.get("blocks"))
    assert "Resolved by itself before anyone answered" in shown and "page_ack" not in shown
    seen = len(standin.ephemerals("U0FRANK"))
    bot.press("U0FRANK", "page_ack", str(page.id))
    bot.press("U0FRANK", "page_escalate", str(page.id))
    answers = [m["text"] for m in standin.ephemerals("U0FRANK")[seen:]]
    assert answers == ["This alert resolved by itself; there is nothing left to acknowledge.",
                       "This alert resolved by itself; there is nothing left to escalate."]
    [after] = rows(bot, Page)
    assert after.acknowledged_at is None and after.escalated_at is None and after.resolved_at is not None


def test_an_unacknowledged_alert_page_escalates_along_the_chain(bot, standin):
    alertmanager(bot, am_alert("DiskFilling", severity="warning"))
    bot.advance(timedelta(minutes=11))
    first, second = rows(bot, Page)
    assert first.escalated_by == "escalation-timer" and second.rotation == "payments-secondary"
    assert second.reason == first.reason and second.dedup_key == first.dedup_key
    assert "DiskFilling on checkout-1" in texts(standin.dms(second.user))


def test_the_rotation_label_picks_the_rotation(bot):
    reply = alertmanager(bot, am_alert(severity="warning", rotation="payments-secondary"))
    assert reply.json()["paged"][0] in ("U0GRACE", "U0HEIDI")


def test_an_unknown_rotation_label_pages_the_default_rotation_and_says_so(bot, standin):
    reply = alertmanager(bot, am_alert(severity="warning", rotation="nosuch"))
    assert reply.json()["paged"] == ["U0FRANK"]
    assert reply.json()["warnings"] == ["The rotation label `nosuch` names no rotation; paged the default rotation `payments`."]
    assert "names no rotation; paged the default rotation `payments`" in rows(bot, Page)[0].reason
    assert "names no rotation" in standin.dms("U0FRANK")[0]["text"]


def test_a_critical_alert_with_an_unknown_rotation_says_so_on_the_incident(bot):
    reply = alertmanager(bot, am_alert(rotation="nosuch"))
    assert reply.json()["action"] == "declared" and reply.json()["paged"] == ["U0FRANK"]
    assert "names no rotation" in alert_entries(bot)[0] and "names no rotation" in rows(bot, Incident)[0].description


@pytest.fixture
def no_default_rotation(tmp_path, settings_env):
    folder = tmp_path / "rotations"
    folder.mkdir()
    for path in ROTATIONS.glob("*.toml"):
        (folder / path.name).write_text(path.read_text().replace("default = true\n", ""))
    return {**settings_env, "ROTATIONS_DIR": str(folder)}


def test_with_no_rotation_to_page_the_alert_is_accepted_with_a_warning_and_posted(no_default_rotation, standin):
    served, stop = start_bot(no_default_rotation, standin, ManualClock(START))
    try:
        reply = alertmanager(served, am_alert("DiskFilling", severity="warning", rotation=None))
        assert reply.status == 200 and reply.json()["action"] == "unrouted" and reply.json()["paged"] == []
        assert reply.json()["warnings"][0].startswith("Nobody was paged: No default rotation is set")
        assert "Alert firing with nobody to page" in texts(standin.messages("C0INCIDENTS"))
        reply = alertmanager(served, am_alert(rotation=None), group_key="critical-group")
        assert reply.json()["action"] == "declared" and reply.json()["paged"] == []  # the channel still opens
        assert served.channel_of(1)
    finally:
        stop()


def test_the_severity_mapping_is_configurable(bot):
    bot.rt.alert_policy = AlertPolicy({"critical": 1, "error": 2})
    reply = alertmanager(bot, am_alert(severity="ERROR"))
    assert reply.json()["action"] == "declared" and rows(bot, Incident)[0].severity == 2
    reply = alertmanager(bot, am_alert("Other", severity="sev3"), group_key="g2")
    assert reply.json()["action"] == "declared" and rows(bot, Incident)[1].severity == 3


def test_the_worst_alert_of_a_group_speaks_for_it(bot):
    reply = alertmanager(bot, am_alert("Slow", severity="warning"), am_alert("Down", severity="critical"))
    assert reply.json()["action"] == "declared"
    assert rows(bot, Incident)[0].title == "Down on checkout-1"


def test_alert_text_is_data(bot, standin):
    alertmanager(bot, am_alert(summary="<!channel> {{ 7*7 }} <@U0ALICE>"))
    incident = rows(bot, Incident)[0]
    assert incident.title == "&lt;!channel&gt; {{ 7*7 }} &lt;@U0ALICE&gt;"
    assert "<!channel>" not in texts(standin.messages("C0INCIDENTS"))


# --- the bearer token --------------------------------------------------------------------------


@pytest.fixture
def secured(settings_env, standin):
    served, stop = start_bot(settings_env, standin, ManualClock(START))
    yield served
    stop()


@pytest.mark.parametrize("path", ["/alerts/alertmanager", "/alerts/webhook"])
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x", "Bearer "])
def test_a_token_is_required_when_set(secured, path, header):
    body = am_payload() if path.endswith("alertmanager") else {"title": "Queue backed up"}
    before = written(secured)
    reply = post(secured, path, body, {"Authorization": header} if header else {})
    assert reply.status == 401 and reply.json()["ok"] is False
    assert written(secured) == before


@pytest.mark.parametrize("path", ["/alerts/alertmanager", "/alerts/webhook"])
def test_the_right_token_is_let_in(secured, path):
    body = am_payload() if path.endswith("alertmanager") else {"title": "Queue backed up"}
    reply = post(secured, path, body, {"Authorization": f"bearer {TOKEN}"})
    assert reply.status == 200 and reply.json()["ok"] is True


# --- malformed payloads -------------------------------------------------------------------------


def _with(change):
    payload = am_payload()
    change(payload)
    return json.dumps(payload)


MALFORMED = [
    ("", "the body is empty"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "the payload must be a JSON object, got a list"),
    ('{"version": NaN}', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "JSON"),
    (_with(lambda p: p.update(version="3")), 'version must be "4"'),
    (_with(lambda p: p.update(version=4)), 'version must be "4"'),
    (_with(lambda p: p.pop("groupKey")), "groupKey is required"),
    (_with(lambda p: p.update(groupKey=" ")), "groupKey must not be empty"),
    (_with(lambda p: p.update(status="pending")), 'status must be "firing" or "resolved"'),
    (_with(lambda p: p.update(alerts={})), "alerts must be a list"),
    (_with(lambda p: p.update(alerts=[])), "at least one alert"),
    (_with(lambda p: p.update(alerts=["x"])), "alerts[0] must be a JSON object"),
    (_with(lambda p: p["alerts"][0].pop("labels")), "alerts[0].labels is required"),
    (_with(lambda p: p["alerts"][0]["labels"].update(severity=1)), "alerts[0].labels.severity must be a string"),
    (_with(lambda p: p["alerts"][0].update(annotations=[])), "alerts[0].annotations must be an object"),
    (_with(lambda p: p["alerts"][0].update(status=None)), "alerts[0].status is required"),
    (_with(lambda p: p["alerts"][0].update(startsAt=5)), "alerts[0].startsAt must be a string"),
    (_with(lambda p: p.update(commonLabels="x")), "commonLabels must be an object"),
    (_with(lambda p: p.update(truncatedAlerts=-1)), "truncatedAlerts must be a whole number"),
    (_with(lambda p: p.update(truncatedAlerts=True)), "truncatedAlerts must be a whole number"),
]


def test_a_payload_over_1_mib_gets_413_and_writes_nothing(bot):
    before = written(bot)
    reply = post(bot, "/alerts/alertmanager", _with(lambda p: p.update(padding="x" * (1024 * 1024))))
    assert reply.status == 413 and "larger than 1048576 bytes" in reply.json()["error"]
    assert written(bot) == before


@pytest.mark.parametrize(("body", "reason"), MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_alertmanager_payload_gets_400_with_a_reason_and_writes_nothing(bot, body, reason):
    before = written(bot)
    reply = post(bot, "/alerts/alertmanager", body)
    assert reply.status == 400, reply.body
    assert reply.json()["ok"] is False and reason in reply.json()["error"]
    assert written(bot) == before


def test_nul_characters_and_unpaired_surrogates_are_cleaned_not_fatal(bot):
    reply = post(bot, "/alerts/webhook", '{"title": "caf\\udce9 \\u0000 down"}')  # lone surrogate, NUL
    assert reply.status == 200 and rows(bot, Page)[0].reason == "caf? down"


# --- the generic webhook ----------------------------------------------------------------------


def webhook(bot, **body):
    return post(bot, "/alerts/webhook", body)


def test_the_generic_webhook_declares_an_incident_for_an_incident_severity(bot, standin):
    reply = webhook(bot, title="Payments API down", severity="sev2", description="5xx everywhere",
                    url="https://grafana.example/d/abc?x=1&y=2", source="Grafana")
    assert reply.json() == {"ok": True, "action": "declared", "incident": 1, "paged": ["U0FRANK"], "warnings": []}
    incident = rows(bot, Incident)[0]
    assert incident.severity == 2 and incident.title == "Payments API down" and incident.declarer == "grafana"
    assert "<https://grafana.example/d/abc?x=1&amp;y=2|source>" in incident.description
    assert "grafana paged you for incident #1" in texts(standin.dms("U0FRANK"))


def test_the_generic_webhook_pages_for_other_severities(bot, standin):
    reply = webhook(bot, title="Queue backed up", severity="warning", rotation="payments-secondary")
    assert reply.json()["action"] == "paged" and rows(bot, Incident) == []
    assert rows(bot, Page)[0].rotation == "payments-secondary"
    assert webhook(bot, title="No severity at all").json()["action"] == "paged"


def test_the_generic_webhook_groups_by_dedup_key_and_acts_once_per_repeat(bot):
    assert webhook(bot, title="Checkout slow", severity="critical", dedup_key="checkout").json()["action"] == "declared"
    assert webhook(bot, title="Checkout slow", severity="critical", dedup_key="checkout").json()["action"] == "duplicate"
    reply = webhook(bot, title="Checkout very slow", severity="critical", dedup_key="checkout")
    assert reply.json()["action"] == "attached" and reply.json()["incident"] == 1
    assert len(rows(bot, Incident)) == 1 and len(rows(bot, Page)) == 1
    assert alert_entries(bot)[-1] == "Alert firing: Checkout very slow"


def test_the_generic_webhook_without_a_dedup_key_groups_by_title(bot):
    webhook(bot, title="Disk full", severity="warning")
    assert webhook(bot, title="disk  FULL", severity="warning").json()["action"] == "attached"
    assert webhook(bot, title="Disk full", severity="warning", rotation="payments-secondary").json()["action"] == "paged"


def test_the_generic_webhook_resolves_once_and_a_later_firing_starts_over(bot):
    webhook(bot, title="Checkout slow", severity="critical", dedup_key="checkout")
    bot.clock.advance(timedelta(minutes=5))
    assert webhook(bot, title="Checkout slow", dedup_key="checkout", status="resolved").json()["action"] == "noted"
    assert webhook(bot, title="Checkout slow", dedup_key="checkout", status="resolved").json()["action"] == "duplicate"
    assert alert_entries(bot)[-1] == "alert resolved: Checkout slow"
    bot.command("U0FRANK", "/incident", "resolve fixed", channel=bot.channel_of(1))
    bot.clock.advance(timedelta(minutes=5))
    reply = webhook(bot, title="Checkout slow", severity="critical", dedup_key="checkout")
    assert reply.json()["action"] == "declared" and reply.json()["incident"] == 2


@pytest.mark.parametrize(("body", "reason"), [
    ({}, "title is required"),
    ({"title": "  "}, "title must not be empty"),
    ({"title": "\u0000"}, "title must not be blank"),
    ({"title": 5}, "title must be a string"),
    ({"title": "x", "severty": "sev1"}, "unknown field(s): severty"),
    ({"title": "x", "status": "ok"}, 'status must be "firing" or "resolved"'),
    ({"title": "x", "url": "javascript:alert(1)"}, "url must be an http"),
    ({"title": "x", "dedup_key": ""}, "dedup_key must not be blank"),
    ({"title": "x", "rotation": ["payments"]}, "rotation must be a string"),
])
def test_a_malformed_generic_payload_gets_400_with_a_reason(bot, body, reason):
    before = written(bot)
    reply = webhook(bot, **body)
    assert reply.status == 400 and reason in reply.json()["error"]
    assert written(bot) == before


# --- pure parts -------------------------------------------------------------------------------


def test_parsing_keeps_what_the_service_needs():
    notification = parse_alertmanager(json.dumps(am_payload(am_alert(), am_alert(status="resolved", instance="b"))).encode())
    assert notification.dedup_key == GROUP and notification.status == "firing"
    assert [a.labels["instance"] for a in notification.firing] == ["checkout-1"]
    assert notification.resolved[0].identity == "fp-HighErrorRate-b@2026-03-10T14:58:00Z"
    generic = parse_webhook(b'{"title": "Disk  full", "source": "U0ALICE <@x>"}')
    assert generic.source == "u0alice-x" and generic.dedup_key == "/disk full"
    with pytest.raises(PayloadError):
        parse_webhook(b"null")


def test_past_100_alerts_firing_ones_are_kept_first_and_the_rest_counted():
    resolved = [am_alert(status="resolved", instance=f"r{i}") for i in range(30)]
    firing = [am_alert(instance=f"f{i}") for i in range(150)]
    payload = am_payload(*resolved, *firing)
    payload["truncatedAlerts"] = 7
    notification = parse_alertmanager(json.dumps(payload).encode())
    assert len(notification.alerts) == 100 and notification.truncated == 80 + 7
    assert [a.labels["instance"] for a in notification.alerts] == [f"f{i}" for i in range(100)]


def test_severity_maps_parse_and_refuse_nonsense():
    assert parse_severity_map("critical=1, Error=2") == {"critical": 1, "error": 2}
    with pytest.raises(ValueError):
        parse_severity_map("critical=5")
    policy = AlertPolicy()
    assert policy.incident_severity("Critical") == 1 and policy.incident_severity("SEV-2") == 2
    assert policy.incident_severity("warning") is None


# --- fuzz -------------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=()), max_size=30)  # surrogates and NUL included
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
_labels = st.dictionaries(st.sampled_from(["alertname", "severity", "rotation", "instance"]) | _text,
                          _text | st.sampled_from(["critical", "warning", "payments", "sev2"]), max_size=4)
_shaped_alert = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved"]), "labels": _labels},
    optional={"annotations": st.dictionaries(st.sampled_from(["summary", "description"]) | _text, _text),
              "startsAt": _text, "generatorURL": _text | st.just("http://x.example/?a=1&b=<2>"),
              "fingerprint": _text, "extra": _json},
)
_shaped = st.fixed_dictionaries(
    {"version": st.just("4") | _json, "groupKey": _text, "status": st.sampled_from(["firing", "resolved"]),
     "alerts": st.lists(_shaped_alert, max_size=3)},
    optional={"truncatedAlerts": st.integers(), "commonLabels": _labels, "externalURL": _text, "more": _json},
)
_generic = st.fixed_dictionaries(
    {"title": _text},
    optional={"severity": _text | st.sampled_from(["sev1", "critical"]), "rotation": _text, "dedup_key": _text,
              "status": st.sampled_from(["firing", "resolved"]) | _text, "description": _text,
              "url": _text | st.just("https://x.example/a?b=1&c=2"), "source": _text},
)
_bodies = st.binary(max_size=300) | st.one_of(_json, _shaped, _generic).map(lambda v: json.dumps(v).encode())


def post_bytes(bot, path, data: bytes) -> tuple[int, bytes]:
    """A POST of raw bytes (Bot.post sends text)."""
    request = urllib.request.Request(bot.url + path, data=data, headers=JSON, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/alerts/alertmanager", "/alerts/webhook"]), body=_bodies)
def test_random_bodies_never_get_a_server_error(bot, path, body):
    status, answer = post_bytes(bot, path, body)
    event(f"{path} answered {status}")
    assert status in (200, 400), (status, answer)
    assert json.loads(answer)["ok"] is (status == 200)


def test_alert_severities_come_from_the_environment():
    from bot.config import ConfigError, load_settings

    assert load_settings({"ALERT_SEVERITIES": "critical=1, Error=2"}).alert_severities == {"critical": 1, "error": 2}
    with pytest.raises(ConfigError, match="ALERT_SEVERITIES"):
        load_settings({"ALERT_SEVERITIES": "critical=9"})
