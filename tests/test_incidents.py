"""Incident lifecycle end to end: signed slash commands, events and buttons over HTTP."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.incidents.flows import NOT_SAVED
from bot.models import Incident, TimelineEntry
from bot.storage import DriverStatement
from tests.conftest import eventually


def declare(bot, text="declare sev2 Checkout down", user="U0ALICE"):
    response = bot.command(user, "/incident", text)
    assert response.status == 200
    return response


def entries(bot, number=1):
    with bot.rt.storage.read() as session:
        return session.exec(select(TimelineEntry).where(TimelineEntry.incident_id == number)).all()


def test_declaring_opens_a_channel_invites_pins_and_broadcasts(bot, standin):
    reply = declare(bot)
    assert "Declared incident #1 *Checkout down* (SEV2)" in reply.text
    channel = standin.channel_by_name("inc-1-checkout-down")
    assert channel is not None
    members = standin.members(channel["id"])
    # 15:00 UTC on 10 March 2026: Los Angeles (08:00 PDT) came online last, so frank is on call.
    assert "U0ALICE" in members and "U0FRANK" in members
    assert standin.topic(channel["id"]) == "SEV2 · investigating · Commander: @alice · Checkout down"
    pinned = standin.pins(channel["id"])
    assert len(pinned) == 1
    labels = [e["text"]["text"] for b in pinned[0]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["I'm responding", "Join", "Resolve"]
    broadcast = standin.messages("C0INCIDENTS")
    assert len(broadcast) == 1 and "Checkout down" in broadcast[0]["text"]
    assert f"<#{channel['id']}>" in broadcast[0]["text"]
    assert standin.calls_to("conversations.history") == []  # a brand-new channel holds no summary yet


def test_a_declaration_is_saved_before_the_reply_and_its_incident_follows_once(bot, standin):
    import json

    from bot.models import OutboxTask, Page

    reply = bot.command("U0ALICE", "/incident", "declare sev2 Checkout down", settle=False)
    assert "Declared incident #1" in reply.text and "<@U0FRANK> (invited and paged)" in reply.text
    with bot.rt.storage.read() as session:  # acknowledged: the number and the declaration are committed
        task = session.exec(select(OutboxTask).where(OutboxTask.kind == "incident.declare")).one()
        assert json.loads(task.payload)["number"] == 1 and json.loads(task.payload)["responder"] == "U0FRANK"
    bot.settle()
    assert standin.channel_by_name("inc-1-checkout-down")
    bot.rt.incidents.record_declaration(json.loads(task.payload))  # a replay after a crash
    bot.settle()
    with bot.rt.storage.read() as session:
        assert len(session.exec(select(Incident)).all()) == 1
        assert len(session.exec(select(Page)).all()) == 1
    assert [e.kind for e in entries(bot)] == ["declared", "page"]
    assert len(standin.channel_list()) == len({c["name"] for c in standin.channel_list()})


@contextmanager
def counter_held(bot):
    """Another connection's transaction holding what a declaration's number needs (SQLite's
    write lock; PostgreSQL's counter table) until the block ends."""
    with bot.rt.storage.engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("LOCK TABLE counter IN EXCLUSIVE MODE")
        yield connection


def counter_updates(monkeypatch) -> list[str]:
    """The statements that will take numbers from the counter from now on (sent to the driver
    straight, so SQLAlchemy's events do not see them)."""
    seen: list[str] = []
    run = DriverStatement.rows

    def noted(statement, connection, values):  # type: ignore[no-untyped-def]
        if "UPDATE counter" in statement.sql:
            seen.append(statement.sql)
        return run(statement, connection, values)

    monkeypatch.setattr(DriverStatement, "rows", noted)
    return seen


def test_declarations_arriving_together_share_one_commit_and_keep_their_own_numbers(bot, standin, monkeypatch):
    """While one declaration commits, the next ones queue and then commit together: one
    statement takes their numbers, and each reply, task and channel keeps its own."""
    declare(bot, "declare sev3 First")  # the counter has its row: one statement takes a number
    updates = counter_updates(monkeypatch)
    with ThreadPoolExecutor(12) as pool, counter_held(bot):
        replies = [pool.submit(bot.command, "U0ALICE", "/incident", f"declare sev3 Queue {i}", settle=False)
                   for i in range(12)]
        eventually(lambda: bot.rt.incidents.numbers.waiting == 11, message="eleven to queue")
    said = {}
    for i, reply in enumerate(replies):
        found = re.search(r"Declared incident #(\d+) \*Queue (\d+)\*", reply.result().text)
        assert found and int(found[2]) == i
        said[int(found[1])] = i
    assert sorted(said) == list(range(2, 14))
    assert len(updates) == 2  # the first declaration's, then the eleven that queued behind it
    bot.settle()
    with bot.rt.storage.read() as session:
        titles = {incident.id: incident.title for incident in session.exec(select(Incident)).all()}
    assert titles == {1: "First"} | {number: f"Queue {i}" for number, i in said.items()}
    for number, i in said.items():
        assert standin.channel_by_name(f"inc-{number}-queue-{i}") is not None


def test_a_shared_commit_that_fails_tells_each_declarer_and_leaves_no_gap(bot, standin):
    """Four declarations queue behind a fifth; their shared write fails (the outbox's table is
    renamed away meanwhile, a real error from the database on both paths). Each of the four
    is told nothing was declared, and no number is used up (the fifth's own statement may
    have got through before the rename)."""
    with ThreadPoolExecutor(5) as pool, counter_held(bot) as holder:
        replies = [pool.submit(bot.command, "U0ALICE", "/incident", f"declare sev3 Lost {i}", settle=False)
                   for i in range(5)]
        eventually(lambda: bot.rt.incidents.numbers.waiting == 4, message="four to queue")
        holder.exec_driver_sql("ALTER TABLE outboxtask RENAME TO outboxtask_away")  # committed as it ends
    texts = [reply.result().text for reply in replies]
    assert all(reply.result().status == 200 for reply in replies)
    refused = [t for t in texts if t == "Nothing was declared: the incident could not be saved just now. Please try again."]
    assert len(refused) >= 4
    declared = [t for t in texts if t.startswith("Declared incident #1 ")]
    assert len(refused) + len(declared) == 5
    with bot.rt.storage.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE outboxtask_away RENAME TO outboxtask")
    assert f"Declared incident #{len(declared) + 1} *Found*" in declare(bot, "declare sev3 Found").text
    with bot.rt.storage.read() as session:
        assert len(session.exec(select(Incident)).all()) == len(declared) + 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_declaration_after_the_database_dropped_its_connection(bot, standin, postgres, monkeypatch):
    """PostgreSQL connections dropped while they idled in the pool (a restart, a failover, a
    proxy's idle timeout) are pinged and made again before the next declaration; dropped just
    after a use, that declaration is told nothing was declared, uses up no number, and the
    next one is saved."""
    import psycopg

    from bot import storage_postgres as storage_module

    database = bot.rt.storage.engine.url.database

    def drop_them() -> None:
        with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres", autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        assert dropped and all(ok for (ok,) in dropped)

    declare(bot, "declare sev3 First")
    assert "Declared incident #2 " in declare(bot, "declare sev3 Second").text
    drop_them()
    monkeypatch.setattr(storage_module, "TRUST_IDLE_SECONDS", 0.0)  # as if they had idled past the limit
    assert "Declared incident #3 *Third*" in declare(bot, "declare sev3 Third").text
    bot.settle()
    drop_them()
    monkeypatch.setattr(storage_module, "TRUST_IDLE_SECONDS", 60.0)  # just used: trusted, and found broken
    assert declare(bot, "declare sev3 Lost").text == NOT_SAVED
    assert "Declared incident #4 *Fourth*" in declare(bot, "declare sev3 Fourth").text
    bot.settle()
    with bot.rt.storage.read() as session:
        titles = sorted(incident.title for incident in session.exec(select(Incident)).all())
    assert titles == ["First", "Fourth", "Second", "Third"]


def test_two_incidents_with_the_same_title_get_two_channels(bot, standin):
    declare(bot)
    bot.advance(timedelta(minutes=31))  # past the duplicate guard's 30 minutes
    declare(bot)
    assert standin.channel_by_name("inc-1-checkout-down")
    assert standin.channel_by_name("inc-2-checkout-down")


def test_a_taken_channel_name_gets_a_suffix(bot, standin):
    standin.add_channel("inc-1-checkout-down")
    declare(bot)
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1).channel_name == "inc-1-checkout-down-1"


def test_a_long_mixed_script_title_still_gets_a_valid_channel_and_topic(bot, standin):
    title = ("Paiement échoué для клиентов 支付失败 checkout ✨ " * 8)[:200]
    reply = declare(bot, f"declare sev1 {title}")
    assert "Declared incident #1" in reply.text
    with bot.rt.storage.read() as session:
        incident = session.get(Incident, 1)
    assert re.fullmatch(r"[a-z0-9_-]{1,80}", incident.channel_name)
    assert incident.channel_name.startswith("inc-1-paiement-echoue")
    assert len(standin.topic(incident.channel_id)) <= 250


def test_a_title_of_200_characters_is_saved_whole_and_a_longer_one_refused(bot):
    refused = declare(bot, "declare sev3 " + "checkout " * 80)  # 719 characters
    assert "The title is 719 characters long; the limit is 200." in refused.text
    reply = declare(bot, "declare sev3 " + ("checkout " * 23)[:200])
    with bot.rt.storage.read() as session:
        saved = session.get(Incident, 1).title
    assert len(saved) == 200 and f"*{saved}*" in reply.text


def test_a_title_of_only_emoji_gets_a_plain_channel_name(bot, standin):
    declare(bot, "declare 🔥🔥🔥 !!!")
    assert standin.channel_by_name("inc-1")


def test_user_text_is_data_and_pings_nobody(bot, standin):
    declare(bot, "declare sev3 {{ 7*7 }} <!channel> @here")
    channel = bot.channel_of(1)
    posted = [m["text"] for m in standin.messages(channel)] + [m["text"] for m in standin.messages("C0INCIDENTS")]
    assert any("{{ 7*7 }}" in text for text in posted)
    assert not any("<!channel>" in text or re.search(r"(?<!\u200b)@here", text.replace("@\u200bhere", "")) for text in posted)
    assert "<!channel>" not in standin.topic(channel)


def test_bad_commands_are_refused_with_the_right_form_and_change_nothing(bot, standin):
    declare(bot)
    channel = bot.channel_of(1)
    before = len(entries(bot))
    standin.reset_calls()
    for text, form in [
        ("sev 0", "/incident sev SEVERITY"),
        ("sev five", "/incident sev SEVERITY"),
        ("status fixed", "/incident status investigating|identified|monitoring|resolved"),
        ("commander bob", "/incident commander @user"),
        ("declare sev9 Broken", "/incident declare [--private] [SEVERITY] TITLE"),
        ("frobnicate", "/incident declare"),
    ]:
        reply = bot.command("U0ALICE", "/incident", text, channel=channel)
        assert reply.status == 200
        assert form in reply.text, (text, reply.text)
    assert len(entries(bot)) == before
    assert standin.calls == []


def test_commands_inside_the_channel_update_timeline_topic_and_summary(bot, standin):
    declare(bot)
    channel = bot.channel_of(1)
    assert bot.command("U0ALICE", "/incident", "sev 1", channel=channel).text == "Severity is now SEV1."
    assert bot.command("U0ALICE", "/incident", "status identified", channel=channel).text == "Status is now identified."
    assert bot.command("U0FRANK", "/incident", "note Rolled back deploy 4411", channel=channel).text == "Noted on the timeline."
    assert "is now the commander" in bot.command("U0ALICE", "/incident", "commander <@U0BOB|bob>", channel=channel).text
    assert bot.command("U0BOB", "/incident", "action <@U0FRANK|frank> Alert on checkout 5xx", channel=channel).text.startswith("Action item")
    kinds = [(e.kind, e.actor) for e in entries(bot)]
    assert kinds == [("declared", "U0ALICE"), ("page", "U0ALICE"), ("severity", "U0ALICE"), ("status", "U0ALICE"), ("note", "U0FRANK"), ("commander", "U0ALICE"), ("action", "U0BOB")]
    assert standin.topic(channel).startswith("SEV1 · identified · Commander: @bob")
    summary = standin.pins(channel)[0]
    assert "SEV1" in summary["text"] and "identified" in summary["text"]
    assert "U0BOB" in standin.members(channel)
    timeline = bot.command("U0BOB", "/incident", "timeline", channel=channel).text
    assert "Rolled back deploy 4411" in timeline and "Severity SEV2 → SEV1" in timeline


def test_raising_to_sev1_broadcasts_again(bot, standin):
    declare(bot, "declare sev3 Slow search")
    bot.command("U0ALICE", "/incident", "sev 1", channel=bot.channel_of(1))
    texts = [m["text"] for m in standin.messages("C0INCIDENTS")]
    assert len(texts) == 2 and "raised to" in texts[1] and "SEV1" in texts[1]


def test_a_user_not_in_the_channel_is_refused(bot, standin):
    declare(bot)
    channel = bot.channel_of(1)
    before = len(entries(bot))
    reply = bot.command("U0MALLORY", "/incident", "sev 1", channel=channel)
    assert "Only the commander, the declarer and members of" in reply.text
    assert len(entries(bot)) == before


def test_incident_commands_outside_an_incident_channel_say_where_to_go(bot):
    reply = bot.command("U0ALICE", "/incident", "sev 1", channel="C0GENERAL")
    assert "This is not an incident channel" in reply.text


def test_the_same_pushpin_event_delivered_three_times_makes_one_entry(bot, standin):
    declare(bot)
    channel = bot.channel_of(1)
    standin.add_member(channel, "U0BOB")
    from slack_sdk import WebClient

    bob_says = WebClient(token="xoxb-standin", base_url=standin.api_url).chat_postMessage(channel=channel, text="Error rate back to 0.1%")
    event = {"type": "reaction_added", "user": "U0BOB", "reaction": "pushpin", "item_user": "UBOT",
             "item": {"type": "message", "channel": channel, "ts": bob_says["ts"]}, "event_ts": "1.1"}
    for retry in (None, 1, 2):
        assert bot.event(event, event_id="Ev0PIN", retry_num=retry).status == 200
    pinned = [e for e in entries(bot) if e.kind == "pinned"]
    assert len(pinned) == 1
    assert pinned[0].text == "Error rate back to 0.1%"
    assert pinned[0].permalink and channel in pinned[0].permalink


def test_pinning_the_same_message_twice_in_two_events_still_makes_one_entry(bot, standin):
    declare(bot)
    channel = bot.channel_of(1)
    from slack_sdk import WebClient

    ts = WebClient(token="xoxb-standin", base_url=standin.api_url).chat_postMessage(channel=channel, text="CPU at 100%")["ts"]
    for _ in range(2):
        bot.event({"type": "reaction_added", "user": "U0ALICE", "reaction": "pushpin", "item": {"type": "message", "channel": channel, "ts": ts}})
    assert len([e for e in entries(bot) if e.kind == "pinned"]) == 1


def test_the_message_shortcut_adds_a_message_once(bot, standin):
    declare(bot)
    channel = bot.channel_of(1)
    payload = {"type": "message_action", "callback_id": "add_to_timeline", "trigger_id": "t",
               "user": {"id": "U0ALICE"}, "channel": {"id": channel}, "team": {"id": "T0STANDIN"},
               "message": {"type": "message", "user": "U0FRANK", "ts": "1773154800.000200", "text": "DB failover done"},
               "response_url": standin.response_url()}
    bot.interact(payload)
    bot.interact(payload)
    pinned = [e for e in entries(bot) if e.kind == "pinned"]
    assert [(e.actor, e.text) for e in pinned] == [("U0FRANK", "DB failover done")]
    notes = [m["text"] for m in standin.ephemerals("U0ALICE")]
    assert "Added to the timeline of incident #1." in notes
    assert "That message is already on the timeline of incident #1." in notes


def test_bare_declare_opens_the_form_and_submitting_it_declares(bot, standin):
    reply = bot.command("U0BOB", "/incident", "declare")
    assert reply.status == 200
    opened = standin.calls_to("views.open")
    assert len(opened) == 1
    view = standin.views[-1] if isinstance(standin.views, list) else list(standin.views.values())[-1]
    assert "Declare" in str(view)
    submission = {
        "type": "view_submission", "user": {"id": "U0BOB"}, "team": {"id": "T0STANDIN"}, "api_app_id": "A0BOT",
        "view": {"id": "V1", "type": "modal", "callback_id": "declare_incident", "private_metadata": "C0GENERAL", "state": {"values": {
            "title": {"value": {"type": "plain_text_input", "value": "Payments <b>timeout</b>"}},
            "severity": {"value": {"type": "static_select", "selected_option": {"value": "1"}}},
            "description": {"value": {"type": "plain_text_input", "value": "p99 at 9s"}},
            "rotation": {"value": {"type": "static_select", "selected_option": {"value": "payments"}}},
        }}},
    }
    assert bot.interact(submission).status == 200
    with bot.rt.storage.read() as session:
        incident = session.get(Incident, 1)
    assert incident.severity == 1 and incident.declarer == "U0BOB" and incident.description == "p99 at 9s"
    assert incident.channel_name == "inc-1-payments-b-timeout-b"
    assert any("Declared incident #1" in m["text"] for m in standin.dms("U0BOB"))


def test_an_empty_form_title_is_refused_in_the_form(bot):
    submission = {
        "type": "view_submission", "user": {"id": "U0BOB"}, "team": {"id": "T0STANDIN"}, "api_app_id": "A0BOT",
        "view": {"id": "V1", "type": "modal", "callback_id": "declare_incident", "state": {"values": {
            "title": {"value": {"type": "plain_text_input", "value": "  "}},
            "severity": {"value": {"type": "static_select", "selected_option": {"value": "3"}}}}}},
    }
    response = bot.interact(submission)
    assert response.json() == {"response_action": "errors", "errors": {"title": "The incident needs a title."}}
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1) is None


def test_summary_buttons_im_responding_join_and_resolve(bot, standin):
    declare(bot)
    channel = bot.channel_of(1)
    summary = standin.messages(channel)[0]
    labels = [e["text"]["text"] for b in summary["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["I'm responding", "Join", "Resolve"]
    bot.press("U0MALLORY", "incident_respond", "1", channel=channel)
    bot.press("U0MALLORY", "incident_respond", "1", channel=channel)  # a double click acts once
    assert "U0MALLORY" in standin.members(channel)
    assert [m["text"] for m in standin.messages(channel)].count(":raising_hand: <@U0MALLORY> is responding.") == 1
    assert any("already responding" in m.get("text", "") for m in standin.ephemerals("U0MALLORY"))
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1).acknowledged_at is None  # responding is not acknowledging
    bot.press("U0ERIN", "incident_ack", "1", channel=channel)  # a summary pinned before the rename
    assert "U0ERIN" in standin.members(channel)
    bot.press("U0MALLORY", "incident_join", "1", channel=channel)
    bot.press("U0MALLORY", "incident_resolve", "1", channel=channel)
    with bot.rt.storage.read() as session:
        incident = session.get(Incident, 1)
    assert incident.acknowledged_at is None and incident.status == "resolved"
    kinds = [e.kind for e in entries(bot)]
    assert kinds.count("responding") == 2 and "acknowledge" not in kinds


def test_an_open_sev2_without_updates_is_nudged_and_resolve_stops_it(bot, standin):
    declare(bot)
    channel = bot.channel_of(1)
    bot.advance(timedelta(minutes=59))  # a SEV2: twice STATUS_REMINDER_MINUTES
    assert not [m for m in standin.messages(channel) if "no status update" in m["text"]]
    bot.advance(timedelta(minutes=2))
    nudges = [m for m in standin.messages(channel) if "no status update" in m["text"]]
    assert len(nudges) == 1 and "<@U0ALICE>" in nudges[0]["text"]
    bot.command("U0ALICE", "/incident", "note Still looking at the DB", channel=channel)
    bot.advance(timedelta(minutes=20))
    assert len([m for m in standin.messages(channel) if "no status update" in m["text"]]) == 1
    bot.command("U0ALICE", "/incident", "resolve Fixed", channel=channel)
    bot.advance(timedelta(hours=3))
    assert len([m for m in standin.messages(channel) if "no status update" in m["text"]]) == 1
    assert not [key for key, _ in bot.rt.scheduler.pending() if key.startswith("reminder:1:")]


def test_a_sev3_gets_no_reminders(bot, standin):
    declare(bot, "declare sev3 Slow search")
    bot.advance(timedelta(hours=2))
    assert not [m for m in standin.messages(bot.channel_of(1)) if "no status update" in m["text"]]


def test_slack_failing_during_declaration_is_retried_until_the_channel_exists(bot, standin):
    standin.fail_next("conversations.create", status=500, count=6)
    declare(bot)
    for _ in range(5):
        bot.settle()
    assert standin.channel_by_name("inc-1-checkout-down")
    assert len(standin.pins(bot.channel_of(1))) == 1


def test_a_declaration_slack_refuses_for_good_is_reported_to_the_declarer(bot, standin):
    standin.fail_next("conversations.create", error="restricted_action", status=None, count=100)
    declare(bot)
    for _ in range(12):
        bot.settle()
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1) is not None  # the incident is never lost
    assert any("could not finish" in m["text"] for m in standin.dms("U0ALICE"))


def test_list_shows_open_incidents_anywhere(bot):
    declare(bot, "declare sev3 Slow search")
    declare(bot, "declare sev1 Checkout down")
    reply = bot.command("U0BOB", "/incident", "list").text
    assert reply.index("Checkout down") < reply.index("Slow search")


def test_a_channel_the_bot_created_before_a_crash_is_adopted_not_duplicated(bot, standin):
    from slack_sdk import WebClient

    # As if the bot created the channel and died before saving its id.
    WebClient(token="xoxb-standin", base_url=standin.api_url).conversations_create(name="inc-1-checkout-down")
    declare(bot)
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1).channel_name == "inc-1-checkout-down"
    assert not standin.channel_by_name("inc-1-checkout-down-1")
    assert len(standin.pins(bot.channel_of(1))) == 1


def test_a_rate_limited_step_comes_back_after_retry_after_without_blocking(bot, standin):
    standin.fail_next("conversations.create", status=429, retry_after=30, count=1)
    declare(bot)
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1).channel_id is None  # put back for 30 s, not slept on
    from bot.models import OutboxTask

    with bot.rt.storage.read() as session:
        task = session.exec(select(OutboxTask).where(OutboxTask.kind == "incident.open")).one()
    assert task.status == "pending" and task.attempts == 0 and "ratelimited" in task.last_error
    bot.advance(timedelta(seconds=31))
    assert standin.channel_by_name("inc-1-checkout-down")
