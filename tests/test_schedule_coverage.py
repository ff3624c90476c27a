"""Coverage findings: each gap and overlap found in UTC, and recurring ones grouped into runs."""

from datetime import UTC, datetime, timedelta
from textwrap import dedent

from bot.schedule import coverage_findings, group_findings, parse_rotation


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def rotation_from(text: str):
    return parse_rotation(dedent(text), "rotations/test.toml")


def test_a_24_hour_region_leaves_no_gaps_even_across_clock_changes():
    rotation = rotation_from("""
        name = "always"
        start = 2026-01-05
        handoff = "weekly"
        [[regions]]
        name = "r"
        timezone = "Australia/Lord_Howe"
        hours = "09:00-09:00"
        members = ["A"]
    """)
    assert coverage_findings(rotation, utc(2026, 1, 1), utc(2027, 1, 1)) == []


def test_weekend_gap_of_a_weekday_region_recurs_weekly_as_one_run():
    rotation = rotation_from("""
        name = "office"
        start = 2026-01-05
        handoff = "daily"
        [[regions]]
        name = "berlin"
        timezone = "Europe/Berlin"
        hours = "00:00-00:00"
        days = "mon-fri"
        members = ["A", "B"]
    """)
    findings = coverage_findings(rotation, utc(2026, 1, 5), utc(2026, 2, 2))
    assert {f.kind for f in findings} == {"gap"}
    assert (findings[0].start, findings[0].end) == (utc(2026, 1, 9, 23), utc(2026, 1, 11, 23))
    (run,) = group_findings(findings)
    assert (run.count, run.every) == (4, timedelta(days=7))
    assert run.last.start == utc(2026, 1, 30, 23)
    assert "berlin keeps the pager until its next window starts" in run.first.message


def test_three_regions_overlapping_are_named_with_the_one_holding_the_pager():
    rotation = rotation_from("""
        name = "crowd"
        start = 2026-01-05
        handoff = "weekly"
        [[regions]]
        name = "a"
        timezone = "UTC"
        hours = "00:00-00:00"
        members = ["A"]
        [[regions]]
        name = "b"
        timezone = "UTC"
        hours = "08:00-12:00"
        members = ["B"]
        [[regions]]
        name = "c"
        timezone = "UTC"
        hours = "10:00-11:00"
        members = ["C"]
    """)
    findings = coverage_findings(rotation, utc(2026, 1, 6), utc(2026, 1, 7))
    assert [(f.start.hour, f.end.hour, f.regions) for f in findings] == [
        (8, 10, ("a", "b")),
        (10, 11, ("a", "b", "c")),
        (11, 12, ("a", "b")),
    ]
    assert (
        findings[1].message
        == "a, b and c are all scheduled for 1h; c (started last) holds the pager"
    )


def test_findings_are_clipped_to_the_checked_interval():
    rotation = rotation_from("""
        name = "day"
        start = 2026-01-05
        handoff = "weekly"
        [[regions]]
        name = "only"
        timezone = "UTC"
        hours = "09:00-17:00"
        members = ["A"]
    """)
    findings = coverage_findings(rotation, utc(2026, 1, 6, 20), utc(2026, 1, 7, 3))
    assert [(f.kind, f.start, f.end) for f in findings] == [
        ("gap", utc(2026, 1, 6, 20), utc(2026, 1, 7, 3))
    ]
    assert findings[0].message == "no region is scheduled for 7h; only keeps the pager"


def test_separate_runs_of_the_same_hole_months_apart_stay_separate():
    rotation = rotation_from("""
        name = "sun"
        start = 2026-01-05
        handoff = "weekly"
        [[regions]]
        name = "dublin"
        timezone = "Europe/Dublin"
        hours = "09:00-17:00"
        members = ["E"]
        [[regions]]
        name = "la"
        timezone = "America/Los_Angeles"
        hours = "09:00-17:00"
        members = ["U"]
    """)
    overlaps = [
        f
        for f in coverage_findings(rotation, utc(2026, 1, 1), utc(2027, 1, 1))
        if f.kind == "overlap"
    ]
    runs = [
        (r.first.start.date().isoformat(), r.last.start.date().isoformat(), r.count)
        for r in group_findings(overlaps)
    ]
    assert runs == [("2026-03-08", "2026-03-28", 21), ("2026-10-25", "2026-10-31", 7)]
