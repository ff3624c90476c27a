"""A Slack outage drill: the stand-in answers 503 (and lets some calls time out) for a long
stretch of the bot's clock in the middle of an incident. The bot keeps answering what reaches
it, keeps every side effect it owes, pages people outside Slack, shows the backlog on /healthz
and /metrics, and delivers everything in order once Slack is back."""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta

import pytest
from slack_sdk import WebClient
from sqlmodel import select

from bot.clock import ManualClock
from bot.models import OutboxTask
from bot.outbox import Outbox, enqueue
from bot.slack.effects import SLACK, slack_unavailable
from bot.storage import Storage
from bot.testing.receivers import text_of
from tests.conftest import ALERT_AUTH, BOT_TOKEN, ROTATIONS, START, start_bot
from tests.test_alerts import am_payload
from tests.test_metrics import scrape, value

CLIENT_TIMEOUT = 1  # seconds; a held call outlasts it
HANGING = ("conversations.create", "chat.postMessage")
ALERT_JSON = {"Content-Type": "application/json", **ALERT_AUTH}


@pytest.fixture
def bot(settings_env, standin, tmp_path, smtp, receiver):
    """The bot with production backoff (1 s doubling), one client try, a 1 s client timeout,
    and a people file: frank is mailed at once when paged, grace gets a push at once."""
    folder = tmp_path / "rotations"
    shutil.copytree(ROTATIONS, folder)
    (folder / "people.toml").write_text(f"""
[[people]]
user = "U0FRANK"
contacts = {{ email = "mailto://127.0.0.1:{smtp.port}?from=oncall@example.com&to=frank@example.com" }}
notify = {{ email = 0 }}

[[people]]
user = "U0GRACE"
contacts = {{ push = "json://127.0.0.1:{receiver.port}/grace" }}
notify = {{ push = 0 }}
""")
    env = {**settings_env, "ROTATIONS_DIR": str(folder), "PUBLIC_URL": "https://oncall.example.com"}
    served, stop = start_bot(env, standin, ManualClock(START), retries=0, client_timeout=CLIENT_TIMEOUT,
                             outbox_base_delay=1.0)
    yield served
    stop()


def tasks(bot) -> list[OutboxTask]:
    with bot.rt.storage.read() as session:
        return list(session.exec(select(OutboxTask).order_by(OutboxTask.id)).all())


def answered_in_time(send) -> object:
    """What reaches the bot during the outage is answered within Slack's 3 s."""
    started = time.perf_counter()
    response = send()
    assert time.perf_counter() - started < 3.0
    assert response.status == 200, response.body
    return response


def health(bot) -> dict:
    bot.web_app.config["health"].refresh()
    response = bot.get("/healthz")
    assert response.status == 200  # Slack being down is not the bot being down
    return response.json()


def test_a_ten_minute_slack_outage_loses_nothing_and_delivers_in_order(bot, standin, smtp, receiver):
    bot.command("U0ALICE", "/incident", "declare sev1 Checkout down")
    channel = bot.channel_of(1)
    assert len(smtp.to("frank@example.com")) == 1  # paged before the outage, mail and DM
    made_before = len(standin.messages(channel))

    standin.start_outage(status=503, hang=HANGING, hang_seconds=CLIENT_TIMEOUT + 1.5)
    update = answered_in_time(lambda: bot.command("U0ALICE", "/incident", "update Rolling back the deploy",
                                                   channel=channel, settle=False))
    assert "error" not in update.text.lower()
    bot.settle()
    answered_in_time(lambda: bot.command("U0ALICE", "/incident", "page <@U0GRACE|grace>", channel=channel,
                                         settle=False))
    bot.settle()
    assert receiver.wait_for(1)  # grace is reached outside Slack while Slack is down
    assert "Checkout down" in receiver.at("/grace")[0].text
    answered_in_time(lambda: bot.command("U0ALICE", "/incident", "note Error rate falling", channel=channel,
                                         settle=False))
    bot.settle()
    second = answered_in_time(lambda: bot.command("U0BOB", "/incident", "declare sev2 Search slow", settle=False))
    assert "#2" in second.text
    bot.settle()
    assert len(smtp.to("frank@example.com")) == 2  # incident 2's page, by mail (frank is on call)

    for minute in range(1, 11):
        bot.advance(timedelta(minutes=1))
        assert not [t for t in tasks(bot) if t.status == "failed"], f"a task was given up at minute {minute}"
    pending = [t for t in tasks(bot) if t.status == "pending"]
    assert len(pending) >= 5 and all(t.attempts < 3 for t in pending)  # probes are not counted
    assert bot.rt.outbox.held() and SLACK in bot.rt.outbox.held()
    shown = health(bot)
    assert shown["backlog"] == len(pending) and shown["backlog_oldest_seconds"] >= 600
    samples = scrape(bot)
    assert value(samples, "oncall_outbox_tasks", status="pending") == len(pending)
    assert value(samples, "oncall_outbox_tasks", status="failed") == 0
    assert value(samples, "oncall_outbox_oldest_pending_seconds") >= 600
    assert len(standin.messages(channel)) == made_before  # nothing got through
    assert any(c.status == 503 for c in standin.calls)

    standin.end_outage()
    standin.reset_calls()
    bot.advance(timedelta(minutes=1))  # the next probe is at most a minute away
    assert [t.id for t in tasks(bot) if t.status != "done"] == []
    assert health(bot)["backlog"] == 0 and not bot.rt.outbox.held()

    texts = [m.get("text", "") for m in standin.messages(channel)][made_before:]
    order = ["Rolling back the deploy", "Paged <@U0GRACE>", "Error rate falling", "Escalating"]
    found = [next(i for i, text in enumerate(texts) if word in text) for word in order]
    assert found == sorted(found), texts
    created = [i for i, c in enumerate(standin.calls) if c.method == "conversations.create" and c.ok]
    second_channel = bot.channel_of(2)
    posted = [i for i, c in enumerate(standin.calls)
              if c.method == "chat.postMessage" and c.ok and c.response.get("channel") == second_channel]
    assert len(created) == 1 and posted and created[0] < min(posted)  # channel set up, then its posts
    assert standin.pins(second_channel)
    assert any("paged you for incident #2" in m["text"] for m in standin.dms("U0FRANK"))
    assert any("paged you for incident #1" in m["text"] for m in standin.dms("U0GRACE"))


def test_a_button_pressed_during_the_outage_is_answered_and_its_effects_follow(bot, standin, smtp):
    bot.command("U0ALICE", "/incident", "declare sev1 Checkout down")
    channel = bot.channel_of(1)
    [dm] = [m for m in standin.dms("U0FRANK") if "paged you" in m["text"]]
    page_id = next(e["value"] for b in dm["blocks"] if b["type"] == "actions" for e in b["elements"]
                   if e["action_id"] == "page_ack")
    standin.start_outage(status=503, hang=HANGING, hang_seconds=CLIENT_TIMEOUT + 1.5)
    answered_in_time(lambda: bot.press("U0FRANK", "page_ack", page_id, channel=dm.get("channel", "D1"), settle=False))
    bot.settle()
    bot.advance(timedelta(minutes=30))  # longer than the escalation: acknowledged, nobody else woken
    assert not [t for t in tasks(bot) if t.status == "failed"]
    assert any(t.status == "pending" and t.kind == "page.refresh" for t in tasks(bot))
    standin.end_outage()
    bot.advance(timedelta(minutes=1))
    assert [t.id for t in tasks(bot) if t.status != "done"] == []
    assert any("acknowledged the page" in m["text"] for m in standin.messages(channel))


def test_the_outbox_keeps_a_slack_task_through_a_thirty_minute_outage(standin, database_url):
    """The arithmetic: max_attempts=10 doubling from 1 s used to give up after about 8.5
    minutes; an outage is not counted against the attempts, and probes come once a minute."""
    storage = Storage(database_url)
    storage.migrate()
    clock = ManualClock(START)
    client = WebClient(token=BOT_TOKEN, base_url=standin.api_url, timeout=CLIENT_TIMEOUT)
    outbox = Outbox(storage, clock, base_delay=1.0, max_attempts=10)
    outbox.unavailable = slack_unavailable
    outbox.register("slack.post", lambda p: client.chat_postMessage(channel=p["channel"], text=p["text"]),
                    service=SLACK)
    with storage.transaction() as connection:
        for n in range(3):
            enqueue(connection, "slack.post", {"channel": "U0ALICE", "text": f"step {n}"}, now=clock.now())
    standin.start_outage(status=503)
    tries = 0
    for _ in range(30 * 6):
        clock.advance(timedelta(seconds=10))
        tries += outbox.run_due()
    assert 25 <= tries <= 40  # about one probe a minute, not the backlog each time
    with storage.read() as session:
        rows = session.exec(select(OutboxTask).order_by(OutboxTask.id)).all()
    assert [r.status for r in rows] == ["pending"] * 3 and all(r.attempts == 0 for r in rows)
    standin.end_outage()
    clock.advance(timedelta(seconds=60))
    outbox.drain()
    assert [m["text"] for m in standin.dms("U0ALICE")][-3:] == ["step 0", "step 1", "step 2"]
    storage.dispose()


def test_an_alert_during_the_outage_is_taken_and_pages_outside_slack(bot, standin, smtp):
    standin.start_outage(status=503, hang=HANGING, hang_seconds=CLIENT_TIMEOUT + 1.5)
    reply = answered_in_time(lambda: bot.post("/alerts/alertmanager", json.dumps(am_payload()), ALERT_JSON))
    assert reply.json()["action"] == "declared" and reply.json()["paged"] == ["U0FRANK"]
    bot.settle()
    [mail] = smtp.to("frank@example.com")
    assert "HighErrorRate on checkout-1" in text_of(mail)
    bot.advance(timedelta(minutes=5))
    assert not [t for t in tasks(bot) if t.status == "failed"]
    standin.end_outage()
    bot.advance(timedelta(minutes=1))
    assert [t.id for t in tasks(bot) if t.status != "done"] == []
    assert standin.pins(bot.channel_of(1))
    assert any("paged you for incident #1" in m["text"] for m in standin.dms("U0FRANK"))
