"""Who holds the pager: turns, follow-the-sun precedence, gap extension, overrides, queries."""

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from textwrap import dedent

import pytest

from bot.schedule import (
    Override,
    build_timeline,
    default_rotation,
    handoff_instants,
    next_shifts_for,
    parse_rotation,
    scheduled_windows,
    shifts_between,
    who_is_on_call,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def rotation_from(text: str, path: str = "rotations/test.toml"):
    return parse_rotation(dedent(text), path)


FOLLOW_THE_SUN = """
    name = "payments"
    start = 2026-01-05
    handoff = "weekly"
    [[regions]]
    name = "apac"
    timezone = "Asia/Singapore"
    hours = "08:00-16:00"
    members = ["A1", "A2"]
    [[regions]]
    name = "emea"
    timezone = "Europe/Dublin"
    hours = "08:00-16:00"
    members = ["E1", "E2", "E3"]
    [[regions]]
    name = "amer"
    timezone = "America/Los_Angeles"
    hours = "08:00-16:00"
    members = ["U1"]
"""


def test_daily_mon_to_fri_rotation_of_seven_gives_every_member_shifts_in_order():
    rotation = rotation_from("""
        name = "weekdays"
        start = 2026-01-05
        handoff = "daily"
        [[regions]]
        name = "office"
        timezone = "Europe/Berlin"
        hours = "09:00-17:00"
        days = "mon-fri"
        members = ["M1", "M2", "M3", "M4", "M5", "M6", "M7"]
    """)
    windows = scheduled_windows(rotation, utc(2026, 1, 5), utc(2026, 1, 31))
    assert len(windows) == 20  # four working weeks, no weekend windows
    assert [w.user for w in windows] == [f"M{i % 7 + 1}" for i in range(20)]
    assert set(Counter(w.user for w in windows)) == {f"M{i}" for i in range(1, 8)}


def test_weekend_is_held_by_fridays_person_until_monday_morning():
    rotation = rotation_from("""
        name = "weekdays"
        start = 2026-01-05
        handoff = "daily"
        [[regions]]
        name = "office"
        timezone = "UTC"
        hours = "09:00-17:00"
        days = "mon-fri"
        members = ["M1", "M2", "M3", "M4", "M5", "M6", "M7"]
    """)
    weekend = who_is_on_call(rotation, utc(2026, 1, 10, 12))  # Saturday
    assert weekend.user == "M5"  # Friday 9 January is the fifth active day
    assert (weekend.start, weekend.end) == (utc(2026, 1, 9, 9), utc(2026, 1, 12, 9))
    assert who_is_on_call(rotation, utc(2026, 1, 12, 9)).user == "M6"


def test_daily_turns_before_the_anchor_count_backwards():
    rotation = rotation_from("""
        name = "d"
        start = 2026-01-07
        handoff = "daily"
        [[regions]]
        name = "r"
        timezone = "UTC"
        hours = "00:00-00:00"
        members = ["A", "B", "C"]
    """)
    users = [w.user for w in scheduled_windows(rotation, utc(2026, 1, 4), utc(2026, 1, 9))]
    assert users == ["A", "B", "C", "A", "B"]  # Jan 4..8, with Jan 7 (the anchor) = A


def test_weekly_turn_changes_on_the_regions_own_monday():
    rotation = rotation_from(FOLLOW_THE_SUN)
    # Monday 12 Jan 08:00 in Singapore is Monday 00:00 UTC; in Los Angeles it is 16:00 UTC.
    assert who_is_on_call(rotation, utc(2026, 1, 12, 0, 0)).user == "A2"
    assert who_is_on_call(rotation, utc(2026, 1, 11, 23, 59)).user == "U1"
    assert who_is_on_call(rotation, utc(2026, 1, 12, 8)).user == "E2"
    assert who_is_on_call(rotation, utc(2026, 1, 19, 8)).user == "E3"
    assert who_is_on_call(rotation, utc(2026, 1, 26, 8)).user == "E1"


def test_follow_the_sun_hands_over_when_the_next_region_comes_online():
    rotation = rotation_from(FOLLOW_THE_SUN)
    shifts = shifts_between(rotation, utc(2026, 3, 10), utc(2026, 3, 11))
    assert [(s.region, s.start.hour, s.end.hour) for s in shifts] == [
        ("apac", 0, 8),
        ("emea", 8, 15),  # Los Angeles is on PDT already and starts at 15:00 UTC
        ("amer", 15, 0),
    ]
    assert shifts[-1].end == utc(2026, 3, 11)


def test_nobody_scheduled_means_the_last_person_keeps_the_pager():
    rotation = rotation_from(FOLLOW_THE_SUN)
    # In March Los Angeles ends 16:00 PDT = 23:00 UTC and Singapore starts 00:00 UTC.
    in_gap = who_is_on_call(rotation, utc(2026, 3, 10, 23, 30))
    assert in_gap.region == "amer"
    assert (in_gap.start, in_gap.end) == (utc(2026, 3, 10, 15), utc(2026, 3, 11, 0))


def test_when_the_latest_region_goes_home_an_earlier_one_still_on_shift_takes_back():
    rotation = rotation_from("""
        name = "nested"
        start = 2026-01-05
        handoff = "weekly"
        [[regions]]
        name = "long"
        timezone = "UTC"
        hours = "00:00-12:00"
        members = ["L"]
        [[regions]]
        name = "short"
        timezone = "UTC"
        hours = "04:00-06:00"
        members = ["S"]
    """)
    shifts = shifts_between(rotation, utc(2026, 2, 2), utc(2026, 2, 2, 12))
    assert [(s.user, s.start.hour, s.end.hour) for s in shifts] == [
        ("L", 0, 4),
        ("S", 4, 6),
        ("L", 6, 12),
    ]


def test_regions_starting_at_the_same_instant_go_to_the_one_listed_first():
    rotation = rotation_from("""
        name = "tie"
        start = 2026-01-05
        handoff = "weekly"
        [[regions]]
        name = "first"
        timezone = "Europe/London"
        hours = "09:00-17:00"
        members = ["F"]
        [[regions]]
        name = "second"
        timezone = "UTC"
        hours = "09:00-18:00"
        members = ["S"]
    """)
    assert who_is_on_call(rotation, utc(2026, 1, 6, 10)).user == "F"
    assert who_is_on_call(rotation, utc(2026, 1, 6, 17, 30)).user == "S"


def test_override_from_the_file_replaces_whoever_is_scheduled():
    rotation = rotation_from(
        FOLLOW_THE_SUN
        + """
        [[overrides]]
        user = "COVER"
        start = 2026-03-10T10:00:00+00:00
        end = 2026-03-10T12:00:00+00:00
        reason = "dentist"
    """
    )
    # The week from Monday 9 March is week 9 since the anchor: E1's turn in Dublin.
    shifts = shifts_between(rotation, utc(2026, 3, 10, 8), utc(2026, 3, 10, 15))
    assert [(s.user, s.start.hour, s.end.hour, s.is_override) for s in shifts] == [
        ("E1", 8, 10, False),
        ("COVER", 10, 12, True),
        ("E1", 12, 15, False),
    ]
    assert all(s.region == "emea" for s in shifts)


def test_override_across_a_handoff_keeps_each_regions_name_and_later_overrides_win():
    rotation = rotation_from(FOLLOW_THE_SUN)
    overrides = [
        Override("X", utc(2026, 3, 10, 14), utc(2026, 3, 10, 17)),
        Override("Y", utc(2026, 3, 10, 16), utc(2026, 3, 10, 16, 30)),
    ]
    shifts = shifts_between(rotation, utc(2026, 3, 10, 14), utc(2026, 3, 10, 18), overrides)
    assert [(s.region, s.user, s.start.strftime("%H:%M")) for s in shifts] == [
        ("emea", "X", "14:00"),
        ("amer", "X", "15:00"),
        ("amer", "Y", "16:00"),
        ("amer", "X", "16:30"),
        ("amer", "U1", "17:00"),
    ]


def test_handoffs_are_the_instants_where_person_or_region_changes():
    rotation = rotation_from(FOLLOW_THE_SUN)
    instants = handoff_instants(rotation, utc(2026, 1, 12), utc(2026, 1, 13))
    assert instants == [utc(2026, 1, 12, 8), utc(2026, 1, 12, 16), utc(2026, 1, 13)]


def test_handoffs_ignore_an_override_that_changes_nobody():
    rotation = rotation_from(FOLLOW_THE_SUN)
    same_person = [Override("E1", utc(2026, 3, 10, 9), utc(2026, 3, 10, 10))]
    instants = handoff_instants(rotation, utc(2026, 3, 10, 1), utc(2026, 3, 10, 12), same_person)
    assert instants == [utc(2026, 3, 10, 8)]


def test_next_shifts_of_a_user_include_the_one_under_way_with_its_real_start():
    rotation = rotation_from(FOLLOW_THE_SUN)
    shifts = next_shifts_for(rotation, "A2", utc(2026, 1, 12, 3), limit=3)
    assert [(s.start, s.end) for s in shifts] == [
        (utc(2026, 1, 12, 0), utc(2026, 1, 12, 8)),
        (utc(2026, 1, 13, 0), utc(2026, 1, 13, 8)),
        (utc(2026, 1, 14, 0), utc(2026, 1, 14, 8)),
    ]


def test_next_shifts_of_someone_off_rota_is_empty():
    rotation = rotation_from(FOLLOW_THE_SUN)
    assert next_shifts_for(rotation, "NOBODY", utc(2026, 1, 12), horizon_days=14) == []


def test_timeline_answers_who_is_on_call_like_the_single_query():
    rotation = rotation_from(FOLLOW_THE_SUN)
    timeline = build_timeline(rotation, utc(2026, 3, 1), utc(2026, 4, 15))
    for hours in range(0, 44 * 24, 7):
        at = utc(2026, 3, 1) + timedelta(hours=hours, minutes=13)
        expected = who_is_on_call(rotation, at)
        found = timeline.at(at)
        assert (found.user, found.region) == (expected.user, expected.region)


def test_naive_datetimes_are_refused():
    rotation = rotation_from(FOLLOW_THE_SUN)
    with pytest.raises(ValueError, match="timezone-aware"):
        who_is_on_call(rotation, datetime(2026, 1, 12, 3))
    with pytest.raises(ValueError, match="timezone-aware"):
        shifts_between(rotation, datetime(2026, 1, 12), utc(2026, 1, 13))
    with pytest.raises(ValueError, match="timezone-aware"):
        Override("X", datetime(2026, 1, 12), utc(2026, 1, 13))


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: Python counts its datetimes as naive."""

    def utcoffset(self, dt):
        return None


def test_timeline_refuses_naive_instants_and_answers_any_aware_one():
    timeline = build_timeline(rotation_from(FOLLOW_THE_SUN), utc(2026, 1, 5), utc(2026, 2, 1))
    for naive in (datetime(2026, 1, 12, 3), datetime(2026, 1, 12, 3, tzinfo=NoOffset())):
        with pytest.raises(TypeError, match="no time zone"):
            timeline.at(naive)
    in_singapore = datetime(2026, 1, 12, 9, tzinfo=timezone(timedelta(hours=8)))
    assert timeline.at(in_singapore) == timeline.at(utc(2026, 1, 12, 1))
    with pytest.raises(ValueError, match="outside this timeline"):
        timeline.at(utc(2026, 2, 1))


def test_other_aware_zones_are_accepted_and_answered_in_utc():
    rotation = rotation_from(FOLLOW_THE_SUN)
    plus_eight = timezone(timedelta(hours=8))
    shift = who_is_on_call(rotation, datetime(2026, 1, 12, 9, tzinfo=plus_eight))
    assert shift.user == "A2" and shift.start.tzinfo == UTC


def test_default_rotation_is_the_marked_one_or_the_only_one():
    marked = rotation_from(
        FOLLOW_THE_SUN.replace('handoff = "weekly"', 'handoff = "weekly"\n    default = true')
    )
    other = rotation_from(FOLLOW_THE_SUN.replace('"payments"', '"search"'))
    assert default_rotation({"payments": marked, "search": other}) is marked
    assert default_rotation({"search": other}) is other
    assert default_rotation({"a": other, "b": other}) is None
    assert default_rotation({}) is None
