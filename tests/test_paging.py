"""Paging and escalation end to end: pages, acknowledgements, timeouts, buttons, restarts."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.clock import ManualClock
from bot.models import Incident, Page, TimelineEntry
from tests.conftest import START, start_bot


def pages(bot):
    with bot.rt.storage.read() as session:
        return session.exec(select(Page).order_by(Page.id)).all()


def dm_page_id(standin, user_id):
    """The page id on the newest DM with buttons to that person."""
    for message in reversed(standin.dms(user_id)):
        for block in message.get("blocks") or []:
            if block.get("type") == "actions":
                return block["elements"][0]["value"]
    raise AssertionError(f"no page DM with buttons for {user_id}")


def declare(bot, user="U0ALICE", text="declare sev1 Checkout down"):
    bot.command(user, "/incident", text)
    return bot.channel_of(1)


def test_declaring_pages_the_on_call_person_with_buttons(bot, standin):
    declare(bot)
    [page] = pages(bot)
    assert page.user == "U0FRANK" and page.rotation == "payments" and page.level == 0
    dm = standin.dms("U0FRANK")[-1]
    assert "paged you for incident #1" in dm["text"]
    labels = [e["text"]["text"] for b in dm["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["Acknowledge", "Escalate"]


def test_paging_a_person_invites_them_and_records_it(bot, standin):
    channel = declare(bot)
    reply = bot.command("U0ALICE", "/incident", "page <@U0BOB|bob>", channel=channel)
    assert "Paged <@U0BOB>" in reply.text
    assert "U0BOB" in standin.members(channel)
    assert any("paged you for incident #1" in m["text"] for m in standin.dms("U0BOB"))
    with bot.rt.storage.read() as session:
        kinds = [e.kind for e in session.exec(select(TimelineEntry)).all()]
    assert kinds.count("page") == 2


def test_paging_a_rotation_pages_whoever_is_on_call_there(bot, standin):
    channel = declare(bot)
    bot.command("U0ALICE", "/incident", "page payments-secondary", channel=channel)
    assert pages(bot)[-1].user in ("U0GRACE", "U0HEIDI")
    assert pages(bot)[-1].rotation == "payments-secondary"


def test_paging_an_unknown_rotation_is_refused(bot):
    channel = declare(bot)
    reply = bot.command("U0ALICE", "/incident", "page nosuch", channel=channel)
    assert "There is no rotation `nosuch`" in reply.text
    assert len(pages(bot)) == 1


def test_acknowledging_records_who_and_when_and_stops_the_timer(bot, standin):
    channel = declare(bot)
    page_id = dm_page_id(standin, "U0FRANK")
    bot.clock.advance(timedelta(minutes=3))
    bot.press("U0FRANK", "page_ack", page_id, channel=standin.dms("U0FRANK")[-1].get("channel", "D1"))
    [page] = pages(bot)
    assert page.acknowledged_by == "U0FRANK" and page.acknowledged_at == START + timedelta(minutes=3)
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1).acknowledged_at == START + timedelta(minutes=3)
    assert any("acknowledged the page" in m["text"] for m in standin.messages(channel))
    bot.advance(timedelta(minutes=30))
    assert len(pages(bot)) == 1  # nothing escalated
    dm = standin.dms("U0FRANK")[0]
    assert not [b for b in dm["blocks"] if b["type"] == "actions"]  # the buttons are retired


def test_an_unacknowledged_page_escalates_after_the_rotation_minutes(bot, standin):
    channel = declare(bot)
    bot.advance(timedelta(minutes=9))
    assert len(pages(bot)) == 1
    bot.advance(timedelta(minutes=2))
    first, second = pages(bot)
    assert first.escalated_at == START + timedelta(minutes=10) and first.escalated_by == "escalation-timer"
    assert second.rotation == "payments-secondary" and second.level == 1
    assert any("Escalating (no acknowledgement in time)" in m["text"] for m in standin.messages(channel))
    assert any("paged you for incident #1" in m["text"] for m in standin.dms(second.user))


def test_the_escalate_button_pages_the_next_rotation_and_a_double_press_acts_once(bot, standin):
    declare(bot)
    page_id = dm_page_id(standin, "U0FRANK")
    bot.press("U0FRANK", "page_escalate", page_id)
    bot.press("U0FRANK", "page_escalate", page_id)
    assert len(pages(bot)) == 2
    assert pages(bot)[0].escalated_by == "U0FRANK"
    bot.advance(timedelta(minutes=15))  # the first page's timer was cancelled; secondary has no timer
    assert len(pages(bot)) == 2


def test_the_end_of_the_chain_is_announced(bot, standin):
    channel = declare(bot)
    bot.press("U0FRANK", "page_escalate", dm_page_id(standin, "U0FRANK"))
    second = pages(bot)[1]
    bot.press(second.user, "page_escalate", str(second.id))
    assert len(pages(bot)) == 2
    assert any("escalation chain has no further step" in m["text"] for m in standin.messages(channel))


def test_double_acknowledge_acts_once_and_says_so(bot, standin):
    declare(bot)
    page_id = dm_page_id(standin, "U0FRANK")
    bot.press("U0FRANK", "page_ack", page_id)
    bot.press("U0FRANK", "page_ack", page_id)
    with bot.rt.storage.read() as session:
        assert len([e for e in session.exec(select(TimelineEntry)).all() if e.kind == "acknowledge"]) == 1
    assert any("Already acknowledged" in m.get("text", "") for m in standin.ephemerals("U0FRANK"))


def test_someone_else_cannot_acknowledge_your_page(bot, standin):
    declare(bot)
    bot.press("U0MALLORY", "page_ack", dm_page_id(standin, "U0FRANK"))
    assert pages(bot)[0].acknowledged_at is None


def test_resolving_cancels_pending_escalations(bot, standin):
    channel = declare(bot)
    bot.command("U0ALICE", "/incident", "resolve false alarm", channel=channel)
    bot.advance(timedelta(minutes=30))
    assert len(pages(bot)) == 1 and pages(bot)[0].escalated_at is None


def test_a_pending_escalation_survives_a_restart_and_fires_once(settings_env, standin):
    clock = ManualClock(START)
    first, stop_first = start_bot(settings_env, standin, clock)
    first.command("U0ALICE", "/incident", "declare sev1 Checkout down")
    stop_first()  # the bot goes down with the escalation timer pending
    clock.advance(timedelta(minutes=20))
    second, stop_second = start_bot(settings_env, standin, clock)
    try:
        second.advance(timedelta(seconds=1))
        second.advance(timedelta(minutes=1))
        assert len(pages(second)) == 2
        assert pages(second)[1].rotation == "payments-secondary"
    finally:
        stop_second()


def test_only_the_paged_person_acknowledges_or_escalates_a_page(bot, standin):
    declare(bot)
    page_id = dm_page_id(standin, "U0FRANK")
    bot.press("U0MALLORY", "page_escalate", page_id)
    bot.press("U0MALLORY", "page_ack", page_id)
    refusals = [e["text"] for e in standin.ephemerals("U0MALLORY")]
    assert len(refusals) == 2 and "may escalate this page" in refusals[0]
    assert len(pages(bot)) == 1 and pages(bot)[0].acknowledged_at is None and pages(bot)[0].escalated_at is None


def test_a_forged_button_value_is_refused_politely(bot, standin):
    declare(bot)
    for action in ("page_ack", "page_escalate", "incident_ack", "incident_resolve"):
        assert bot.press("U0FRANK", action, "99999999999999999999").status == 200
        assert bot.press("U0FRANK", action, "not-a-number").status == 200
    assert all("not one of mine" in m["text"] for m in standin.ephemerals("U0FRANK"))
    assert len(standin.ephemerals("U0FRANK")) == 8
    assert len(pages(bot)) == 1 and pages(bot)[0].acknowledged_at is None
