"""`/oncall`, overrides, swaps, handoffs, the App Home and the iCal feed, driven over HTTP."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from icalendar import Calendar

from bot.clock import ManualClock
from tests.conftest import START, start_bot

# START is Tuesday 10 March 2026 15:00 UTC: Los Angeles is on PDT since 8 March, so its
# 08:00-16:00 window (15:00-23:00 UTC) began most recently: frank (week 9, members[1]) is on call.


def reply(bot, standin, user, text):
    """The answer as Slack shows it: the acknowledgement's text, or a message through
    response_url when someone's time zone had to come from Slack first."""
    seen = len(standin.ephemerals(user))
    response = bot.command(user, "/oncall", text)
    later = [m["text"] for m in standin.ephemerals(user)[seen:]]
    if response.text:
        assert not later, "answered twice"
        return response.text
    assert later, "no reply in the acknowledgement nor through response_url"
    return later[-1]


def test_oncall_answers_in_the_acknowledgement_once_time_zones_are_known(bot, standin):
    first = bot.command("U0BOB", "/oncall", "payments")  # nobody's profile is known yet
    assert first.text == ""
    assert "*payments*: <@U0FRANK>" in standin.ephemerals("U0BOB")[-1]["text"]
    asked = len(standin.calls_to("users.info"))
    second = bot.command("U0BOB", "/oncall", "payments")
    assert "*payments*: <@U0FRANK>" in second.text
    assert len(standin.ephemerals("U0BOB")) == 1
    assert len(standin.calls_to("users.info")) == asked  # the profiles came from memory


def test_oncall_acknowledges_before_slack_has_answered_for_a_time_zone(bot, standin):
    import time

    standin.fail_next("users.info", status=429, retry_after=1)  # the lookup waits a second
    started = time.monotonic()
    acknowledged = bot.command("U0BOB", "/oncall", "payments", settle=False)
    assert acknowledged.status == 200 and acknowledged.text == ""
    assert time.monotonic() - started < 0.8  # the 3-second reply never waits on Slack
    bot.settle()
    assert "*payments*: <@U0FRANK>" in standin.ephemerals("U0BOB")[-1]["text"]


def test_a_profile_saved_by_another_process_meanwhile_loses_no_answer(bot, standin):
    """Two processes look up the same person at once: the other one saves the profile between
    this one's look in the cache and its insert (PostgreSQL runs both; SQLite's write lock
    makes them take turns). The answer still comes, and the profile is saved once."""
    from sqlalchemy import event, text

    from bot.models import UserProfile

    storage = bot.rt.storage
    if storage.is_sqlite:
        pytest.skip("SQLite's write lock makes the two writers take turns: no race to lose")
    saved_first: list[str] = []

    def other_process_saves_first(_conn, _cursor, statement, parameters, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO userprofile") and not saved_first:
            saved_first.append(parameters["user_id"])
            with storage.engine.begin() as other:
                other.execute(text("INSERT INTO userprofile (user_id, name, tz, fetched_at) "
                                   "VALUES (:u, 'other', 'UTC', now())"), {"u": parameters["user_id"]})

    event.listen(storage.engine, "before_cursor_execute", other_process_saves_first)
    assert bot.command("U0BOB", "/oncall", "payments").status == 200
    assert saved_first
    assert any("*payments*: <@U0FRANK>" in e["text"] for e in standin.ephemerals("U0BOB"))
    with storage.read() as session:
        assert session.get(UserProfile, saved_first[0]) is not None


def test_oncall_lists_every_rotation_in_the_askers_time_zone(bot, standin):
    text = reply(bot, standin, "U0BOB", "")
    # Los Angeles' window ends 23:00 UTC, Singapore's starts 00:00 UTC: frank keeps the pager
    # through the gap (SPEC: the last shift extends until the next begins).
    assert "*payments*: <@U0FRANK> · amer · until Wed 11 Mar 00:00 GMT (00:00 UTC)" in text
    assert "their time 08:00 PDT" in text
    assert "*payments-secondary*:" in text


def test_oncall_rotation_shows_times_in_the_askers_zone_with_utc_beside(bot, standin):
    text = reply(bot, standin, "U0CAROL", "payments")
    assert "until Wed 11 Mar 08:00 +08 (00:00 UTC)" in text


def test_oncall_next_names_the_next_region_and_person(bot, standin):
    text = reply(bot, standin, "U0BOB", "next payments")
    assert "next is <@U0DAVE> (apac)" in text
    assert "from Wed 11 Mar 00:00 GMT (00:00 UTC)" in text


def test_oncall_me_lists_my_next_shifts(bot, standin):
    text = reply(bot, standin, "U0FRANK", "me")
    assert text.startswith("*Your next shifts* (America/Los_Angeles)")
    assert "*payments* · Tue 10 Mar 08:00 PDT (15:00 UTC)" in text


def test_oncall_schedule_lists_shifts_and_overrides(bot, standin):
    text = reply(bot, standin, "U0BOB", "schedule payments 2")
    # tests/rotations/payments.toml, week 9 (members[1]): in UTC apac 00-08, emea 08-15, amer 15-00.
    assert text.splitlines() == [
        "*payments* — next 2 days, times in Europe/Dublin",
        "Tue 10 Mar 15:00 GMT (15:00 UTC) → Wed 11 Mar 00:00 GMT (00:00 UTC) · <@U0FRANK> · amer",
        "Wed 11 Mar 00:00 GMT (00:00 UTC) → Wed 11 Mar 08:00 GMT (08:00 UTC) · <@U0DAVE> · apac",
        "Wed 11 Mar 08:00 GMT (08:00 UTC) → Wed 11 Mar 15:00 GMT (15:00 UTC) · <@U0ERIN> · emea",
        "Wed 11 Mar 15:00 GMT (15:00 UTC) → Thu 12 Mar 00:00 GMT (00:00 UTC) · <@U0FRANK> · amer",
        "Thu 12 Mar 00:00 GMT (00:00 UTC) → Thu 12 Mar 08:00 GMT (08:00 UTC) · <@U0DAVE> · apac",
        "Thu 12 Mar 08:00 GMT (08:00 UTC) → Thu 12 Mar 15:00 GMT (15:00 UTC) · <@U0ERIN> · emea",
    ]


def test_a_member_overrides_and_the_override_is_listed_and_removable(bot, standin):
    assert "<@U0FRANK>" in reply(bot, standin, "U0ALICE", "payments")  # the shift is remembered
    text = reply(bot, standin, "U0ALICE", "override payments <@U0BOB|bob> 2026-03-10T14:00Z 2026-03-10T17:00Z")
    assert text.startswith("Override #1: <@U0BOB> is on call for *payments*")
    assert "<@U0BOB> (override)" in reply(bot, standin, "U0ALICE", "payments")
    assert "#1 <@U0BOB>" in reply(bot, standin, "U0ALICE", "schedule payments 1")
    assert reply(bot, standin, "U0ALICE", "override remove 1") == "Override #1 on *payments* removed."
    assert "<@U0FRANK>" in reply(bot, standin, "U0ALICE", "payments")


def test_an_override_made_in_another_web_process_is_seen_at_once(bot, standin, settings_env):
    """Two web processes on one database. Each keeps a copy of the stored overrides and reads
    again only when a change is announced (PostgreSQL's LISTEN/NOTIFY; on SQLite a note in a
    file beside the database that both map)."""
    from sqlalchemy import event

    reads: list[str] = []
    for engine in {bot.rt.storage.engine, bot.rt.storage.read_engine}:
        event.listen(engine, "before_cursor_execute",
                     lambda _c, _cur, statement, *_: reads.append(statement) if "FROM override" in statement else None)
    assert "<@U0FRANK>" in reply(bot, standin, "U0ALICE", "payments")
    assert "<@U0FRANK>" in reply(bot, standin, "U0BOB", "payments")
    assert len(reads) == 1  # the copy answered the second time

    other, stop = start_bot(settings_env, standin, ManualClock(START))
    try:
        text = reply(other, standin, "U0ALICE", "override payments <@U0BOB|bob> 2026-03-10T14:00Z 2026-03-10T17:00Z")
        assert text.startswith("Override #1: <@U0BOB> is on call for *payments*")
        assert "<@U0BOB> (override)" in reply(bot, standin, "U0ALICE", "payments")
        assert reply(other, standin, "U0ALICE", "override remove 1") == "Override #1 on *payments* removed."
        assert "<@U0FRANK>" in reply(bot, standin, "U0ALICE", "payments")
        assert "<@U0FRANK>" in reply(bot, standin, "U0ALICE", "payments")
        assert len(reads) == 3
    finally:
        stop()


def test_override_times_without_offset_are_in_the_askers_zone(bot, standin):
    text = reply(bot, standin, "U0ALICE", "override payments <@U0BOB|bob> 2026-03-10T07:00 2026-03-10T10:00")
    assert "(14:00 UTC)" in text and "(17:00 UTC)" in text


def test_someone_outside_the_rotation_cannot_override_it(bot, standin):
    text = reply(bot, standin, "U0MALLORY", "override payments <@U0MALLORY|m> 2026-03-10T14:00Z 2026-03-10T17:00Z")
    assert text == "Only members of `payments` may change who is on call there."
    assert "<@U0FRANK>" in reply(bot, standin, "U0BOB", "payments")


def test_take_takes_over_the_shift_of_a_member_and_tells_them(bot, standin):
    text = reply(bot, standin, "U0ALICE", "take payments <@U0FRANK|frank>")
    assert text.startswith("Override #1: you take <@U0FRANK>'s *payments* shift")
    assert text.endswith("they were told.")
    assert "<@U0ALICE> (override)" in reply(bot, standin, "U0BOB", "payments")
    assert any("<@U0ALICE> took over your *payments* shift" in m["text"] for m in standin.dms("U0FRANK"))


def test_bad_oncall_commands_say_what_was_wrong(bot, standin):
    assert "is not a number of days" in bot.command("U0BOB", "/oncall", "schedule payments 0").text
    assert "There is no rotation `nosuch`" in reply(bot, standin, "U0BOB", "nosuch")
    assert "is not a time" in reply(bot, standin, "U0ALICE", "override payments <@U0BOB|bob> tomorrow later")
    assert "must end after it starts" in reply(bot, standin, "U0ALICE", "override payments <@U0BOB|bob> 2026-03-10T17:00Z 2026-03-10T14:00Z")


def test_a_handoff_dms_both_people_posts_and_sets_the_user_group(bot, standin):
    bot.advance(timedelta(hours=9, minutes=1))  # 00:00 UTC: Singapore's 08:00 begins
    assert any("You are now on call for *payments* (apac)" in m["text"] for m in standin.dms("U0DAVE"))
    assert any("Your *payments* shift has ended; <@U0DAVE>" in m["text"] for m in standin.dms("U0FRANK"))
    posts = [m["text"] for m in standin.messages("C0PAYCHAN")]
    assert len([p for p in posts if "handoff" in p]) == 1
    assert standin.usergroup_users("S0PAYONCALL") == ["U0DAVE"]


def test_each_handoff_fires_once_across_a_day(bot, standin):
    bot.advance(timedelta(hours=24))
    posts = [m["text"] for m in standin.messages("C0PAYCHAN") if "handoff" in m["text"]]
    handoffs = [re.search(r"\|([^>]+)>: <@(\w+)> → <@(\w+)> \((\w+),", post).groups() for post in posts]
    # Amer's window ends at 23:00 UTC, but frank keeps the pager until apac begins at 00:00.
    assert handoffs == [
        ("2026-03-11 00:00 UTC", "U0FRANK", "U0DAVE", "apac"),
        ("2026-03-11 08:00 UTC", "U0DAVE", "U0ERIN", "emea"),
        ("2026-03-11 15:00 UTC", "U0ERIN", "U0FRANK", "amer"),
    ]


def test_a_commander_going_off_shift_is_offered_a_successor(bot, standin):
    bot.command("U0FRANK", "/incident", "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    bot.advance(timedelta(hours=9, minutes=1))
    offers = [m for m in standin.messages(channel) if "Take command" in str(m.get("blocks"))]
    assert len(offers) == 1 and "<@U0DAVE>" in offers[0]["text"]
    assert "U0DAVE" in standin.members(channel)
    value = offers[0]["blocks"][1]["elements"][0]["value"]
    bot.press("U0DAVE", "take_command", value, channel=channel)
    assert "Commander: @dave" in standin.topic(channel)


def test_only_the_person_offered_command_takes_it_and_only_once(bot, standin):
    bot.command("U0FRANK", "/incident", "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    bot.advance(timedelta(hours=9, minutes=1))
    offer = next(m for m in standin.messages(channel) if "Take command" in str(m.get("blocks")))
    value = offer["blocks"][1]["elements"][0]["value"]
    bot.command("U0BOB", "/incident", "note joining", channel=channel)  # bob is not even a member
    bot.press("U0BOB", "take_command", value, channel=channel)
    assert "was made to <@U0DAVE> only" in standin.ephemerals("U0BOB")[-1]["text"]
    assert "Commander: @frank" in standin.topic(channel)
    bot.press("U0DAVE", "take_command", value, channel=channel)
    assert "Commander: @dave" in standin.topic(channel)
    entries = timeline_size(bot)
    bot.press("U0DAVE", "take_command", value, channel=channel)
    assert "this offer is closed" in standin.ephemerals("U0DAVE")[-1]["text"]
    bot.press("U0DAVE", "take_command", "1", channel=channel)  # the old form of the button
    assert "out of date" in standin.ephemerals("U0DAVE")[-1]["text"]
    assert timeline_size(bot) == entries


def timeline_size(bot) -> int:
    from sqlmodel import select

    from bot.models import TimelineEntry

    with bot.rt.storage.read() as session:
        return len(session.exec(select(TimelineEntry).where(TimelineEntry.incident_id == 1)).all())


def test_a_handoff_missed_while_down_is_announced_once_on_start(settings_env, standin):
    clock = ManualClock(START)
    first, stop = start_bot(settings_env, standin, clock)
    stop()
    clock.advance(timedelta(hours=10))  # down across 00:00 UTC
    for _ in range(2):  # two restarts: still one announcement
        again, stop = start_bot(settings_env, standin, clock)
        again.settle()
        stop()
    late = [m["text"] for m in standin.messages("C0PAYCHAN") if "announced late" in m["text"]]
    assert len(late) == 1


def test_app_home_shows_who_is_on_call_and_my_shifts(bot, standin):
    bot.event({"type": "app_home_opened", "user": "U0FRANK", "channel": "D0FRANK", "tab": "home"})
    published = standin.calls_to("views.publish")
    assert len(published) == 1
    text = str(published[0].args["view"])
    assert "On call now" in text and "Your next shifts" in text


def test_a_personal_calendar_feed_lists_my_shifts_or_a_whole_rotation(bot):
    reply = bot.command("U0FRANK", "/oncall", "ical")
    assert reply.text.startswith("Your calendar feed: http://localhost:3000/ical/")
    feed = bot.feed("U0FRANK")
    assert bot.feed("U0FRANK") == feed  # asked again: the same address
    response = bot.get(feed)
    assert response.status == 200
    mine = Calendar.from_ical(response.body)
    summaries = {str(e.get("description")) for e in mine.walk("VEVENT")}
    assert summaries == {"Slack user U0FRANK holds the payments pager."}
    whole = Calendar.from_ical(bot.get(feed + "?rotation=payments").body)
    assert len(list(whole.walk("VEVENT"))) > 90 * 3 * 0.9
    assert bot.get(feed + "?rotation=nosuch").status == 404
    assert bot.get(feed + "?rotation=pay%0dments").status == 400
    assert bot.get(feed.replace("/ical/", "/ical/x")).status == 404


def test_resetting_a_calendar_feed_retires_the_old_address(bot):
    old = bot.feed("U0FRANK")
    reply = bot.command("U0FRANK", "/oncall", "ical reset").text
    assert "the old address no longer works" in reply
    new = bot.feed("U0FRANK")
    assert new != old and new in reply
    assert bot.get(old).status == 404 and bot.get(old + "?rotation=payments").status == 404
    assert bot.get(new).status == 200
    assert bot.feed("U0DAVE") != new
    assert "not an /oncall ical command" in bot.command("U0FRANK", "/oncall", "ical frobnicate").text
    assert bot.get(new).status == 200


@pytest.mark.parametrize("path", ["/ical/payments.ics", "/ical/payments.ics?user=U0FRANK", "/ical/nosuch.ics",
                                  "/ical/" + "A" * 32 + ".ics", "/ical/", "/ical/x/y.ics"])
def test_any_other_calendar_address_is_404(bot, path):
    bot.feed("U0FRANK")
    assert bot.get(path).status == 404
