"""Window edges and shift lengths at the 2026 clock changes of zones with awkward rules."""

from datetime import UTC, datetime, timedelta
from textwrap import dedent

import pytest
from freezegun import freeze_time

from bot.schedule import (
    local_to_utc,
    parse_rotation,
    scheduled_windows,
    utc_now,
    who_is_on_call,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def single_region(
    zone: str,
    hours: str,
    *,
    days: str = "mon-sun",
    handoff: str = "daily",
    members: str = '"A", "B"',
    start: str = "2026-01-05",
):
    """A one-region rotation, written as its file would be."""
    text = f"""
        name = "solo"
        start = {start}
        handoff = "{handoff}"
        [[regions]]
        name = "here"
        timezone = "{zone}"
        hours = "{hours}"
        days = "{days}"
        members = [{members}]
    """
    return parse_rotation(dedent(text), "solo.toml")


def window_on(rotation, day_start: datetime) -> tuple[datetime, datetime]:
    """The UTC edges of the one scheduled window starting within the given UTC day."""
    windows = scheduled_windows(rotation, day_start, day_start + timedelta(days=1))
    (window,) = [w for w in windows if day_start <= w.start < day_start + timedelta(days=1)]
    return window.start, window.end


# America/Los_Angeles: 2026-03-08 02:00 PST -> 03:00 PDT, 2026-11-01 02:00 PDT -> 01:00 PST.


def test_window_edge_in_spring_forward_gap_moves_to_clock_change():
    rotation = single_region("America/Los_Angeles", "02:30-10:00")
    start, end = window_on(rotation, utc(2026, 3, 8))
    assert start == utc(2026, 3, 8, 10, 0)  # 03:00 PDT, the moment clocks jumped
    assert end == utc(2026, 3, 8, 17, 0)  # 10:00 PDT


def test_ambiguous_fall_back_edge_uses_first_occurrence():
    rotation = single_region("America/Los_Angeles", "01:30-09:00")
    start, end = window_on(rotation, utc(2026, 11, 1))
    assert start == utc(2026, 11, 1, 8, 30)  # 01:30 PDT, not 01:30 PST an hour later
    assert end - start == timedelta(hours=8, minutes=30)


def test_window_crossing_midnight_during_fall_back_lasts_an_extra_hour():
    rotation = single_region("America/Los_Angeles", "22:00-06:00", days="sat")
    start, end = window_on(rotation, utc(2026, 11, 1))
    assert (start, end) == (utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 14, 0))
    assert end - start == timedelta(hours=9)


def test_window_crossing_midnight_during_spring_forward_loses_an_hour():
    rotation = single_region("America/Los_Angeles", "22:00-06:00", days="sat")
    start, end = window_on(rotation, utc(2026, 3, 8))
    assert (start, end) == (utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 13, 0))


def test_weekly_turn_lasts_167_hours_across_spring_forward_and_169_across_fall_back():
    rotation = single_region("America/Los_Angeles", "09:00-09:00", handoff="weekly")
    spring = who_is_on_call(rotation, utc(2026, 3, 8, 12))
    autumn = who_is_on_call(rotation, utc(2026, 11, 1, 12))
    assert spring.start == utc(2026, 3, 2, 17)  # Monday 09:00 PST
    assert spring.end == utc(2026, 3, 9, 16)  # Monday 09:00 PDT
    assert spring.duration == timedelta(hours=167)
    assert autumn.duration == timedelta(hours=169)


def test_clock_change_instant_is_the_handoff_seen_under_a_frozen_clock():
    rotation = single_region("America/Los_Angeles", "02:30-10:00", members='"A"')
    with freeze_time("2026-03-08T10:00:00Z"):
        shift = who_is_on_call(rotation, utc_now())
    assert shift.user == "A"
    assert shift.start <= utc(2026, 3, 8, 10) < shift.end


# Europe/Dublin: 2026-03-29 01:00 GMT -> 02:00 IST, 2026-10-25 02:00 IST -> 01:00 GMT.
# tzdata marks Irish *winter* time as the DST one, so "is_dst=True" is the wrong fold there.


def test_dublin_spring_forward_edge_moves_to_clock_change():
    assert local_to_utc("Europe/Dublin", datetime(2026, 3, 29, 1, 30)) == utc(2026, 3, 29, 1)


def test_dublin_fall_back_edge_uses_first_occurrence_despite_negative_dst():
    assert local_to_utc("Europe/Dublin", datetime(2026, 10, 25, 1, 30)) == utc(2026, 10, 25, 0, 30)


def test_dublin_office_day_moves_an_hour_earlier_in_utc_in_summer():
    rotation = single_region("Europe/Dublin", "09:00-17:00")
    assert window_on(rotation, utc(2026, 3, 28)) == (utc(2026, 3, 28, 9), utc(2026, 3, 28, 17))
    assert window_on(rotation, utc(2026, 3, 29)) == (utc(2026, 3, 29, 8), utc(2026, 3, 29, 16))


# Australia/Sydney: 2026-04-05 03:00 AEDT -> 02:00 AEST, 2026-10-04 02:00 AEST -> 03:00 AEDT.


def test_sydney_spring_forward_edge_moves_to_clock_change():
    rotation = single_region("Australia/Sydney", "02:30-10:00")
    start, end = window_on(rotation, utc(2026, 10, 3))
    assert start == utc(2026, 10, 3, 16)  # 03:00 AEDT
    assert end == utc(2026, 10, 3, 23)  # 10:00 AEDT


def test_sydney_fall_back_edge_uses_first_occurrence():
    assert local_to_utc("Australia/Sydney", datetime(2026, 4, 5, 2, 30)) == utc(2026, 4, 4, 15, 30)


def test_sydney_night_shift_over_fall_back_lasts_nine_hours():
    rotation = single_region("Australia/Sydney", "22:00-06:00", days="sat")
    start, end = window_on(rotation, utc(2026, 4, 4))
    assert (start, end) == (utc(2026, 4, 4, 11), utc(2026, 4, 4, 20))


# Australia/Lord_Howe moves by 30 minutes: 2026-04-05 02:00 -> 01:30, 2026-10-04 02:00 -> 02:30.


def test_lord_howe_half_hour_gap_edge_moves_to_clock_change():
    rotation = single_region("Australia/Lord_Howe", "02:15-10:00")
    start, end = window_on(rotation, utc(2026, 10, 3))
    assert start == utc(2026, 10, 3, 15, 30)  # 02:30 +11, the moment clocks jumped
    assert end == utc(2026, 10, 3, 23)  # 10:00 +11


def test_lord_howe_half_hour_fold_edge_uses_first_occurrence():
    assert local_to_utc("Australia/Lord_Howe", datetime(2026, 4, 5, 1, 45)) == utc(
        2026, 4, 4, 14, 45
    )


def test_lord_howe_day_is_half_an_hour_shorter_when_clocks_go_forward():
    rotation = single_region("Australia/Lord_Howe", "09:00-09:00")
    start, end = window_on(rotation, utc(2026, 10, 2, 12))
    assert end - start == timedelta(hours=23, minutes=30)


# Asia/Kolkata: +05:30 all year, no clock changes.


@pytest.mark.parametrize(
    "day", [utc(2026, 1, 15), utc(2026, 3, 8), utc(2026, 10, 25), utc(2026, 11, 1)]
)
def test_kolkata_window_sits_at_the_same_half_hour_offset_all_year(day):
    rotation = single_region("Asia/Kolkata", "09:00-17:00")
    start, end = window_on(rotation, day)
    assert (start - day, end - day) == (
        timedelta(hours=3, minutes=30),
        timedelta(hours=11, minutes=30),
    )


# America/Santiago: clocks jump from 00:00 to 01:00 on 2026-09-06 (local midnight never
# happens) and fall back from 00:00 to 23:00 on 2026-04-05.


def test_santiago_window_starting_at_missing_midnight_starts_when_clocks_jump():
    rotation = single_region("America/Santiago", "00:00-08:00")
    start, end = window_on(rotation, utc(2026, 9, 6))
    assert start == utc(2026, 9, 6, 4)  # 01:00 -03
    assert end == utc(2026, 9, 6, 11)  # 08:00 -03
    assert window_on(rotation, utc(2026, 9, 5)) == (utc(2026, 9, 5, 4), utc(2026, 9, 5, 12))


def test_santiago_day_with_missing_midnight_still_uses_up_one_daily_turn():
    rotation = single_region("America/Santiago", "00:00-08:00", members='"A", "B"')
    windows = scheduled_windows(rotation, utc(2026, 9, 5), utc(2026, 9, 8))
    # 2026-09-05 is 243 days after the 2026-01-05 anchor: an odd turn, so B's.
    assert [(w.start.day, w.user) for w in windows] == [(5, "B"), (6, "A"), (7, "B")]


def test_santiago_late_evening_edge_in_fall_back_uses_first_occurrence():
    assert local_to_utc("America/Santiago", datetime(2026, 4, 4, 23, 30)) == utc(2026, 4, 5, 2, 30)
