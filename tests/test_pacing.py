"""The bot keeps to Slack's rate limits (the stand-in's tiers): its outbox waits for a free slot
instead of earning 429s, shares every Retry-After with its other processes, runs pages and
first channel setups first, sends every page DM before a later incident's topic and pin, and
sends several pending edits of one message as one."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.models import Incident, OutboxTask
from bot.slack.pacing import Paced, Pacer

ALICE = "U0ALICE"
FRANK = "U0FRANK"  # on call for payments at the tests' start: every sev2 declared pages him


@pytest.fixture
def paced(bot, standin):
    """The bot, with Slack's windows on the test's clock, as the bot's budgets are: a minute
    passes when the test says so."""
    standin.rate_limits.now = lambda: bot.clock.now().timestamp()
    return bot


def with_channel(bot) -> list[int]:
    with bot.rt.storage.read() as session:
        return sorted(i.id for i in session.exec(select(Incident).where(Incident.channel_id.is_not(None))).all())


def refused(standin) -> list[str]:
    return [c.method for c in standin.calls if c.status == 429]


def test_a_storm_waits_for_slack_s_window_instead_of_earning_429s(paced, standin):
    for n in range(22):  # conversations.create, setTopic and pins.add are Tier 2: 20 a minute
        assert "Declared incident" in paced.command(ALICE, "/incident", f"declare Storm part {n}").text
    assert with_channel(paced) == list(range(1, 21))
    assert refused(standin) == []
    with paced.rt.storage.read() as session:
        waiting = session.exec(select(OutboxTask).where(OutboxTask.status == "pending")).all()
    # the channels wait for a slot, and the page notes for the channels, none counting an attempt
    assert {t.kind for t in waiting} == {"incident.open", "incident.post"} and all(t.attempts == 0 for t in waiting)
    paced.advance(timedelta(seconds=62))
    paced.settle()
    assert with_channel(paced) == list(range(1, 23))
    assert refused(standin) == []
    for number in (21, 22):
        channel = paced.channel_of(number)
        assert standin.topic(channel) and standin.pins(channel)
        assert any("Paged" in m["text"] for m in standin.messages(channel))


def test_a_retry_after_slack_gives_holds_back_every_process(paced, standin):
    standin.fail_next("conversations.setTopic", 429, retry_after=30)
    paced.command(ALICE, "/incident", "declare Disk full on db-1")
    paced.command(ALICE, "/incident", "declare Queue backed up")
    assert refused(standin) == ["conversations.setTopic"]
    assert len(standin.calls_to("conversations.create")) == 2  # channels go on; the topics wait
    assert len(standin.calls_to("conversations.setTopic")) == 1
    other_process = Pacer(paced.rt.storage, now=paced.rt.pacer.now)
    with pytest.raises(Paced) as waiting:
        other_process.check([("conversations.setTopic", {})])
    assert 29 <= waiting.value.wait <= 30
    paced.advance(timedelta(seconds=31))
    paced.settle()
    assert with_channel(paced) == [1, 2]
    assert all(standin.topic(paced.channel_of(n)) for n in (1, 2))
    assert refused(standin) == ["conversations.setTopic"]


def test_pages_and_first_setups_go_before_edits_of_earlier_incidents(paced, standin):
    paced.command(ALICE, "/incident", "declare Disk full on db-1")
    channel = paced.channel_of(1)
    for role in ("comms", "scribe", "ops"):  # three summary edits, queued while nothing runs
        paced.command(ALICE, "/incident", f"role <@U0BOB> {role}", channel=channel, settle=False)
    paced.command(ALICE, "/incident", "declare payments API returns 503", settle=False)
    standin.reset_calls()
    paced.settle()
    methods = [c.method for c in standin.calls]
    assert methods.index("conversations.create") < methods.index("conversations.setTopic")
    assert methods.index("conversations.create") < methods.index("chat.update")
    page_dm = next(i for i, c in enumerate(standin.calls)
                   if c.method == "chat.postMessage" and str(c.args.get("channel", "")).startswith("U")
                   and ((c.args.get("metadata") or {}).get("event_payload") or {}).get("incident_id") == 2)
    assert page_dm < methods.index("chat.update")
    # the three edits of incident 1's summary went as one
    edits = [c for c in standin.calls if c.method == "chat.update" and c.args.get("channel") == channel]
    assert len(edits) == 1
    assert len([c for c in standin.calls_to("conversations.setTopic") if c.args.get("channel") == channel]) == 1
    assert "ops" in json.dumps(edits[0].args)  # the one edit shows the last change


def incident_of(call) -> int | None:
    return ((call.args.get("metadata") or {}).get("event_payload") or {}).get("incident_id")


def test_every_page_dm_goes_before_a_later_incident_s_topic_and_pin(paced, standin):
    standin.fail_next("chat.postMessage", 429, retry_after=30, channel=FRANK)  # his DMs wait 30 s
    numbers = range(1, 5)
    for n in numbers:
        assert f"Declared incident #{n}" in paced.command(ALICE, "/incident", f"declare sev2 Storm part {n}").text
        paced.advance(timedelta(seconds=2))
    channels = {paced.channel_of(n): n for n in numbers}
    assert standin.dms(FRANK) == [] and all(standin.topic(paced.channel_of(n)) == "" for n in (2, 3, 4))
    paced.advance(timedelta(seconds=30))

    def broadcast(n: int) -> bool:
        return any(incident_of(c) == n for c in standin.calls_to("chat.postMessage")
                   if c.ok and c.args.get("channel") == "C0INCIDENTS")

    for channel, n in channels.items():  # each channel ends fully set up
        assert standin.topic(channel) and len(standin.pins(channel)) == 1 and broadcast(n)
    calls = standin.calls
    page_dms = {incident_of(c): i for i, c in enumerate(calls)
                if c.method == "chat.postMessage" and c.ok and c.args.get("channel") == FRANK}
    assert sorted(page_dms) == list(numbers)
    setups = [(i, channels[c.args["channel"]]) for i, c in enumerate(calls)
              if c.method in ("conversations.setTopic", "pins.add") and c.args.get("channel") in channels]
    assert [(n, later) for n, dm in page_dms.items() for i, later in setups if later > n and i < dm] == []
    assert refused(standin) == ["chat.postMessage"]
    assert standin.calls_to("conversations.history") == []  # a refused DM was not sent: nothing to look for


def test_posts_waiting_for_their_channel_count_no_attempts(paced, standin):
    standin.fail_next("conversations.create", 429, retry_after=300)  # the channel waits 5 minutes
    paced.command(ALICE, "/incident", "declare sev2 Payments down")
    for _ in range(10):  # more than max_attempts retries' worth of waiting
        paced.advance(timedelta(seconds=25))
    with paced.rt.storage.read() as session:
        posts = session.exec(select(OutboxTask).where(OutboxTask.kind == "incident.post")).all()
    assert posts and all(t.status == "pending" and t.attempts == 0 for t in posts)
    assert "has no channel yet" in (posts[0].last_error or "")
    paced.advance(timedelta(seconds=60))
    channel = paced.channel_of(1)
    assert any("Paged" in m["text"] for m in standin.messages(channel))  # the page's note, once there


def test_pacing_off_lets_every_call_go(bot, standin):
    standin.set_limits(False)
    bot.rt.pacer.enabled = False
    for n in range(22):
        bot.command(ALICE, "/incident", f"declare Storm part {n}")
    assert with_channel(bot) == list(range(1, 23))
