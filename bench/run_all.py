"""Every benchmark, then one table: benchmark, measure, value, baseline, ratio/target, verdict.

Runs bench/ack_latency.py (SQLite and PostgreSQL), bench/storm.py, bench/alert_storm.py (SQLite
and PostgreSQL), bench/notify.py (SQLite and PostgreSQL), bench/scale.py, and
bench/schedule.py and bench/postmortem.py as they are (their own output is printed, and their
headline figures read from it). Each benchmark prints its own detailed tables first. Rows
with the verdict "info" are reported with no target: the ack latency's ratio to the bare Bolt
app run with the bot's settings. The full run takes about 15 minutes on 2 cores; --quick takes
about 4.

    .venv/bin/python bench/run_all.py [--quick] [--skip storm,scale,...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable

import ack_latency
import alert_storm
import notify
import scale
import storm
from _common import BENCH, ROOT, Row, machine, print_table, verdict

NAMES = ("ack", "storm", "alerts", "notify", "scale", "schedule", "postmortem")


def script(name: str, *args: str) -> str:
    """Run a bench script as it is and return its output (also printed)."""
    print(f"\n== {name} {' '.join(args)}".rstrip())
    done = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(done.stdout.rstrip())
    if done.returncode not in (0, 1):  # 1 means "a target was missed": the figures still count
        raise RuntimeError(f"{name} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def schedule_rows(quick: bool) -> list[Row]:
    out = script("schedule.py", *(["--repeat", "1"] if quick else []))
    engine = re.search(
        r"^engine \(cold caches\)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.MULTILINE
    )
    ical = re.search(
        r"^RRULE \+ recurring_ical_events\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.MULTILINE
    )
    same = re.search(r"answers identical: ([\d,]+) of ([\d,]+)", out)
    if not (engine and ical and same):
        return [Row("schedule", "(output not recognised: see above)", "", "", "", "FAIL")]
    rows = []
    for column, what in (
        (1, "expand a year of 50 rotations"),
        (3, "expand + 100,000 on-call queries"),
    ):
        mine, theirs = float(engine.group(column)), float(ical.group(column))
        rows.append(
            Row(
                "schedule",
                what,
                f"{mine:.3f} s",
                f"{theirs:.3f} s recurring_ical_events",
                f"{theirs / mine:.1f}x, >= 10x",
                verdict(theirs / mine >= 10),
            )
        )
    rows.append(
        Row(
            "schedule",
            "answers identical to the iCalendar route",
            f"{same.group(1)} of {same.group(2)}",
            "",
            "all",
            verdict(same.group(1) == same.group(2)),
        )
    )
    return rows


def postmortem_rows(quick: bool) -> list[Row]:
    out = script("postmortem.py")
    full = re.search(r"full draft median ([\d.]+) ms \w+ the ([\d.]+) ms target", out)
    base = re.search(r"^\|\s*baseline: str\.join[^|]*\|\s*([\d.]+)", out, re.MULTILINE)
    entries = re.search(r"postmortem bench: ([\d,]+) timeline entries", out)
    if not full:
        return [Row("postmortem", "(output not recognised: see above)", "", "", "", "FAIL")]
    value, target = float(full.group(1)), float(full.group(2))
    return [
        Row(
            "postmortem",
            f"draft with {entries.group(1) if entries else '?'} timeline entries (median)",
            f"{value:.1f} ms",
            f"{base.group(1)} ms str.join" if base else "",
            f"< {target:.0f} ms",
            verdict(value < target),
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a few minutes")
    parser.add_argument("--skip", default="", help=f"comma-separated, of: {', '.join(NAMES)}")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    quick = args.quick
    started = time.monotonic()
    print(f"oncall-bot benchmarks{' (quick)' if quick else ''}; machine: {machine()}")

    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        (
            "ack",
            lambda: (
                ack_latency.run(db="sqlite", requests=60 if quick else 1000, rounds=2 if quick else 10)
                + ack_latency.run(db="postgresql", requests=60 if quick else 1000, rounds=2 if quick else 10)
            ),
        ),
        (
            "storm",
            lambda: storm.run(
                db="sqlite",
                count=25 if quick else 100,
                seconds=2.5 if quick else 10.0,
                timeout=400.0,  # keeps the full run under 15 minutes even when the outbox is slow
            ),
        ),
        ("alerts", lambda: alert_storm.run(db="sqlite") + alert_storm.run(db="postgresql")),
        (
            "notify",
            lambda: (
                notify.run(db="sqlite", seconds=20.0 if quick else 60.0)
                + notify.run(db="postgresql", seconds=20.0 if quick else 60.0)
            ),
        ),
        (
            "scale",
            lambda: scale.run(
                sizes=(10, 1_000, 20_000) if quick else (10, 1_000, 100_000),
                rounds=3 if quick else 5,
            ),
        ),
        ("schedule", lambda: schedule_rows(quick)),
        ("postmortem", lambda: postmortem_rows(quick)),
    ]
    rows: list[Row] = []
    timings = []
    for name, step in steps:
        if name in skip:
            continue
        began = time.monotonic()
        try:
            rows += step()
        except Exception as exc:  # noqa: BLE001  (one broken benchmark must not hide the others' figures)
            traceback.print_exc()
            rows.append(Row(name, f"crashed: {type(exc).__name__}", str(exc)[:60], "", "", "FAIL"))
        timings.append(f"{name} {time.monotonic() - began:.0f} s")

    print_table(
        ["benchmark", "measure", "value", "baseline", "ratio / target", "verdict"],
        [[r.benchmark, r.measure, r.value, r.baseline, r.target, r.verdict] for r in rows],
        title=f"Summary{' (quick)' if quick else ''} — {machine()}",
    )
    failed = sum(1 for r in rows if r.verdict == "FAIL")
    print(
        f"\n{sum(1 for r in rows if r.verdict == 'PASS')} PASS, {failed} FAIL, "
        f"{sum(1 for r in rows if r.verdict == 'info')} info (no target); took "
        f"{time.monotonic() - started:.0f} s ({', '.join(timings)})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
