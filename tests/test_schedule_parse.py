"""Rotation files: what is accepted, and errors that name the file, line, field and fix."""

from datetime import UTC, date, datetime, time
from pathlib import Path
from textwrap import dedent

import pytest

from bot.schedule import RotationError, default_rotation, load_rotations, parse_rotation

EXAMPLE = Path(__file__).resolve().parent.parent / "rotations" / "example-follow-the-sun.toml"

VALID = """\
name = "payments"
description = "Payments primary"
start = 2026-01-05
handoff = "weekly"
channel = "C0PAYMENTS"
usergroup = "S0PAYONCALL"
escalation_minutes = 10
default = true

[[regions]]
name = "apac"
timezone = "Asia/Singapore"
hours = "09:00-17:00"
days = "mon-fri"
members = ["U0APAC1", "U0APAC2"]
"""


def problems_in(text: str, path: str = "rotations/payments.toml") -> list[str]:
    with pytest.raises(RotationError) as caught:
        parse_rotation(dedent(text), path)
    return [str(problem) for problem in caught.value.problems]


def test_shipped_example_is_valid_and_the_default():
    rotations = load_rotations(EXAMPLE.parent)
    rotation = rotations["example-follow-the-sun"]
    assert default_rotation(rotations) is rotation
    assert [r.timezone for r in rotation.regions] == [
        "Asia/Singapore",
        "Europe/Dublin",
        "America/Los_Angeles",
    ]


def test_every_field_is_read():
    rotation = parse_rotation(VALID, "rotations/payments.toml")
    assert rotation.name == "payments"
    assert rotation.start == date(2026, 1, 5)
    assert (rotation.channel, rotation.usergroup, rotation.escalation_minutes) == (
        "C0PAYMENTS",
        "S0PAYONCALL",
        10,
    )
    assert rotation.default is True
    (region,) = rotation.regions
    assert region.hours == (time(9), time(17))
    assert region.days == frozenset(range(5))
    assert region.members == ("U0APAC1", "U0APAC2")


def test_escalation_repeat_defaults_to_none_and_is_read():
    assert parse_rotation(VALID, "rotations/payments.toml").escalation_repeat == 0
    text = VALID.replace("default = true", "escalation_repeat = 2\ndefault = true")
    assert parse_rotation(text, "rotations/payments.toml").escalation_repeat == 2


@pytest.mark.parametrize("value", ["-1", "11", "true", '"twice"', "1.5"])
def test_a_bad_escalation_repeat_names_the_line_and_the_range(value):
    (problem,) = problems_in(VALID.replace("default = true", f"escalation_repeat = {value}\ndefault = true"))
    assert problem.startswith("rotations/payments.toml:8: escalation_repeat: ")
    assert "whole number from 0 to 10" in problem


def test_name_defaults_to_the_file_stem_and_days_to_every_day():
    rotation = parse_rotation(
        VALID.replace('name = "payments"\n', "").replace('days = "mon-fri"\n', ""),
        "rotations/search.toml",
    )
    assert rotation.name == "search"
    assert rotation.regions[0].days == frozenset(range(7))


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("sat-sun", {5, 6}),
        ("mon,wed,fri", {0, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ('["Monday", "tue"]', {0, 1}),
    ],
)
def test_days_accept_names_lists_and_ranges_that_wrap(days, expected):
    value = days if days.startswith("[") else f'"{days}"'
    rotation = parse_rotation(VALID.replace('"mon-fri"', value), "r.toml")
    assert rotation.regions[0].days == frozenset(expected)


def test_window_may_end_at_24_00_and_equal_edges_mean_all_day():
    late = parse_rotation(VALID.replace("09:00-17:00", "16:00-24:00"), "r.toml")
    assert late.regions[0].hours == (time(16), time(0))
    assert parse_rotation(VALID.replace("09:00-17:00", "09:00-09:00"), "r.toml").regions[0].hours


def test_unknown_time_zone_names_file_line_field_and_suggests_a_fix():
    (problem,) = problems_in(VALID.replace("Asia/Singapore", "Asia/Singapur"))
    assert problem.startswith("rotations/payments.toml:12: regions[0].timezone: ")
    assert "unknown time zone 'Asia/Singapur'" in problem
    assert "did you mean 'Asia/Singapore'" in problem


@pytest.mark.parametrize("hours", ["9-17", "09:00-25:00", "09:60-17:00", "24:00-08:00", "9am-5pm"])
def test_bad_hours_say_what_a_window_looks_like(hours):
    (problem,) = problems_in(VALID.replace("09:00-17:00", hours))
    assert problem.startswith("rotations/payments.toml:13: regions[0].hours: ")
    assert '"HH:MM-HH:MM"' in problem


def test_bad_days_list_the_accepted_forms():
    (problem,) = problems_in(VALID.replace("mon-fri", "weekdays"))
    assert problem.startswith("rotations/payments.toml:14: regions[0].days: ")
    assert '"mon-fri"' in problem


def test_empty_members_is_an_error():
    (problem,) = problems_in(VALID.replace('["U0APAC1", "U0APAC2"]', "[]"))
    assert problem.startswith("rotations/payments.toml:15: regions[0].members: ")
    assert "at least one" in problem


def test_bad_handoff_lists_the_allowed_values():
    (problem,) = problems_in(VALID.replace('"weekly"', '"fortnightly"'))
    assert problem == (
        "rotations/payments.toml:4: handoff: 'fortnightly' is not a handoff; "
        'use "daily", "weekly", "every N days" or "every N weeks"'
    )


def test_missing_fields_are_named_with_the_table_they_belong_to():
    text = VALID.replace('handoff = "weekly"\n', "").replace('timezone = "Asia/Singapore"\n', "")
    problems = problems_in(text)
    assert "rotations/payments.toml: handoff: missing; this field is required" in problems
    assert "rotations/payments.toml:9: regions[0].timezone: missing; this field is required" in (
        problems
    )


def test_unknown_keys_are_errors_that_suggest_the_right_key():
    problems = problems_in(VALID.replace("timezone =", "timzone ="))
    assert any(
        p.startswith(
            "rotations/payments.toml:12: regions[0].timzone: unknown key; did you mean 'timezone'?"
        )
        for p in problems
    )


def test_every_problem_in_a_file_is_reported_at_once():
    text = VALID.replace("Asia/Singapore", "Mars/Olympus").replace("09:00-17:00", "late")
    assert len(problems_in(text)) == 2


def test_region_names_must_be_unique_within_a_rotation():
    second = VALID.split("[[regions]]")[1]
    (problem,) = problems_in(VALID + "\n[[regions]]" + second)
    assert problem.startswith("rotations/payments.toml:18: regions[1].name: 'apac' is used twice")


def test_a_rotation_without_regions_says_how_to_add_one():
    (problem,) = problems_in(VALID.split("[[regions]]")[0])
    assert problem == (
        "rotations/payments.toml: regions: missing; add at least one [[regions]] table"
    )


def test_a_file_name_that_cannot_be_typed_needs_an_explicit_name():
    text = VALID.replace('name = "payments"\n', "")
    (problem,) = problems_in(text, path="rotations/pay ments.toml")
    assert "file name 'pay ments' is not a usable name" in problem


def test_invalid_toml_gives_the_line():
    (problem,) = problems_in(VALID.replace('hours = "09:00-17:00"', "hours = 09:00-17:00"))
    assert problem.startswith("rotations/payments.toml:13: not valid TOML")


def test_start_must_be_a_date():
    (problem,) = problems_in(VALID.replace("2026-01-05", '"next monday"'))
    assert problem.startswith("rotations/payments.toml:3: start: ")


def test_overrides_need_offsets_and_must_end_after_they_start():
    naive = (
        VALID
        + '[[overrides]]\nuser = "X"\nstart = 2026-03-01T09:00:00\nend = 2026-03-01T10:00:00+00:00\n'
    )
    (problem,) = problems_in(naive)
    assert problem.startswith("rotations/payments.toml:18: overrides[0].start: ")
    assert "UTC offset" in problem
    backwards = (
        VALID
        + '[[overrides]]\nuser = "X"\nstart = 2026-03-01T09:00:00Z\nend = 2026-03-01T08:00:00Z\n'
    )
    (problem,) = problems_in(backwards)
    assert problem.startswith("rotations/payments.toml:19: overrides[0].end: must be after start")


def test_file_overrides_are_read_in_utc():
    text = (
        VALID
        + '[[overrides]]\nuser = "X"\nstart = 2026-03-01T09:00:00+01:00\nend = 2026-03-01T10:00:00+01:00\nreason = "swap"\n'
    )
    (override,) = parse_rotation(text, "r.toml").overrides
    assert override.start == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert override.reason == "swap"


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_duplicate_names_across_files_are_an_error(tmp_path):
    write(tmp_path, "a.toml", VALID)
    write(tmp_path, "b.toml", VALID.replace("default = true\n", ""))
    with pytest.raises(RotationError) as caught:
        load_rotations(tmp_path)
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{tmp_path / 'b.toml'}:1: name: 'payments' is already the name")


def test_two_defaults_and_escalation_to_an_unknown_rotation_are_errors(tmp_path):
    write(tmp_path, "a.toml", VALID)
    write(tmp_path, "b.toml", VALID.replace('"payments"', '"search"') + "")
    write(
        tmp_path,
        "c.toml",
        VALID.replace('"payments"', '"web"').replace("default = true", 'escalate_to = "nobody"'),
    )
    with pytest.raises(RotationError) as caught:
        load_rotations(tmp_path)
    message = str(caught.value)
    assert f"{tmp_path / 'b.toml'}:8: default: " in message
    assert f"{tmp_path / 'c.toml'}:8: escalate_to: 'nobody' is not another rotation" in message


def test_a_rotation_cannot_escalate_to_itself(tmp_path):
    write(tmp_path, "a.toml", VALID.replace("default = true", 'escalate_to = "payments"'))
    with pytest.raises(RotationError, match="escalate_to: 'payments' is not another rotation"):
        load_rotations(tmp_path)


def test_load_rotations_lists_problems_from_every_file(tmp_path):
    write(tmp_path, "a.toml", VALID.replace("Asia/Singapore", "Nowhere/Land"))
    write(tmp_path, "b.toml", VALID.replace('"payments"', '"b"').replace("mon-fri", "someday"))
    with pytest.raises(RotationError) as caught:
        load_rotations(tmp_path)
    assert [p.path for p in caught.value.problems] == [
        str(tmp_path / "a.toml"),
        str(tmp_path / "b.toml"),
    ]


def test_a_runbook_is_an_http_address():
    rotation = parse_rotation(VALID.replace("default = true", 'default = true\nrunbook = "https://wiki.example/pay"'),
                              "rotations/payments.toml")
    assert rotation.runbook == "https://wiki.example/pay"
    assert parse_rotation(VALID, "rotations/payments.toml").runbook is None
    [problem] = problems_in(VALID.replace("default = true", 'default = true\nrunbook = "javascript:alert(1)"'))
    assert "runbook" in problem and "is not an http:// or https:// address" in problem
