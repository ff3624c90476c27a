"""The `check` and `schedule` commands as an operator runs them."""

import argparse
import json
from pathlib import Path

import pytest
from freezegun import freeze_time

from bot.schedule_cli import add_subcommands

CLASSIC = """\
name = "classic"
start = 2026-01-05
handoff = "weekly"

[[regions]]
name = "singapore"
timezone = "Asia/Singapore"
hours = "09:00-17:00"
members = ["U0APAC1", "U0APAC2"]

[[regions]]
name = "dublin"
timezone = "Europe/Dublin"
hours = "09:00-17:00"
members = ["U0EMEA1", "U0EMEA2"]

[[regions]]
name = "los-angeles"
timezone = "America/Los_Angeles"
hours = "09:00-17:00"
members = ["U0AMER1", "U0AMER2"]
"""


@pytest.fixture
def rotations_dir(tmp_path: Path) -> Path:
    (tmp_path / "classic.toml").write_text(CLASSIC, encoding="utf-8")
    return tmp_path


@pytest.fixture
def run(capsys):
    """Run the CLI with argv; returns (exit code, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="oncall-bot")
    add_subcommands(parser.add_subparsers(dest="command", required=True))

    def invoke(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args([str(arg) for arg in argv])
        code = args.func(args)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_check_finds_the_classic_follow_the_sun_dst_hole_and_groups_it_by_run(run, rotations_dir):
    code, out, _ = run("check", rotations_dir, "--from", "2026-01-01")
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    assert (
        lines[0]
        == f"Checked {rotations_dir} from 2026-01-01 00:00 to 2027-01-01 00:00 UTC (365 days)"
    )
    runs = [line for line in lines if line.startswith("classic: ")]
    assert runs == [
        (
            "classic: overlap 16:00-17:00 UTC every day from 2026-03-08 to 2026-03-28 (21 times): "
            "dublin and los-angeles are both scheduled for 1h; los-angeles (started last) holds "
            "the pager"
        ),
        (
            "classic: gap 00:00-01:00 UTC every day from 2026-03-09 to 2026-11-01 (238 times): "
            "no region is scheduled for 1h; los-angeles keeps the pager until singapore starts"
        ),
        (
            "classic: overlap 08:00-09:00 UTC every day from 2026-03-29 to 2026-10-24 (210 times): "
            "singapore and dublin are both scheduled for 1h; dublin (started last) holds the pager"
        ),
        (
            "classic: overlap 16:00-17:00 UTC every day from 2026-10-25 to 2026-10-31 (7 times): "
            "dublin and los-angeles are both scheduled for 1h; los-angeles (started last) holds "
            "the pager"
        ),
    ]
    assert lines[-1] == (
        "1 rotation(s), 0 error(s), 238 gap(s) and 238 overlap(s) in 4 recurring pattern(s)"
    )


def test_check_json_lists_one_finding_per_occurrence_in_utc(run, rotations_dir):
    code, out, _ = run("check", rotations_dir, "--from", "2026-01-01", "--json")
    findings = json.loads(out)
    assert code == 0
    assert all(set(f) == {"rotation", "kind", "start", "end", "message"} for f in findings)
    gaps = [f for f in findings if f["kind"] == "gap"]
    assert len(gaps) == 238
    assert (gaps[0]["start"], gaps[0]["end"]) == ("2026-03-09T00:00:00Z", "2026-03-09T01:00:00Z")
    assert gaps[-1]["start"] == "2026-11-01T00:00:00Z"
    overlaps = [(f["start"][:10], f["start"][11:16]) for f in findings if f["kind"] == "overlap"]
    assert len(overlaps) == 21 + 210 + 7
    assert overlaps[0] == ("2026-03-08", "16:00")
    assert ("2026-03-29", "08:00") in overlaps and ("2026-10-25", "16:00") in overlaps


def test_check_in_january_finds_the_day_covered_exactly(run, rotations_dir):
    code, out, _ = run(
        "check", rotations_dir, "--from", "2026-01-01T00:00:00+00:00", "--days", "30"
    )
    assert code == 0
    assert "  covered around the clock" in out.splitlines()


def test_check_strict_fails_on_gaps_and_overlaps(run, rotations_dir):
    assert run("check", rotations_dir, "--from", "2026-01-01", "--strict")[0] == 1
    assert run("check", rotations_dir, "--from", "2026-01-01", "--days", "30", "--strict")[0] == 0


def test_check_defaults_to_the_next_year_from_today(run, rotations_dir):
    with freeze_time("2026-03-01 15:30:00"):
        _, out, _ = run("check", rotations_dir)
    assert out.splitlines()[0].endswith("from 2026-03-01 00:00 to 2027-03-01 00:00 UTC (365 days)")


def test_check_reads_rotations_dir_from_the_environment(run, rotations_dir, monkeypatch):
    monkeypatch.setenv("ROTATIONS_DIR", str(rotations_dir))
    code, out, _ = run("check", "--from", "2026-01-01", "--days", "10")
    assert code == 0 and "classic" in out


def test_check_exits_1_on_a_bad_file_naming_file_line_and_field(run, rotations_dir):
    bad = CLASSIC.replace('"classic"', '"broken"').replace("Europe/Dublin", "Europe/Dublinn")
    (rotations_dir / "broken.toml").write_text(bad, encoding="utf-8")
    code, out, _ = run("check", rotations_dir, "--from", "2026-01-01", "--days", "30")
    assert code == 1
    expected = f"{rotations_dir / 'broken.toml'}:13: regions[1].timezone: unknown time zone"
    assert any(line.strip().startswith(expected) for line in out.splitlines())
    assert "classic (" in out  # the good file is still checked


def test_check_json_reports_file_errors_as_error_findings(run, rotations_dir):
    (rotations_dir / "broken.toml").write_text(
        CLASSIC.replace('"classic"', '"b"').replace("09:00-17:00", "9 to 5", 1), encoding="utf-8"
    )
    code, out, _ = run("check", rotations_dir, "--json", "--days", "1")
    (error,) = [f for f in json.loads(out) if f["kind"] == "error"]
    assert code == 1
    assert error["rotation"] == "broken" and error["start"] is None
    assert "regions[0].hours" in error["message"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "/no/such/folder"], "check: rotations folder '/no/such/folder' does not exist"),
        (["check", "{dir}", "--from", "March"], "check: --from 'March' is not an ISO date"),
        (["check", "{dir}", "--days", "-3"], "check: --days '-3' must be a whole number"),
        (
            ["schedule", "nope", "--dir", "{dir}"],
            "schedule: no rotation 'nope' in {dir} (known: classic)",
        ),
        (
            ["schedule", "classic", "--dir", "{dir}", "--tz", "Mars/Base"],
            "schedule: --tz 'Mars/Base'",
        ),
        (
            ["schedule", "classic", "--dir", "{dir}", "--from", "2026-03-01T09:00"],
            "schedule: --from '2026-03-01T09:00' has no UTC offset",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(run, rotations_dir, argv, message):
    code, out, err = run(*(arg.format(dir=rotations_dir) for arg in argv))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(message.format(dir=rotations_dir))


def test_schedule_prints_a_table_in_utc(run, rotations_dir):
    code, out, _ = run(
        "schedule", "classic", "--dir", rotations_dir, "--from", "2026-03-09", "--days", "1"
    )
    assert code == 0
    assert out.splitlines() == [
        "classic: 2026-03-09 00:00 UTC to 2026-03-10 00:00 UTC",
        "region       who      start                 end",
        "los-angeles  U0AMER1  2026-03-09 00:00 UTC  2026-03-09 01:00 UTC",
        "singapore    U0APAC2  2026-03-09 01:00 UTC  2026-03-09 09:00 UTC",
        "dublin       U0EMEA2  2026-03-09 09:00 UTC  2026-03-09 16:00 UTC",
        "los-angeles  U0AMER2  2026-03-09 16:00 UTC  2026-03-10 00:00 UTC",
    ]


def test_schedule_shows_times_in_the_requested_zone(run, rotations_dir):
    _, out, _ = run(
        "schedule",
        "classic",
        "--dir",
        rotations_dir,
        "--from",
        "2026-03-09",
        "--days",
        "1",
        "--tz",
        "America/Los_Angeles",
    )
    assert out.splitlines()[2] == "los-angeles  U0AMER1  2026-03-08 17:00 PDT  2026-03-08 18:00 PDT"


def test_schedule_json_lists_shifts_with_utc_times(run, rotations_dir):
    _, out, _ = run(
        "schedule",
        "classic",
        "--dir",
        rotations_dir,
        "--from",
        "2026-03-09",
        "--days",
        "1",
        "--json",
    )
    shifts = json.loads(out)
    assert shifts[1] == {
        "start": "2026-03-09T01:00:00Z",
        "end": "2026-03-09T09:00:00Z",
        "user": "U0APAC2",
        "region": "singapore",
    }
    assert [s["region"] for s in shifts] == ["los-angeles", "singapore", "dublin", "los-angeles"]


def test_schedule_starts_now_by_default(run, rotations_dir):
    with freeze_time("2026-03-09 12:00:00"):
        _, out, _ = run("schedule", "classic", "--dir", rotations_dir, "--days", "1", "--json")
    shifts = json.loads(out)
    assert shifts[0]["start"] == "2026-03-09T12:00:00Z"
    assert shifts[0]["user"] == "U0EMEA2"
    assert shifts[-1]["end"] == "2026-03-10T12:00:00Z"


def test_schedule_refuses_when_rotation_files_have_errors(run, rotations_dir):
    (rotations_dir / "b.toml").write_text(
        CLASSIC.replace('"classic"', '"b"').replace('handoff = "weekly"', 'handoff = "hourly"'),
        encoding="utf-8",
    )
    code, _, err = run("schedule", "classic", "--dir", rotations_dir)
    assert code == 1
    assert "handoff: 'hourly' is not a handoff" in err


PEOPLE = """\
[[people]]
user = "U0APAC1"
timezone = "Asia/Singapore"
contacts = { phone = "ntfys://ntfy.example.com/apac1-7f3k" }
notify = { slack = 0, phone = 2 }
away = [{ start = 2026-12-24T00:00:00+08:00, end = 2027-01-02T00:00:00+08:00 }]
"""


def test_check_accepts_a_good_people_file_and_never_reads_it_as_a_rotation(run, rotations_dir):
    (rotations_dir / "people.toml").write_text(PEOPLE, encoding="utf-8")
    code, out, _ = run("check", rotations_dir, "--from", "2026-01-01", "--days", "30")
    assert code == 0
    assert "warning" not in out and "people" not in out
    assert out.splitlines()[-1].startswith("1 rotation(s), 0 error(s), 0 gap(s)")


def test_check_exits_1_on_a_bad_people_file_naming_file_line_and_field(run, rotations_dir):
    bad = PEOPLE.replace("ntfys://", "ntfyy://").replace("phone = 2", "phone = -2")
    (rotations_dir / "people.toml").write_text(bad, encoding="utf-8")
    code, out, _ = run("check", rotations_dir, "--from", "2026-01-01", "--days", "30")
    assert code == 1
    errors = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    people = rotations_dir / "people.toml"
    assert errors[0].startswith(
        f"{people}:4: people[0].contacts.phone: ntfyy://ntfy.example.com is not a service "
    )
    assert errors[1] == (
        f"{people}:5: people[0].notify.phone: -2 must be a whole number of minutes, 0 or more"
    )
    assert "apac1-7f3k" not in out  # the contact's secret topic
    assert "classic (" in out  # the rotations are still checked


def test_check_warns_about_a_person_on_no_rotation_and_still_exits_0(run, rotations_dir):
    stranger = '\n[[people]]\nuser = "U0NOBODY"\n'
    (rotations_dir / "people.toml").write_text(PEOPLE + stranger, encoding="utf-8")
    code, out, _ = run("check", rotations_dir, "--from", "2026-01-01", "--days", "30")
    assert code == 0
    warning = (
        f"{rotations_dir / 'people.toml'}:8: user: 'U0NOBODY' is a member of no rotation; check "
        "the user ID or e-mail"
    )
    assert f"  {warning}" in out.splitlines()
    assert out.splitlines()[-1].startswith("1 rotation(s), 0 error(s), 1 warning(s), 0 gap(s)")
    assert run("check", rotations_dir, "--from", "2026-01-01", "--days", "30", "--strict")[0] == 1


def test_check_json_reports_people_errors_and_warnings_as_findings(run, rotations_dir):
    more = (
        '\n[[people]]\nuser = "U0NOBODY"\n\n[[people]]\nuser = "U0EMEA1"\nnotify = { pager = 1 }\n'
    )
    text = PEOPLE + more
    (rotations_dir / "people.toml").write_text(text, encoding="utf-8")
    code, out, _ = run("check", rotations_dir, "--json", "--from", "2026-01-01", "--days", "1")
    findings = [f for f in json.loads(out) if f["rotation"] == "people"]
    assert code == 1
    assert [(f["kind"], f["start"], f["end"]) for f in findings] == [
        ("error", None, None),
        ("warning", None, None),
    ]
    assert findings[0]["message"].endswith(
        ":13: people[2].notify.pager: no contact is called 'pager'; known: slack"
    )
    assert "'U0NOBODY' is a member of no rotation" in findings[1]["message"]
