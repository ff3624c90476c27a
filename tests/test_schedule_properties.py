"""Properties of the engine over random rotations, zones and dates (hypothesis)."""

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.schedule import (
    Override,
    Region,
    Rotation,
    coverage_findings,
    handoff_instants,
    scheduled_windows,
    shifts_between,
    utc_to_local,
    who_is_on_call,
)

ZONES = [
    "UTC",
    "America/Los_Angeles",
    "Europe/Dublin",  # negative DST in tzdata
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute change
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/Santiago",  # midnight skipped
    "America/Havana",  # midnight skipped
    "America/St_Johns",  # -03:30
    "Pacific/Kiritimati",  # +14
    "Pacific/Pago_Pago",  # -11
    "Africa/Casablanca",  # clocks change around Ramadan
    "Antarctica/Troll",  # two-hour change
]
# The 2026 clock changes worth landing on, plus a spread of ordinary days.
HOT_SPOTS = [
    datetime(2026, 3, 8, 10, tzinfo=UTC),
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),
    datetime(2026, 9, 6, 4, tzinfo=UTC),
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 11, 1, 9, tzinfo=UTC),
]
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)

clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 7]))


@st.composite
def rotations(draw, handoff=None):
    """A random rotation of 1-3 regions with distinct member names."""
    count = draw(st.integers(1, 3))
    regions = []
    for index in range(count):
        members = draw(st.integers(1, 4))
        regions.append(
            Region(
                name=f"r{index}",
                timezone=draw(st.sampled_from(ZONES)),
                hours=(draw(clock_times), draw(clock_times)),
                days=draw(st.frozensets(st.integers(0, 6), min_size=1)),
                members=tuple(f"r{index}m{m}" for m in range(members)),
            )
        )
    return Rotation(
        name="random",
        start=draw(st.dates(date(2025, 6, 1), date(2026, 12, 31))),
        handoff=handoff or draw(st.sampled_from(["daily", "weekly"])),
        regions=tuple(regions),
    )


@st.composite
def intervals(draw):
    """A UTC interval of up to ten days, often straddling a 2026 clock change."""
    near_change = st.builds(
        lambda spot, hours: spot + timedelta(hours=hours),
        st.sampled_from(HOT_SPOTS),
        st.integers(-72, 24),
    )
    anywhere = st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))
    start = draw(st.one_of(near_change, anywhere)).replace(second=0, microsecond=0)
    return start, start + timedelta(minutes=draw(st.integers(60, 10 * 24 * 60)))


def sample_instants(start: datetime, end: datetime, count: int = 25) -> list[datetime]:
    step = (end - start) / count
    return [start + step * i for i in range(count)]


def expected_holder(rotation: Rotation, at: datetime) -> tuple[str, str]:
    """(region, user) on call at `at`, worked out from raw windows by brute force."""
    windows = scheduled_windows(rotation, at - timedelta(days=10), at + timedelta(days=1))
    rank = {region.name: i for i, region in enumerate(rotation.regions)}
    covering = [w for w in windows if w.start <= at < w.end]
    if not covering:
        # Nobody scheduled: whoever held the pager when the last window ended keeps it.
        last_end = max(w.end for w in windows if w.end <= at)
        covering = [w for w in windows if w.end == last_end]
    best = max(covering, key=lambda w: (w.start, -rank[w.region]))
    return best.region, best.user


def expected_turn(rotation: Rotation, region: Region, day: date) -> int:
    """Turn number of region's window on local day, counted one day at a time from the anchor."""
    weekly = rotation.handoff == "weekly"
    count, cursor = 0, rotation.start
    while cursor < day:  # a turn starts on each Monday (weekly) or active day (daily) passed
        if not weekly and cursor.weekday() in region.days:
            count += 1
        cursor += timedelta(days=1)
        if weekly and cursor.weekday() == 0:
            count += 1
    while cursor > day:
        if weekly and cursor.weekday() == 0:
            count -= 1
        cursor -= timedelta(days=1)
        if not weekly and cursor.weekday() in region.days:
            count -= 1
    return count


@PROPERTY_SETTINGS
@given(rotations(), intervals())
def test_effective_shifts_meet_without_gap_or_overlap(rotation, interval):
    start, end = interval
    shifts = shifts_between(rotation, start, end)
    assert shifts[0].start == start and shifts[-1].end == end
    for before, after in pairwise(shifts):
        assert before.end == after.start
        assert (before.region, before.user) != (after.region, after.user)
    assert all(shift.start < shift.end for shift in shifts)


@PROPERTY_SETTINGS
@given(rotations(), intervals())
def test_exactly_one_person_is_on_call_at_every_instant(rotation, interval):
    start, end = interval
    shifts = shifts_between(rotation, start, end)
    for at in sample_instants(start, end):
        holding = [shift for shift in shifts if shift.covers(at)]
        assert len(holding) == 1
        single = who_is_on_call(rotation, at)
        assert single.covers(at)
        assert (single.region, single.user) == (holding[0].region, holding[0].user)
        assert (single.region, single.user) == expected_holder(rotation, at)


@PROPERTY_SETTINGS
@given(rotations(), intervals())
def test_each_region_takes_turns_in_member_order(rotation, interval):
    start, end = interval
    for window in scheduled_windows(rotation, start, end):
        region = rotation.region(window.region)
        day = utc_to_local(region.timezone, window.start).date()
        turn = expected_turn(rotation, region, day)
        assert window.user == region.members[turn % len(region.members)]


@PROPERTY_SETTINGS
@given(rotations(), intervals(), st.data())
def test_overrides_win_inside_their_interval_and_change_nothing_outside(rotation, interval, data):
    start, end = interval
    offset = data.draw(st.integers(0, int((end - start).total_seconds() // 60) - 1))
    length = data.draw(st.integers(1, 48 * 60))
    cover = Override(
        "cover", start + timedelta(minutes=offset), start + timedelta(minutes=offset + length)
    )
    plain = shifts_between(rotation, start, end)
    overridden = shifts_between(rotation, start, end, [cover])
    for at in sample_instants(start, end):
        (was,) = [s for s in plain if s.covers(at)]
        (now,) = [s for s in overridden if s.covers(at)]
        if cover.start <= at < cover.end:
            assert (now.user, now.region, now.is_override) == ("cover", was.region, True)
        else:
            assert (now.user, now.region, now.is_override) == (was.user, was.region, False)


@PROPERTY_SETTINGS
@given(rotations(), intervals())
def test_handoffs_are_exactly_the_changes_of_person_or_region(rotation, interval):
    start, end = interval
    instants = handoff_instants(rotation, start, end)
    shifts = shifts_between(rotation, start, end + timedelta(seconds=1))
    assert instants == [s.start for s in shifts[1:] if s.start <= end]
    assert all(start < at <= end for at in instants)


@PROPERTY_SETTINGS
@given(rotations(), intervals())
def test_coverage_findings_mark_exactly_the_uncovered_and_doubly_covered_instants(
    rotation, interval
):
    start, end = interval
    findings = coverage_findings(rotation, start, end)
    windows = scheduled_windows(rotation, start, end)
    for at in sample_instants(start, end):
        covering = sum(1 for w in windows if w.start <= at < w.end)
        kinds = {f.kind for f in findings if f.start <= at < f.end}
        assert kinds == ({"gap"} if covering == 0 else {"overlap"} if covering > 1 else set())
