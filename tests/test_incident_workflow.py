"""The incident workflow end to end, as Slack drives it: severity words, announced severity
changes, the duplicate guard, roles, stakeholder updates, reopening, follow-ups, private
incidents and nudges that back off."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from bot.incidents.service import declare_incident
from bot.models import ActionItem, Incident, OutboxTask, Page, PostmortemDraft, TimelineEntry
from tests.conftest import START

ALICE, BOB, FRANK, MALLORY = "U0ALICE", "U0BOB", "U0FRANK", "U0MALLORY"


def incident(bot, number=1) -> Incident | None:
    with bot.rt.storage.read() as session:
        return session.get(Incident, number)


def count(bot, model) -> int:
    with bot.rt.storage.read() as session:
        return len(session.exec(select(model)).all())


def kinds(bot, number=1) -> list[str]:
    with bot.rt.storage.read() as session:
        rows = session.exec(select(TimelineEntry).where(TimelineEntry.incident_id == number)).all()
    return [row.kind for row in rows]


def texts(standin, channel) -> list[str]:
    return [m["text"] for m in standin.messages(channel)]


def run(bot, text, user=ALICE, number=1):
    """A command typed in incident `number`'s channel."""
    return bot.command(user, "/incident", text, channel=bot.channel_of(number))


# --- severity words ---------------------------------------------------------------------------

def test_severity_words_choose_the_severity_and_leave_the_title(bot, standin):
    for text, severity, title in [
        ("declare critical Disk full", 1, "Disk full"),
        ("declare P2 Login broken", 2, "Login broken"),
        ("declare minor Typo on the status page", 3, "Typo on the status page"),
        ("declare low Flaky graph", 4, "Flaky graph"),
        ("declare 1 Cache cluster gone", 1, "Cache cluster gone"),
        ("declare SEV2 Queue backed up", 2, "Queue backed up"),
        ("declare Search is slow", 3, "Search is slow"),
    ]:
        reply = bot.command(ALICE, "/incident", text)
        assert f"(SEV{severity})" in reply.text and "`/incident sev 1-4`" in reply.text, reply.text
    with bot.rt.storage.read() as session:
        saved = [(i.severity, i.title) for i in session.exec(select(Incident).order_by(Incident.id)).all()]
    assert saved == [(1, "Disk full"), (2, "Login broken"), (3, "Typo on the status page"), (4, "Flaky graph"),
                     (1, "Cache cluster gone"), (2, "Queue backed up"), (3, "Search is slow")]
    assert bot.command(ALICE, "/incident", "sev major", channel=bot.channel_of(7)).text == "Severity is now SEV2."


def test_a_word_that_looks_like_a_severity_but_is_none_is_refused_with_the_list(bot, standin):
    for text in ["declare sev0 Disk full", "declare sev5 Disk full", "declare p0 Disk full", "declare P9 Disk full",
                 "declare --private sev7 Leak"]:
        reply = bot.command(ALICE, "/incident", text)
        assert "is not a severity" in reply.text and "`p1`..`p4`" in reply.text and "`critical`" in reply.text
        assert "\n" not in reply.text
    assert count(bot, Incident) == 0 and count(bot, OutboxTask) == 0
    bot.command(ALICE, "/incident", "declare Checkout down")
    reply = run(bot, "sev p0")
    assert "is not a severity" in reply.text and incident(bot).severity == 3


# --- every severity change announced ----------------------------------------------------------

def test_raising_and_lowering_are_both_announced_in_the_channel_and_broadcast(bot, standin):
    bot.command(ALICE, "/incident", "declare sev3 Checkout down")
    channel = bot.channel_of(1)
    run(bot, "sev 1")
    run(bot, "sev low")
    posted = texts(standin, channel)
    assert any("raised the severity: SEV3 → SEV1" in t for t in posted)
    assert any("lowered the severity: SEV1 → SEV4" in t for t in posted)
    broadcast = texts(standin, "C0INCIDENTS")
    assert any("raised to" in t and "SEV1" in t for t in broadcast)
    assert any("lowered to" in t and "SEV4" in t for t in broadcast)
    assert kinds(bot).count("severity") == 2


# --- duplicate guard --------------------------------------------------------------------------

def test_the_same_title_again_asks_is_this_n_and_declares_nothing_until_chosen(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    pages_before = count(bot, Page)
    reply = bot.command(BOB, "/incident", "declare critical CHECKOUT  down!!")
    assert "Is this #1 *Checkout down*" in reply.text
    labels = [e["text"]["text"] for b in reply.json()["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["Join #1", "Declare anyway"]
    assert incident(bot, 2) is None and count(bot, Page) == pages_before
    assert bot.command(BOB, "/incident", "declare Checkout down in EU").text.startswith(":eyes: Is this #1")
    bot.press(BOB, "duplicate_join", "1")
    assert BOB in standin.members(bot.channel_of(1)) and incident(bot, 2) is None
    anyway = next(e for b in reply.json()["blocks"] if b["type"] == "actions" for e in b["elements"]
                  if e["action_id"] == "duplicate_declare")
    bot.interact({
        "type": "block_actions", "user": {"id": BOB}, "team": {"id": "T0STANDIN"}, "api_app_id": "A0BOT",
        "trigger_id": "t", "channel": {"id": "C0GENERAL"},
        "container": {"type": "message", "channel_id": "C0GENERAL", "message_ts": "1.0"},
        "response_url": standin.response_url(channel_id="C0GENERAL", user_id=BOB),
        "actions": [{"action_id": "duplicate_declare", "block_id": "b", "value": anyway["value"], "type": "button",
                     "action_ts": "1.0"}],
    })
    second = incident(bot, 2)
    assert second is not None and second.severity == 1 and second.title == "CHECKOUT down!!"
    assert any("Declared incident #2" in e["text"] for e in standin.ephemerals(BOB))


def test_a_forged_declare_anyway_button_declares_nothing(bot, standin):
    for value in ["not json", '{"title": "X"}', '{"title": "X", "severity": 2, "rotation_name": 7}', "[1]"]:
        bot.press(BOB, "duplicate_declare", value)
    bot.press(BOB, "duplicate_join", "x1")
    assert count(bot, Incident) == 0
    refusals = [e["text"] for e in standin.ephemerals(BOB)]
    assert refusals == ["That button is not one of mine."] * 5


def test_the_guard_lets_unrelated_titles_and_old_or_resolved_incidents_through(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    assert "Declared incident #2" in bot.command(ALICE, "/incident", "declare Login down").text
    run(bot, "resolve Fixed")
    assert "Declared incident #3" in bot.command(ALICE, "/incident", "declare Checkout down").text
    bot.advance(timedelta(minutes=31))
    assert "Declared incident #4" in bot.command(ALICE, "/incident", "declare Checkout down").text


def test_the_guard_compares_whole_words_with_every_open_incident_of_the_last_half_hour(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Disk full on db-3")
    with bot.rt.storage.session() as session:  # many newer open incidents, as in a storm
        for number in range(2, 302):
            declare_incident(db_session=session, number=number, title=f"Queue {number} lagging",
                             severity=3, declarer=BOB, now=bot.rt.clock.now())
    assert bot.command(BOB, "/incident", "declare DISK FULL on DB 3").text.startswith(":eyes: Is this #1")
    assert bot.command(BOB, "/incident", "declare Queue 17").text.startswith(":eyes: Is this #17")
    # a part of a word is no match: "Disk ful" is not in "Disk full on db 3"
    assert bot.command(BOB, "/incident", "declare Disk ful").text.startswith("Declared incident #")


def test_a_duplicate_from_the_form_gets_the_question_where_the_form_was_opened(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Payments timeout")
    submission = {
        "type": "view_submission", "user": {"id": BOB}, "team": {"id": "T0STANDIN"}, "api_app_id": "A0BOT",
        "view": {"id": "V1", "type": "modal", "callback_id": "declare_incident", "private_metadata": "C0GENERAL",
                 "state": {"values": {
                     "title": {"value": {"type": "plain_text_input", "value": "payments TIMEOUT"}},
                     "severity": {"value": {"type": "static_select", "selected_option": {"value": "1"}}},
                 }}},
    }
    assert bot.interact(submission).status == 200
    assert incident(bot, 2) is None
    # ephemeral where the form was opened; Bob is not in #general, so it comes as a DM
    asked = [e for e in standin.ephemerals(BOB) + standin.dms(BOB) if "Is this #1" in e["text"]]
    assert asked and any(b["type"] == "actions" for b in asked[0]["blocks"])


# --- roles --------------------------------------------------------------------------------------

def test_roles_show_in_the_topic_the_summary_and_the_postmortem(bot, standin, tmp_path):
    bot.command(ALICE, "/incident", "declare sev2 " + "Checkout down " * 14)
    channel = bot.channel_of(1)
    assert run(bot, "role <@U0BOB> comms").text == "<@U0BOB> is now comms."
    run(bot, "role <@U0MALLORY|mallory> SCRIBE")
    topic = standin.topic(channel)
    assert "comms: @bob" in topic and "scribe: @mallory" in topic and len(topic) <= 250
    assert BOB in standin.members(channel) and MALLORY in standin.members(channel)
    fields = [f["text"] for b in standin.pins(channel)[0]["blocks"] if b["type"] == "section" for f in b.get("fields", [])]
    assert any(f.startswith("*Roles*") and "comms: <@U0BOB>" in f for f in fields)
    run(bot, "resolve Fixed")
    with bot.rt.storage.read() as session:
        draft = session.exec(select(PostmortemDraft)).one()
    assert "- **Roles:** comms: @bob, scribe: @mallory" in draft.markdown


def test_an_unknown_role_is_refused_in_one_line_and_changes_nothing(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    before = kinds(bot)
    standin.reset_calls()
    reply = run(bot, "role <@U0BOB> janitor")
    assert reply.text == "`janitor` is not an incident role. Roles: comms, scribe, ops."
    assert "is not a Slack user mention" in run(bot, "role bob comms").text
    bot.settle()
    assert kinds(bot) == before and standin.calls == []


# --- stakeholder updates ------------------------------------------------------------------------

def test_an_update_goes_to_the_channel_and_the_broadcast_thread(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    reply = run(bot, "update Rolled back the deploy; error rate <!channel> falling")
    assert reply.text.startswith("Update posted")
    update = [m for m in standin.messages(channel) if "Update on incident #1" in m["text"]]
    assert len(update) == 1 and "Rolled back the deploy" in update[0]["text"]
    assert "<!channel>" not in update[0]["text"]
    every = standin.messages("C0INCIDENTS")
    broadcast = [m for m in every if m.get("thread_ts", m["ts"]) == m["ts"]]
    assert len(broadcast) == 1  # the declaration; the update is a reply in its thread
    replies = [m for m in every if m.get("thread_ts") == broadcast[0]["ts"] and m["ts"] != broadcast[0]["ts"]]
    assert len(replies) == 1 and "Rolled back the deploy" in replies[0]["text"]
    assert replies[0]["metadata"]["event_payload"] == {"incident_id": 1}
    assert "update" in kinds(bot)


def test_an_update_outside_an_incident_channel_is_refused(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    before = kinds(bot)
    reply = bot.command(ALICE, "/incident", "update All good", channel="C0GENERAL")
    assert reply.text.startswith("This is not an incident channel.") and kinds(bot) == before
    assert "The update is empty" in run(bot, "update").text


# --- reopen -------------------------------------------------------------------------------------

def test_reopen_within_seven_days_and_the_next_resolve_drafts_a_new_version(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    run(bot, "resolve Fixed")
    bot.advance(timedelta(days=6))
    reply = run(bot, "reopen")
    assert "is open again" in reply.text
    found = incident(bot)
    assert found.status == "investigating" and found.resolved_at is None
    assert "reopened" in kinds(bot)
    assert any("reopened the incident" in t for t in texts(standin, channel))
    assert any("Incident reopened" in t for t in texts(standin, "C0INCIDENTS"))
    run(bot, "resolve Fixed for real")
    with bot.rt.storage.read() as session:
        versions = sorted(d.version for d in session.exec(select(PostmortemDraft)).all())
    assert versions == [1, 2]


def test_reopening_an_open_incident_or_after_seven_days_is_refused(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    assert run(bot, "reopen").text == "Incident #1 is not resolved; there is nothing to reopen."
    run(bot, "resolve Fixed")
    bot.advance(timedelta(days=7, minutes=1))
    before = kinds(bot)
    reply = run(bot, "reopen")
    assert "more than 7 days ago" in reply.text and "\n" not in reply.text
    assert incident(bot).status == "resolved" and kinds(bot) == before


# --- follow-ups ---------------------------------------------------------------------------------

def test_action_items_have_owners_due_dates_reminders_and_a_status(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    reply = run(bot, "action <@U0BOB> Alert on pool saturation due 2026-03-12")
    assert reply.text.startswith("Action item 1 added")
    run(bot, "action Canary releases")
    with bot.rt.storage.read() as session:
        item = session.get(ActionItem, 1)
    assert item.owner == BOB and str(item.due) == "2026-03-12" and item.status == "open"
    listed = bot.command(BOB, "/oncall", "followups").text
    assert "Alert on pool saturation" in listed and "due 2026-03-12" in listed and "Canary" not in listed
    # Bob is in Dublin (GMT in March): reminded at 10:00 local on the due date, not before.
    bot.advance(START.replace(day=12, hour=9, minute=59) - bot.clock.now())
    assert not [m for m in standin.dms(BOB) if "is due today" in m["text"]]
    bot.advance(timedelta(minutes=2))
    assert len([m for m in standin.dms(BOB) if "Action item 1" in m["text"] and "is due today" in m["text"]]) == 1
    assert run(bot, "action done 1").text == "Action item 1 is done."
    assert bot.command(BOB, "/oncall", "followups").text == ":sunny: You have no open action items."
    run(bot, "resolve Fixed")
    with bot.rt.storage.read() as session:
        markdown = session.exec(select(PostmortemDraft)).one().markdown
    assert "| 1 | Alert on pool saturation | @bob | 2026-03-12 | done |" in markdown
    assert "| 2 | Canary releases | **unassigned** | — | open |" in markdown


def test_action_done_for_an_item_that_does_not_exist_is_refused(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    before = kinds(bot)
    assert run(bot, "action done 99").text == (
        "Incident #1 has no action item 99; `/incident timeline` lists them.")
    assert "is not a due date" in run(bot, "action Fix it due someday").text
    assert kinds(bot) == before and count(bot, ActionItem) == 0


# --- private incidents --------------------------------------------------------------------------

def test_a_private_incident_stays_in_its_private_channel(bot, standin):
    reply = bot.command(ALICE, "/incident", "declare --private critical Payroll data exposed")
    assert "(SEV1)" in reply.text and "It is private" in reply.text
    found = incident(bot)
    assert found.private and found.severity == 1 and found.title == "Payroll data exposed"
    with standin.lock:
        assert standin._channels[found.channel_id]["is_private"]
    run(bot, "update Contained")
    run(bot, "sev 2")
    assert "Payroll" not in bot.command(MALLORY, "/incident", "list").text
    assert "Payroll" in bot.command(ALICE, "/incident", "list").text
    assert "Payroll" in bot.command(FRANK, "/incident", "list").text  # invited as the on-call person
    run(bot, "resolve Rotated the keys")
    bot.settle()
    assert standin.messages("C0INCIDENTS") == []
    assert any(f.get("name", "").startswith("postmortem-inc-1") for f in standin.files())
    run(bot, "reopen")
    run(bot, "resolve Really rotated")
    assert standin.messages("C0INCIDENTS") == []
    # and the private one is not a duplicate anybody else could be pointed at
    assert "Declared incident #2" in bot.command(MALLORY, "/incident", "declare Payroll data exposed").text


def test_the_form_declares_a_private_incident_with_its_box_ticked(bot, standin):
    submission = {
        "type": "view_submission", "user": {"id": BOB}, "team": {"id": "T0STANDIN"}, "api_app_id": "A0BOT",
        "view": {"id": "V1", "type": "modal", "callback_id": "declare_incident", "private_metadata": "C0GENERAL",
                 "state": {"values": {
                     "title": {"value": {"type": "plain_text_input", "value": "HR case"}},
                     "severity": {"value": {"type": "static_select", "selected_option": {"value": "3"}}},
                     "private": {"value": {"type": "checkboxes", "selected_options": [{"value": "private"}]}},
                 }}},
    }
    assert bot.interact(submission).status == 200
    assert incident(bot).private and standin.messages("C0INCIDENTS") == []


# --- nudges that back off -----------------------------------------------------------------------

def nudges(standin, channel) -> list[str]:
    return [t for t in texts(standin, channel) if t.startswith(":alarm_clock:")]


def test_nudges_back_off_stop_after_five_and_start_again_after_an_update(bot, standin):
    bot.command(ALICE, "/incident", "declare sev1 Checkout down")
    channel = bot.channel_of(1)
    bot.advance(timedelta(minutes=29))
    assert nudges(standin, channel) == []
    # 30, then 60, 120, 240 and 240 minutes apart (doubling, at most 4 hours)
    for minutes, expected in [(2, 1), (60, 2), (120, 3), (240, 4), (240, 5)]:
        bot.advance(timedelta(minutes=minutes))
        assert len(nudges(standin, channel)) == expected, minutes
    assert not [m for m in standin.dms(ALICE) if ":mute:" in m["text"]]
    bot.advance(timedelta(hours=4))
    assert len([m for m in standin.dms(ALICE) if ":mute:" in m["text"]]) == 1
    assert len([t for t in texts(standin, "C0INCIDENTS") if ":mute:" in t]) == 1
    bot.advance(timedelta(days=10))
    assert len(nudges(standin, channel)) == 5
    run(bot, "update Still on it")
    bot.advance(timedelta(minutes=31))
    assert len(nudges(standin, channel)) == 6


def test_a_sev2_is_first_nudged_after_twice_the_interval_naming_the_current_commander(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    run(bot, f"commander <@{BOB}>")
    bot.advance(timedelta(minutes=59))
    assert nudges(standin, channel) == []
    bot.advance(timedelta(minutes=2))
    (nudge,) = nudges(standin, channel)
    assert "<@U0BOB>" in nudge and "<@U0ALICE>" not in nudge


def test_command_not_taken_after_a_shift_end_asks_the_incoming_person_by_dm(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    run(bot, f"commander <@{FRANK}>")
    # Singapore takes payments at 08:00 SGT (00:00 UTC on the 11th); Dave is on call then.
    bot.advance(START.replace(day=11, hour=0, minute=14) - bot.clock.now())
    assert not [m for m in standin.dms("U0DAVE") if "Nobody has taken command" in m["text"]]
    bot.advance(timedelta(minutes=2))
    (asked,) = [m for m in standin.dms("U0DAVE") if "Nobody has taken command" in m["text"]]
    assert any(e.get("action_id") == "take_command" for b in asked["blocks"] if b["type"] == "actions"
               for e in b["elements"])
    with bot.rt.storage.read() as session:
        assert "U0DAVE" not in [p.user for p in session.exec(select(Page)).all()]  # not a page
    [value] = [e["value"] for b in asked["blocks"] if b["type"] == "actions" for e in b["elements"]]
    bot.press("U0DAVE", "take_command", value, channel="D0DAVE")
    assert incident(bot).commander == "U0DAVE"


def test_command_taken_in_time_asks_nobody(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    run(bot, f"commander <@{FRANK}>")
    bot.advance(START.replace(day=11, hour=0, minute=5) - bot.clock.now())
    run(bot, "commander <@U0DAVE>", user=FRANK)
    bot.advance(timedelta(minutes=20))
    assert not [m for m in standin.dms("U0DAVE") if "Nobody has taken command" in m["text"]]


def test_messages_carry_the_incident_in_their_metadata(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    run(bot, "note Looking")
    posted = [m for m in standin.messages(channel) if m.get("metadata")]
    assert posted and all(m["metadata"]["event_payload"]["incident_id"] == 1 for m in posted)
    assert json.dumps(standin.messages("C0INCIDENTS")[0]["metadata"]).count("incident_id") == 1


# --- bookmarks ----------------------------------------------------------------------------------

def test_the_channel_bookmarks_the_incident_page_the_runbook_and_on_resolve_the_postmortem(web, standin):
    web.command(ALICE, "/incident", "declare sev2 Checkout down")
    channel = web.channel_of(1)
    base = web.rt.settings.base_url
    marks = {b["title"]: b["link"] for b in standin.bookmarks(channel)}
    assert marks == {"Incident #1": f"{base}/incidents/1", "Runbook": "https://runbooks.example.com/payments"}
    web.rt.outbox.run_due()
    run(web, "resolve Fixed")
    marks = {b["title"]: b["link"] for b in standin.bookmarks(channel)}
    assert marks["Postmortem"] == f"{base}/postmortems/1" and len(marks) == 3


def test_without_the_web_pages_only_the_runbook_is_bookmarked(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    bot.rt.outbox.run_due()
    run(bot, "resolve Fixed")
    assert {b["title"] for b in standin.bookmarks(channel)} == {"Runbook"}


# --- App Home -----------------------------------------------------------------------------------

def test_app_home_shows_my_open_incidents_my_follow_ups_and_my_next_shifts(bot, standin):
    bot.command(ALICE, "/incident", "declare sev2 Checkout down")
    run(bot, f"commander <@{FRANK}>")
    run(bot, f"action <@{FRANK}> Add a saturation alert due 2026-03-20")
    bot.command(BOB, "/incident", "declare --private sev3 Payroll leak")
    bot.event({"type": "app_home_opened", "user": FRANK, "channel": "D0FRANK", "tab": "home"})
    sections = [b["text"]["text"] for b in standin.home(FRANK)["blocks"]]
    assert sections[0].startswith("*On call now*")
    assert sections[1].startswith("*My open incidents*") and "#1 Checkout down" in sections[1]
    assert "Payroll" not in sections[1]
    assert "Add a saturation alert" in sections[2] and "due 2026-03-20" in sections[2]
    assert "Your next shifts" in sections[3]
    bot.event({"type": "app_home_opened", "user": BOB, "channel": "D0BOB", "tab": "home"})
    assert "Payroll leak" in standin.home(BOB)["blocks"][1]["text"]["text"]


def test_a_private_incident_s_last_reminder_stays_in_its_channel(bot, standin):
    bot.command(ALICE, "/incident", "declare --private sev1 Payroll data exposed")
    channel = bot.channel_of(1)
    bot.advance(timedelta(minutes=30 + 60 + 120 + 240 + 240 + 240 + 1))
    assert len(nudges(standin, channel)) == 5
    assert len([t for t in texts(standin, channel) if ":mute:" in t]) == 1
    assert standin.messages("C0INCIDENTS") == []


def test_a_reminder_planned_before_the_back_off_is_planned_anew_not_doubled(bot, standin):
    from bot.jobs.scheduler import request_job

    bot.command(ALICE, "/incident", "declare sev1 Checkout down")
    channel = bot.channel_of(1)
    with bot.rt.storage.session() as session:  # the payload older versions stored
        request_job(session, kind="incident.reminder", key="reminder:1:legacy", run_at=START + timedelta(minutes=5),
                    payload={"incident_id": 1})
    bot.advance(timedelta(minutes=29))
    assert nudges(standin, channel) == []
    bot.advance(timedelta(minutes=2))
    assert len(nudges(standin, channel)) == 1
