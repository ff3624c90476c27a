"""Turns that are not plain: windows lost to a clock change or a holiday, handoffs every N
days or weeks, members away covered by the next in turn, coverage a rotation intends."""

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from textwrap import dedent

import pytest

from bot.schedule import (
    Away,
    coverage_findings,
    holiday_findings,
    parse_rotation,
    shifts_between,
    uncovered_findings,
    who_is_on_call,
)
from bot.schedule.parse import RotationError
from tests.test_schedule_cli import run  # noqa: F401  (the CLI fixture)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def rotation_of(text: str):
    return parse_rotation(dedent(text), "solo.toml")


MAINTENANCE = """
    name = "maint"
    start = 2026-01-04
    handoff = "daily"
    [[regions]]
    name = "ny"
    timezone = "America/New_York"
    hours = "02:00-03:00"
    days = "sun"
    members = ["UA", "UB", "UC"]
"""


def test_a_window_lost_to_spring_forward_leaves_the_previous_holder_on_call_all_week():
    # 2026-03-08 02:00-03:00 New York does not exist: that Sunday's turn (UA's) is used up and
    # UC, whose window on 2026-03-01 was the last to begin, holds the pager until 2026-03-15.
    rotation = rotation_of(MAINTENANCE)
    for day in range(2, 15):
        assert who_is_on_call(rotation, utc(2026, 3, day, 12)).user == "UC"
    assert who_is_on_call(rotation, utc(2026, 3, 15, 7)).user == "UB"


@pytest.mark.parametrize("first", ["2026-03-09", "2026-03-12", "2026-03-13", "2026-03-14"])
def test_the_answer_for_a_day_does_not_depend_on_where_the_listing_starts(first):
    rotation = rotation_of(MAINTENANCE)
    day = utc(2026, 3, 14)
    listed = shifts_between(rotation, datetime.fromisoformat(first + "T00:00+00:00"), day + timedelta(days=1))
    assert [s.user for s in listed if s.end > day] == ["UC"]
    assert shifts_between(rotation, day, day + timedelta(days=1))[0].start == day


def test_the_shift_in_progress_is_found_however_long_ago_it_began():
    # One window a year (New Year's Day in Singapore): July is still last January's holder.
    rotation = rotation_of("""
        name = "yearly"
        start = 2026-01-01
        handoff = "daily"
        [[regions]]
        name = "sg"
        timezone = "Asia/Singapore"
        hours = "09:00-10:00"
        days = "thu"
        members = ["UA", "UB"]
        holidays = "SG"
    """)
    # Every Thursday that is a Singapore holiday has no window; the turn before holds the pager.
    good_friday_week = who_is_on_call(rotation, utc(2026, 4, 3, 12))
    assert good_friday_week.start <= utc(2026, 4, 2, 1)


def test_apia_skipped_day_uses_the_previous_window():
    # Samoa skipped 2011-12-30 entirely: its window that day never ran.
    rotation = rotation_of("""
        name = "apia"
        start = 2011-12-01
        handoff = "daily"
        [[regions]]
        name = "ws"
        timezone = "Pacific/Apia"
        hours = "09:00-10:00"
        days = "fri"
        members = ["UA", "UB"]
    """)
    shift = who_is_on_call(rotation, utc(2012, 1, 3))
    assert shift.start == utc(2011, 12, 23, 19)  # Fri 23 Dec 09:00 at UTC-10
    listed = shifts_between(rotation, utc(2012, 1, 1), utc(2012, 1, 2))
    assert [(s.user, s.start) for s in listed] == [(shift.user, utc(2012, 1, 1))]


@pytest.mark.parametrize("handoff, expected", [
    ("every 2 days", ["A", "A", "B", "B", "A", "A"]),
    ("Daily", ["A", "B", "A", "B", "A", "B"]),
    ("EVERY 3 DAYS", ["A", "A", "A", "B", "B", "B"]),
])
def test_a_turn_lasts_n_active_days_counted_from_start(handoff, expected):
    rotation = rotation_of(f"""
        name = "n"
        start = 2026-03-02
        handoff = "{handoff}"
        [[regions]]
        name = "here"
        timezone = "UTC"
        hours = "09:00-17:00"
        days = "mon-fri"
        members = ["A", "B"]
    """)
    weekdays = [utc(2026, 3, d, 12) for d in (2, 3, 4, 5, 6, 9)]  # Mon..Fri, Mon
    assert [who_is_on_call(rotation, at).user for at in weekdays] == expected


def test_a_turn_lasts_n_weeks_anchored_at_the_start_week():
    rotation = rotation_of("""
        name = "n"
        start = 2026-03-04
        handoff = "every 2 weeks"
        [[regions]]
        name = "here"
        timezone = "UTC"
        hours = "00:00-00:00"
        members = ["A", "B"]
    """)
    mondays = [utc(2026, 3, 2) + timedelta(weeks=k, hours=12) for k in range(6)]
    assert [who_is_on_call(rotation, at).user for at in mondays] == ["A", "A", "B", "B", "A", "A"]


@pytest.mark.parametrize("handoff", ["fortnightly", "every 0 days", "every two weeks", "every 2 months"])
def test_an_unknown_handoff_is_refused(handoff):
    with pytest.raises(RotationError, match="is not a handoff"):
        rotation_of(MAINTENANCE.replace('"daily"', f'"{handoff}"'))


FOLLOW = """
    name = "fts"
    start = 2026-12-21
    handoff = "weekly"
    [[regions]]
    name = "dublin"
    timezone = "Europe/Dublin"
    hours = "08:00-20:00"
    days = "mon-fri"
    members = ["UD1", "UD2", "UD3"]
    holidays = "ie"
    [[regions]]
    name = "sf"
    timezone = "America/Los_Angeles"
    hours = "11:00-23:00"
    days = "mon-fri"
    members = ["US1", "US2"]
"""


def test_a_holiday_removes_the_regions_window_and_follow_the_sun_takes_over():
    rotation = rotation_of(FOLLOW)
    assert rotation.regions[0].holidays == "IE"
    christmas = utc(2026, 12, 25, 10)  # Friday: Dublin's window would run
    assert who_is_on_call(rotation, christmas).region == "sf"  # Thursday's sf shift carries on
    assert who_is_on_call(rotation, utc(2026, 12, 24, 10)).user == "UD1"
    # The holiday uses up no turn of its own: the next week is still the next member's.
    assert who_is_on_call(rotation, utc(2026, 12, 29, 10)).user == "UD2"
    (finding,) = [f for f in holiday_findings(rotation, utc(2026, 12, 24), utc(2026, 12, 26))
                  if "Christmas" in f.message]
    assert finding.kind == "holiday" and finding.start == utc(2026, 12, 25)
    assert "dublin has no window on Fri 2026-12-25, Christmas Day (IE)" == finding.message


@pytest.mark.parametrize("code", ["XX", "IE-ZZ", ""])
def test_an_unknown_holiday_code_is_one_problem_with_its_line(code):
    with pytest.raises(RotationError) as raised:
        rotation_of(FOLLOW.replace('"ie"', f'"{code}"'))
    (problem,) = raised.value.problems
    assert problem.field == "regions[0].holidays" and problem.line == 11


def away(**periods: list[tuple[datetime, datetime]]):
    return {member: [Away(start, end) for start, end in spans] for member, spans in periods.items()}


def test_a_member_away_for_part_of_a_shift_is_covered_for_exactly_that_part():
    rotation = rotation_of(FOLLOW)
    day = utc(2026, 12, 22)  # Tuesday: UD1's week in Dublin (08:00-20:00 UTC in winter)
    gone = away(UD1=[(utc(2026, 12, 22, 10), utc(2026, 12, 22, 12))])
    listed = [s for s in shifts_between(rotation, day + timedelta(hours=8), day + timedelta(hours=19), away=gone)]
    assert [(s.user, s.covering_for, s.start.hour, s.end.hour) for s in listed] == [
        ("UD1", None, 8, 10), ("UD2", "UD1", 10, 12), ("UD1", None, 12, 19),
    ]


def test_the_next_member_in_turn_order_who_is_not_away_covers():
    rotation = rotation_of(FOLLOW)
    span = (utc(2026, 12, 22, 9), utc(2026, 12, 22, 11))
    shift = who_is_on_call(rotation, utc(2026, 12, 22, 10), away=away(UD1=[span], UD2=[span]))
    assert (shift.user, shift.covering_for) == ("UD3", "UD1")
    assert (shift.start, shift.end) == span


def test_a_shift_nobody_can_cover_stays_with_the_member_and_is_reported():
    rotation = rotation_of(FOLLOW)
    span = (utc(2026, 12, 22, 9), utc(2026, 12, 22, 11))
    everyone = away(UD1=[span], UD2=[span], UD3=[span])
    assert who_is_on_call(rotation, utc(2026, 12, 22, 10), away=everyone).user == "UD1"
    (finding,) = uncovered_findings(rotation, utc(2026, 12, 22), utc(2026, 12, 23), away=everyone)
    assert (finding.kind, finding.start, finding.end) == ("uncovered", *span)
    assert finding.message == "UD1 is away and nobody else in dublin can cover"


def test_time_off_in_the_people_file_rides_on_the_rotation():
    rotation = dataclasses.replace(
        rotation_of(FOLLOW), time_off=(("UD1", (Away(utc(2026, 12, 22), utc(2026, 12, 23)),)),)
    )
    shift = who_is_on_call(rotation, utc(2026, 12, 22, 10))
    assert (shift.user, shift.covering_for) == ("UD2", "UD1")


BUSINESS_HOURS = """\
name = "office"
start = 2026-01-05
handoff = "weekly"
intended = ["Gaps"]
[[regions]]
name = "dublin"
timezone = "Europe/Dublin"
hours = "09:00-17:00"
days = "mon-fri"
members = ["UD1"]
"""


def test_check_leaves_out_intended_gaps_unless_asked_for_all(run, tmp_path):  # noqa: F811
    (tmp_path / "office.toml").write_text(BUSINESS_HOURS, encoding="utf-8")
    code, out, _ = run("check", tmp_path, "--from", "2026-03-02", "--days", "7", "--json", "--strict")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run("check", tmp_path, "--from", "2026-03-02", "--days", "7", "--json", "--strict", "--all")
    assert code == 1 and {f["kind"] for f in json.loads(out)} == {"gap"}
    rotation = rotation_of(BUSINESS_HOURS)
    assert coverage_findings(rotation, utc(2026, 3, 2), utc(2026, 3, 3))  # the engine still sees them


def test_check_lists_holidays_as_information(run, tmp_path):  # noqa: F811
    (tmp_path / "office.toml").write_text(BUSINESS_HOURS + 'holidays = "IE"\n', encoding="utf-8")
    code, out, _ = run("check", tmp_path, "--from", "2026-03-16", "--days", "3", "--json", "--strict")
    assert code == 0
    (finding,) = json.loads(out)
    assert finding["kind"] == "holiday" and "Saint Patrick's Day" in finding["message"]


def test_schedule_json_says_who_covers_and_who_overrides(run, tmp_path, monkeypatch):  # noqa: F811
    text = dedent(FOLLOW) + dedent("""
        [[overrides]]
        user = "UX"
        start = 2026-12-22T18:00:00Z
        end = 2026-12-22T19:00:00Z
    """)
    (tmp_path / "fts.toml").write_text(text, encoding="utf-8")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code, out, _ = run("schedule", "fts", "--dir", tmp_path, "--from", "2026-12-22T17:00Z", "--days", "1", "--json")
    assert code == 0
    entries = json.loads(out)
    assert entries[1] == {"start": "2026-12-22T18:00:00Z", "end": "2026-12-22T19:00:00Z", "user": "UX",
                          "region": "dublin", "override": True}
    assert all("covering_for" not in e for e in entries)


@pytest.mark.parametrize("argv", [
    ["schedule", "fts", "--from", "9999-12-30"],
    ["schedule", "fts", "--from", "0001-01-01"],
    ["check", "--from", "9999-12-30"],
    ["check", "--from", "0001-01-01"],
])
def test_dates_the_calendar_cannot_hold_are_one_line_and_exit_2(run, tmp_path, argv):  # noqa: F811
    (tmp_path / "fts.toml").write_text(dedent(FOLLOW), encoding="utf-8")
    argv = [*argv[:2], "--dir", tmp_path, *argv[2:]] if argv[0] == "schedule" else [argv[0], tmp_path, *argv[1:]]
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "cannot compute shifts around" in err


def test_holiday_dates_are_the_packages():
    from bot.schedule.windows import holiday_dates

    assert date(2026, 3, 17) in holiday_dates("IE", 2026, 2026)
