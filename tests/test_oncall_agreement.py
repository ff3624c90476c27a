"""Every view of "who is on call" gives one answer: /oncall, App Home, /oncall me, the pager's
own lookup (declarations, pages, escalations, alerts), the calendar feed and the `schedule`
command, with an override and time off set in Slack and time off in the people file."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from bot.clock import ManualClock
from bot.oncall import service as oncall
from bot.schedule_cli import add_subcommands
from tests.conftest import ROTATIONS, START, start_bot
from tests.test_oncall import reply

PEOPLE_FILE = """\
[[people]]
user = "U0CAROL"
away = [{ start = 2026-03-17T00:00:00Z, end = 2026-03-18T12:00:00Z }]
"""
DAYS = 10


@pytest.fixture
def rotations_dir(tmp_path):
    folder = tmp_path / "rotations"
    shutil.copytree(ROTATIONS, folder)
    (folder / "people.toml").write_text(PEOPLE_FILE, encoding="utf-8")
    return folder


@pytest.fixture
def agreeing_bot(settings_env, standin, rotations_dir):
    served, stop = start_bot({**settings_env, "ROTATIONS_DIR": str(rotations_dir)}, standin, ManualClock(START))
    for user, text in [
        ("U0ALICE", "override payments <@U0GRACE|grace> 2026-03-12T02:00Z 2026-03-12T05:00Z"),
        ("U0ERIN", "away 2026-03-11T09:00Z 2026-03-11T12:00Z"),  # emea's week: U0BOB covers
        ("U0DAVE", "away 2026-03-13 Asia/Singapore"),  # apac's week: U0CAROL covers a whole day
    ]:
        answer = reply(served, standin, user, text)
        assert answer.startswith(("Override #", "Away #")), answer
    yield served
    stop()


def first_mention(text: str) -> str:
    found = re.search(r"<@([UW][A-Z0-9]+)>", text)
    assert found, text
    return found.group(1)


def schedule_json(rotations_dir, database_url, monkeypatch, at) -> list[dict]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["schedule", "payments", "--dir", str(rotations_dir), "--from", at.isoformat(),
                              "--days", "1", "--json"])
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args) == 0
    return json.loads(out.getvalue())


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(minutes=st.integers(min_value=0, max_value=DAYS * 24 * 60 - 1))
def test_every_view_names_the_same_person_at_any_instant(agreeing_bot, standin, rotations_dir, settings_env,
                                                         monkeypatch, minutes):
    bot = agreeing_bot
    at = START + timedelta(minutes=minutes)
    bot.clock.set(at)
    rotation = bot.rt.rotations["payments"]

    slash = first_mention(reply(bot, standin, "U0HEIDI", "payments"))
    with bot.rt.storage.read() as session:
        pager = oncall.on_call_at(db_session=session, rotation=rotation, at=at).user
    declared = oncall.shift_at(rotation, at, oncall.cached_adjustments(bot.rt.storage).of([rotation])["payments"]).user
    (scheduled,) = [e for e in schedule_json(rotations_dir, settings_env["DATABASE_URL"], monkeypatch, at)
                    if e["start"] <= at.isoformat().replace("+00:00", "Z") < e["end"]][:1]
    calendar = Calendar.from_ical(bot.get(bot.feed("U0HEIDI") + "?rotation=payments").body)
    (feed,) = [str(e["DESCRIPTION"]).split()[2] for e in calendar.walk("VEVENT")
               if e["DTSTART"].dt <= at < e["DTEND"].dt]
    bot.event({"type": "app_home_opened", "user": slash, "channel": f"D{slash}", "tab": "home"})
    home = str(standin.home(slash))

    assert {slash, pager, declared, scheduled["user"], feed} == {slash}, (at, slash, pager, declared, scheduled, feed)
    assert f"*payments*: <@{slash}>" in home
    assert "no on-call shifts" not in reply(bot, standin, slash, "me")


def test_the_cover_is_named_in_every_view(agreeing_bot, standin, rotations_dir, settings_env, monkeypatch):
    bot = agreeing_bot
    at = START.replace(day=11, hour=10)  # U0ERIN is away 09:00-12:00 UTC; U0BOB covers
    bot.clock.set(at)
    assert "<@U0BOB> (covering for <@U0ERIN>)" in reply(bot, standin, "U0HEIDI", "payments")
    entry = next(e for e in schedule_json(rotations_dir, settings_env["DATABASE_URL"], monkeypatch, at))
    assert (entry["user"], entry["covering_for"]) == ("U0BOB", "U0ERIN")
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
    assert any("You have been paged" in m["text"] or "Acknowledge" in str(m.get("blocks"))
               for m in bot.slack.dms("U0BOB"))


def test_someone_on_call_by_override_sees_it_though_no_rotation_lists_them(bot, standin):
    reply(bot, standin, "U0ALICE", "override payments <@U0MALLORY|m> 2026-03-10T14:00Z 2026-03-10T17:00Z")
    mine = reply(bot, standin, "U0MALLORY", "me")
    assert mine.startswith("*Your next shifts*") and "*payments*" in mine and "(override)" in mine
    bot.event({"type": "app_home_opened", "user": "U0MALLORY", "channel": "D0MALLORY", "tab": "home"})
    home = str(standin.home("U0MALLORY"))
    assert "*payments*: <@U0MALLORY> (override)" in home and "no on-call shifts" not in home
