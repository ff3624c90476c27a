"""`/oncall away`: time away set in Slack, in the asker's own zone, driven over HTTP."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.config import ConfigError
from bot.models import AwayRecord
from bot.oncall.away import away_periods
from bot.schedule.people import Away
from tests.conftest import ROTATIONS, START, start_bot
from tests.test_oncall import reply

# START is Tuesday 10 March 2026 15:00 UTC; alice is in America/Los_Angeles, on PDT (UTC-7)
# since 8 March.


def saved(bot) -> list[tuple[str, datetime, datetime]]:
    """Every stored away period as (user, start, end) in UTC."""
    with bot.rt.storage.read() as session:
        records = session.exec(select(AwayRecord).order_by(AwayRecord.id)).all()
        return [(r.user, r.start, r.end) for r in records]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_time_away_is_saved_listed_and_removed(bot, standin):
    text = reply(bot, standin, "U0ALICE", "away 2026-03-20T09:00 2026-03-20T17:00")
    assert text == (
        "Away #1: Fri 20 Mar 2026 09:00 → Fri 20 Mar 2026 17:00 (America/Los_Angeles). "
        "Remove it with `/oncall away remove 1`."
    )
    assert saved(bot) == [("U0ALICE", utc(2026, 3, 20, 16), utc(2026, 3, 21, 0))]
    assert reply(bot, standin, "U0ALICE", "away").splitlines() == [
        "*Your time away* (times in America/Los_Angeles)",
        "#1 · Fri 20 Mar 2026 09:00 → Fri 20 Mar 2026 17:00",
        "Remove one with `/oncall away remove ID`.",
    ]
    assert reply(bot, standin, "U0ALICE", "away remove 1") == (
        "Away #1 removed: Fri 20 Mar 2026 09:00 → Fri 20 Mar 2026 17:00 (America/Los_Angeles)."
    )
    assert saved(bot) == []
    assert reply(bot, standin, "U0ALICE", "away") == (
        "You have no time away ahead. Add some with `/oncall away START END`."
    )


def test_a_bare_date_is_the_askers_whole_local_day(bot, standin):
    text = reply(bot, standin, "U0ALICE", "away 2026-03-12")
    assert text.startswith("Away #1: Thu 12 Mar 2026 00:00 → Fri 13 Mar 2026 00:00 (America/")
    assert saved(bot) == [("U0ALICE", utc(2026, 3, 12, 7), utc(2026, 3, 13, 7))]


def test_a_bare_end_date_is_included(bot, standin):
    reply(bot, standin, "U0ALICE", "away 2026-03-12 2026-03-13")
    assert saved(bot) == [("U0ALICE", utc(2026, 3, 12, 7), utc(2026, 3, 14, 7))]


def test_a_whole_day_when_the_clocks_go_back_lasts_25_hours(bot, standin):
    # Los Angeles leaves PDT at 02:00 on Sunday 1 November 2026.
    reply(bot, standin, "U0ALICE", "away 2026-11-01")
    assert saved(bot) == [("U0ALICE", utc(2026, 11, 1, 7), utc(2026, 11, 2, 8))]


def test_an_offset_or_a_zone_wins_over_the_askers_zone_and_the_reply_is_in_the_askers(bot, standin):
    text = reply(bot, standin, "U0ALICE", "away 2026-03-20 2026-03-21 Asia/Singapore")
    assert text.startswith("Away #1: Thu 19 Mar 2026 09:00 → Sat 21 Mar 2026 09:00 (America/")
    reply(bot, standin, "U0ALICE", "away 2026-03-25T09:00+01:00 2026-03-25T12:00Z")
    assert saved(bot) == [
        ("U0ALICE", utc(2026, 3, 19, 16), utc(2026, 3, 21, 16)),
        ("U0ALICE", utc(2026, 3, 25, 8), utc(2026, 3, 25, 12)),
    ]


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        (
            "away 2026-03-20T17:00 2026-03-20T09:00",
            "That away period ends before it starts; nothing was saved.",
        ),
        ("away 2026-03-09", "That away period has already ended; nothing was saved."),
        (
            "away 2026-03-01 2026-03-10T07:59",
            "That away period has already ended; nothing was saved.",
        ),
        (
            "away 2026-03-20 2027-04-01",
            (
                "An away period lasts at most 366 days; nothing was saved. Add the rest as another "
                "period."
            ),
        ),
    ],
)
def test_a_period_that_cannot_be_kept_is_refused_in_one_line_and_nothing_is_saved(
    bot, standin, text, refusal
):
    assert reply(bot, standin, "U0ALICE", text) == refusal
    assert saved(bot) == []


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("away tomorrow friday", "`tomorrow` is not a date or time; write e.g. 2026-12-24"),
        ("away 2026-02-30", "`2026-02-30` is not a date or time"),
        ("away 2026-03-20T09:00", "Say when it ends too."),
        ("away 2026-03-20 2026-03-21 Mars/Olympus", "`Mars/Olympus` is not a time zone."),
        ("away remove first", "Say which away period to remove by its number."),
    ],
)
def test_an_unreadable_away_command_says_what_was_wrong_and_saves_nothing(
    bot, standin, text, refusal
):
    answer = bot.command("U0ALICE", "/oncall", text).text  # refused in the acknowledgement
    assert answer.startswith(refusal)
    assert answer.endswith("`/oncall away` or `/oncall away remove ID`.")
    assert saved(bot) == []


def test_only_the_person_away_removes_their_period(bot, standin):
    reply(bot, standin, "U0ALICE", "away 2026-03-20")
    assert reply(bot, standin, "U0BOB", "away remove 1") == (
        "Away period #1 is someone else's: only the person away can remove it."
    )
    assert reply(bot, standin, "U0BOB", "away remove 7") == "There is no away period #7."
    assert len(saved(bot)) == 1
    assert reply(bot, standin, "U0BOB", "away").startswith("You have no time away ahead.")


def test_a_period_overlapping_one_of_mine_is_refused(bot, standin):
    reply(bot, standin, "U0ALICE", "away 2026-03-20 2026-03-22")
    text = reply(bot, standin, "U0ALICE", "away 2026-03-22T12:00 2026-03-25")
    assert text == (
        "That overlaps your away period #1; nothing was saved. Remove it first "
        "(`/oncall away remove 1`) or choose times around it."
    )
    assert len(saved(bot)) == 1
    assert reply(bot, standin, "U0ALICE", "away 2026-03-23 2026-03-25").startswith("Away #2:")


def test_help_lists_the_away_forms(bot, standin):
    text = bot.command("U0ALICE", "/oncall", "help").text
    assert "`/oncall away START END`" in text and "`/oncall away remove ID`" in text


def with_people_file(settings_env: dict[str, str], folder: Path, text: str) -> dict[str, str]:
    """The tests' settings with a rotations folder that also holds a people file."""
    shutil.copytree(ROTATIONS, folder)
    (folder / "people.toml").write_text(text, encoding="utf-8")
    return {**settings_env, "ROTATIONS_DIR": str(folder)}


def test_a_people_file_with_errors_stops_the_bot_at_start(settings_env, standin, tmp_path):
    env = with_people_file(
        settings_env, tmp_path / "rotations", '[[people]]\nuser = "U0A"\nnotify = { pager = 1 }\n'
    )
    with pytest.raises(
        ConfigError, match=r"ROTATIONS_DIR has a file with errors: .*people.toml:3: people\[0\]\.notify\.pager: no contact"
    ):
        start_bot(env, standin, ManualClock(START))


def test_the_people_files_periods_are_listed_and_merged_with_those_set_in_slack(
    settings_env, standin, tmp_path
):
    text = (
        '[[people]]\nuser = "alice@example.com"\n'
        "away = [{ start = 2026-03-30T00:00:00-07:00, end = 2026-04-03T00:00:00-07:00 },\n"
        "        { start = 2026-03-01T00:00:00-08:00, end = 2026-03-02T00:00:00-08:00 }]\n"
    )
    env = with_people_file(settings_env, tmp_path / "rotations", text)
    served, stop = start_bot(env, standin, ManualClock(START))
    try:
        reply(served, standin, "U0ALICE", "away 2026-03-20")
        assert reply(served, standin, "U0ALICE", "away").splitlines() == [
            "*Your time away* (times in America/Los_Angeles)",
            "#1 · Fri 20 Mar 2026 00:00 → Sat 21 Mar 2026 00:00",
            "people file · Mon 30 Mar 2026 00:00 → Fri 03 Apr 2026 00:00",
            "Remove one with `/oncall away remove ID`.",
        ]
        with served.rt.storage.connect() as connection:
            periods = away_periods(
                db_session=connection,
                people_file=served.rt.people_file,
                resolve=served.rt.people.resolve,
            )
            assert periods == {
                "U0ALICE": (
                    Away(utc(2026, 3, 1, 8), utc(2026, 3, 2, 8)),
                    Away(utc(2026, 3, 20, 7), utc(2026, 3, 21, 7), id=1),
                    Away(utc(2026, 3, 30, 7), utc(2026, 4, 3, 7)),
                )
            }
            # Without resolve the people file's period stays under the e-mail, which users leaves out.
            upcoming = away_periods(
                db_session=connection,
                people_file=served.rt.people_file,
                users={"U0ALICE"},
                ending_after=START,
            )
            assert upcoming == {"U0ALICE": (Away(utc(2026, 3, 20, 7), utc(2026, 3, 21, 7), id=1),)}
    finally:
        stop()


def test_the_people_files_time_zone_wins_over_slacks(settings_env, standin, tmp_path):
    text = (
        '[[people]]\nuser = "Alice@Example.com"\ntimezone = "Asia/Singapore"\n\n'
        '[[people]]\nuser = "U0BOB"\ntimezone = "Asia/Tokyo"\n'
    )
    served, stop = start_bot(
        with_people_file(settings_env, tmp_path / "rotations", text), standin, ManualClock(START)
    )
    try:
        text = reply(served, standin, "U0ALICE", "away 2026-03-12")
        assert text.startswith("Away #1: Thu 12 Mar 2026 00:00 → Fri 13 Mar 2026 00:00 (Asia/Sing")
        assert saved(served) == [("U0ALICE", utc(2026, 3, 11, 16), utc(2026, 3, 12, 16))]
        assert "(Asia/Tokyo)" in reply(served, standin, "U0BOB", "away 2026-03-12")
        assert "until Wed 11 Mar 09:00 JST (00:00 UTC)" in reply(
            served, standin, "U0BOB", "payments"
        )
    finally:
        stop()
