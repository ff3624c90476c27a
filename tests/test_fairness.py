"""`report --oncall`: how the on-call load was spread, per rotation and person."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time

from bot.oncall.fairness import WorkingDay, load_of
from bot.schedule import Region, Rotation, Shift
from tests.test_postmortem_cli import cli  # noqa: F401  (the in-process CLI fixture)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


DUBLIN = Rotation(
    name="emea", start=utc(2026, 1, 5).date(), handoff="weekly",
    regions=(Region("dublin", "Europe/Dublin", (time(9), time(17)), frozenset(range(7)), ("UD1", "UD2"), "IE"),),
)


def test_hours_outside_the_working_day_on_weekends_and_holidays_are_counted_in_the_persons_zone():
    # Friday 13 Mar 2026 18:00 UTC (Dublin = UTC in March) to Tuesday 17 Mar 12:00 UTC:
    # 90 hours, a weekend, and Saint Patrick's Day (Tue 17 Mar).
    shift = Shift("emea", "dublin", "UD1", utc(2026, 3, 13, 18), utc(2026, 3, 17, 12))
    (load,) = load_of(DUBLIN, [shift], ["UD1", "UD1"], {"UD1": WorkingDay(zone="Europe/Dublin")})
    entry = load.as_json()
    assert entry["hours_on_call"] == 90
    # Working hours inside: Mon 16 Mar 09-18 (9 h), Tue 17 Mar 09-12 (3 h); weekends are not worked.
    assert entry["hours_outside_working_day"] == 90 - 12
    assert entry["weekend_hours"] == 48
    assert entry["public_holidays_worked"] == 1
    assert entry["pages"] == 2


def test_a_working_day_of_the_persons_own_counts_instead_of_the_default():
    shift = Shift("emea", "dublin", "UD1", utc(2026, 3, 16, 6), utc(2026, 3, 16, 14))  # Monday
    early = WorkingDay(zone="Europe/Dublin", hours=(time(6), time(14)))
    (load,) = load_of(DUBLIN, [shift], [], {"UD1": early})
    assert load.as_json()["hours_outside_working_day"] == 0
    (default,) = load_of(DUBLIN, [shift], [], {})
    assert default.as_json()["hours_outside_working_day"] == 3  # 06:00-09:00 before 09:00


def test_the_report_counts_shifts_from_the_resolver_and_pages_from_the_database(bot, cli):  # noqa: F811
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")  # U0FRANK is on call and paged
    code, out, err = cli("report", "--oncall", "--since", "2026-03-09", "--until", "2026-03-16", "--json")
    assert code == 0 and err == ""
    rows = {(r["rotation"], r["person"]): r for r in json.loads(out)}
    assert rows[("payments", "U0FRANK")]["pages"] == 1
    assert rows[("payments", "U0FRANK")]["time_zone"] == "America/Los_Angeles"  # from the Slack profile
    assert sum(r["hours_on_call"] for (rotation, _), r in rows.items() if rotation == "payments") == 7 * 24
    # An override made in Slack moves the load: the hours go to the person overriding.
    bot.command("U0ALICE", "/oncall", "override payments <@U0GRACE|grace> 2026-03-12T00:00Z 2026-03-13T00:00Z")
    code, out, _ = cli("report", "--oncall", "--since", "2026-03-09", "--until", "2026-03-16", "--json")
    rows = {(r["rotation"], r["person"]): r for r in json.loads(out)}
    assert rows[("payments", "U0GRACE")]["hours_on_call"] == 24


def test_the_text_report_has_a_row_per_rotation_and_person(bot, cli):  # noqa: F811
    code, out, _ = cli("report", "--oncall", "--since", "2026-03-09", "--until", "2026-03-16")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "On-call load from 2026-03-09 00:00 UTC to 2026-03-16 00:00 UTC"
    assert lines[2].split()[:2] == ["Rotation", "Person"]
    assert sum(1 for line in lines if line.startswith("payments ")) == 3  # one week: one turn per region


def test_the_people_files_working_day_and_zone_count(bot, cli, tmp_path, monkeypatch):  # noqa: F811
    import shutil

    from tests.conftest import ROTATIONS

    folder = tmp_path / "with-people"
    shutil.copytree(ROTATIONS, folder)
    (folder / "people.toml").write_text(
        '[[people]]\nuser = "U0DAVE"\ntimezone = "Asia/Tokyo"\nworking_hours = "00:00-00:00"\nworking_days = "mon-sun"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("ROTATIONS_DIR", str(folder))
    code, out, _ = cli("report", "--oncall", "--since", "2026-03-09", "--until", "2026-03-16", "--json")
    dave = next(r for r in json.loads(out) if r["person"] == "U0DAVE")
    assert code == 0 and dave["time_zone"] == "Asia/Tokyo"
    assert dave["hours_on_call"] > 0 and dave["hours_outside_working_day"] == 0
