"""Incident storm: 100 declarations within 10 seconds against the served bot while the Slack
stand-in answers 20% of Web API calls with 429 and `Retry-After: 1`.

Measures the time from the first declaration until every declared incident's channel exists
and until every one has its pinned summary, duplicate channels (more than one channel for an
incident number; target 0), lost timeline entries (a declared incident without its
`declared` entry in the database; target 0), the slowest acknowledgement (Slack gives up
after 3 s) and the peak memory of the gunicorn master and workers (sum of VmHWM). Baseline in
the same run: the same storm with no failures, each on a fresh stand-in, database and server.

    .venv/bin/python bench/storm.py [--db sqlite|postgresql] [--count 100] [--seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

from _common import (
    PEOPLE,
    Databases,
    Row,
    Workdir,
    machine,
    ms,
    percentile,
    print_table,
    slash_body,
    start_bot,
    start_standin,
    verdict,
    wait_quiet,
)
from _loadgen import Load, run_load

CHANNEL = re.compile(r"^inc-(\d+)(?:-|$)")


@dataclass
class Outcome:
    label: str
    declared: int = 0
    errors: int = 0
    ack_p50: float = float("nan")
    ack_p99: float = float("nan")
    ack_max: float = float("nan")
    all_channels: float | None = None  # seconds from the first declaration
    all_pinned: float | None = None
    channels: int = 0
    pinned: int = 0
    duplicates: int = 0
    lost_entries: int = 0
    missing_incidents: int = 0
    peak_mib: float = 0.0
    slack_calls: int = 0
    rate_limited: int = 0
    outbox_failed: int = 0
    outbox_pending: int = 0


def storm_once(
    label: str,
    *,
    rate: float,
    db: str,
    count: int,
    seconds: float,
    timeout: float,
    workers: int,
    retry_after: int,
) -> Outcome:
    outcome = Outcome(label)
    with Workdir() as workdir:
        databases = Databases(workdir)
        standin = start_standin()
        server = None
        try:
            url = databases.url(db)
            server = start_bot(workdir, standin, url, workers=workers)
            run_load(
                server.host,
                [slash_body("/oncall", "", response_url=standin.response_url(user_id="U0PRIYA"))],
                concurrency=1,
            )  # loads the listeners' modules; declares nothing
            wait_quiet(standin)
            standin.reset_calls()
            standin.set_failure_rate(rate, statuses=(429,), seed=2026, retry_after=retry_after)
            users = [user_id for user_id, _, _ in PEOPLE]
            bodies = [
                slash_body(
                    "/incident",
                    f"declare sev2 Storm {i} payments API returns 503",
                    user=users[i % len(users)],
                    response_url=standin.response_url(user_id=users[i % len(users)]),
                )
                for i in range(count)
            ]
            loaded: dict[str, Load] = {}
            sender = threading.Thread(
                target=lambda: loaded.setdefault(
                    "load",
                    run_load(
                        server.host,
                        bodies,
                        concurrency=32,
                        interval=seconds / count,
                        timeout=seconds + 60,
                    ),
                )
            )
            sender.start()
            launched = time.time()
            numbers: set[int] | None = None
            while time.time() - launched < timeout:
                if numbers is None and not sender.is_alive():
                    load = loaded["load"]
                    numbers = {
                        int(m.group(1))
                        for r in load.results
                        if r.status == 200
                        for m in [re.search(r"Declared incident #(\d+)", r.body)]
                        if m
                    }
                channels = [
                    (int(m.group(1)), c["id"])
                    for c in standin.channel_list()
                    for m in [CHANNEL.match(c["name"])]
                    if m
                ]
                have = {n for n, _ in channels}
                pinned = {n for n, cid in channels if standin.pins(cid)}
                if numbers is not None:
                    began = load.began
                    if outcome.all_channels is None and numbers <= have:
                        outcome.all_channels = time.time() - began
                    if outcome.all_pinned is None and numbers <= pinned:
                        outcome.all_pinned = time.time() - began
                        break
                time.sleep(0.1)
            sender.join(timeout=max(1.0, seconds + 90 - (time.time() - launched)))
            load = loaded.get("load") or Load([], 0.0)
            numbers = numbers if numbers is not None else set()
            wait_quiet(standin, quiet=1.5, timeout=30)  # broadcasts and page DMs still in flight
            outcome.peak_mib = server.memory()[0] / 1024
            latencies = load.latencies
            outcome.declared, outcome.errors = (
                len(numbers),
                load.errors + (count - len(load.results)),
            )
            outcome.ack_p50, outcome.ack_p99 = percentile(latencies, 50), percentile(latencies, 99)
            outcome.ack_max = max(latencies, default=float("nan"))
            per_number = Counter(
                int(m.group(1))
                for c in standin.channel_list()
                for m in [CHANNEL.match(c["name"])]
                if m
            )
            outcome.channels = len(per_number)
            outcome.pinned = sum(
                1
                for c in standin.channel_list()
                if CHANNEL.match(c["name"]) and standin.pins(c["id"])
            )
            outcome.duplicates = sum(n - 1 for n in per_number.values() if n > 1)
            calls = standin.calls
            outcome.slack_calls = len(calls)
            outcome.rate_limited = sum(1 for c in calls if c.status == 429)
            stored, entries, failed, pending = read_database(url)
            outcome.missing_incidents = len(numbers - stored)
            outcome.lost_entries = len(numbers - entries)
            outcome.outbox_failed, outcome.outbox_pending = failed, pending
        finally:
            if server is not None:
                server.stop()
            standin.stop()
            databases.close()
    return outcome


def read_database(url: str) -> tuple[set[int], set[int], int, int]:
    """(incident numbers, numbers with a `declared` entry, failed and pending outbox tasks)."""
    from sqlmodel import select

    from bot.models import Incident, OutboxTask, TimelineEntry
    from bot.storage import Storage

    storage = Storage(url)
    try:
        with storage.read() as session:
            incidents = set(session.exec(select(Incident.id)).all())
            declared = set(
                session.exec(
                    select(TimelineEntry.incident_id).where(TimelineEntry.kind == "declared")
                ).all()
            )
            statuses = Counter(session.exec(select(OutboxTask.status)).all())
    finally:
        storage.dispose()
    return incidents, declared, statuses.get("failed", 0), statuses.get("pending", 0)


def seconds_text(value: float | None, timeout: float) -> str:
    return f"> {timeout:.0f} (unfinished)" if value is None else f"{value:.1f}"


def run(
    *,
    db: str = "sqlite",
    count: int = 100,
    seconds: float = 10.0,
    rate: float = 0.2,
    retry_after: int = 1,
    timeout: float = 420.0,
    workers: int = 1,
) -> list[Row]:
    print(
        f"\n== incident storm ({db}): {count} declarations in {seconds:g} s, stand-in answering "
        f"{rate:.0%} of calls with 429 + Retry-After {retry_after} s; baseline without failures"
    )
    print(f"machine: {machine()}")
    kwargs = {
        "db": db,
        "count": count,
        "seconds": seconds,
        "timeout": timeout,
        "workers": workers,
        "retry_after": retry_after,
    }
    base = storm_once("no failures (baseline)", rate=0.0, **kwargs)
    storm = storm_once(f"{rate:.0%} 429 + Retry-After", rate=rate, **kwargs)
    rows = []
    for o in (base, storm):
        rows.append(
            [
                o.label,
                f"{o.declared}/{count}",
                o.errors,
                ms(o.ack_p50),
                ms(o.ack_p99),
                ms(o.ack_max),
                seconds_text(o.all_channels, timeout),
                seconds_text(o.all_pinned, timeout),
                o.channels,
                o.duplicates,
                o.lost_entries,
                o.slack_calls,
                o.rate_limited,
                f"{o.outbox_failed}/{o.outbox_pending}",
                f"{o.peak_mib:.0f}",
            ]
        )
    print_table(
        [
            "run",
            "acked",
            "errors",
            "ack p50 ms",
            "ack p99 ms",
            "ack max ms",
            "all channels s",
            "all pinned s",
            "channels",
            "duplicates",
            "lost entries",
            "Slack calls",
            "429s",
            "outbox failed/pending at end",
            "peak RSS MiB",
        ],
        rows,
        title=f"Incident storm ({db})",
    )
    bench = f"storm ({db})"
    slow = storm.all_pinned if storm.all_pinned is not None else float("inf")
    fast = base.all_pinned if base.all_pinned is not None else float("nan")
    return [
        Row(
            bench,
            "declarations acknowledged",
            f"{storm.declared}/{count}",
            f"{base.declared}/{count}",
            "all",
            verdict(storm.declared == count and storm.errors == 0),
        ),
        Row(
            bench,
            "slowest acknowledgement",
            f"{ms(storm.ack_max)} ms",
            f"{ms(base.ack_max)} ms",
            "< 3000 ms",
            verdict(storm.ack_max < 3.0),
        ),
        Row(
            bench,
            "time until all channels exist",
            seconds_text(storm.all_channels, timeout) + " s",
            seconds_text(base.all_channels, timeout) + " s",
            "",
            "",
        ),
        Row(
            bench,
            "time until all summaries pinned",
            seconds_text(storm.all_pinned, timeout) + " s",
            seconds_text(base.all_pinned, timeout) + " s",
            f"{slow / fast:.1f}x baseline" if slow != float("inf") else "",
            ""
            if storm.all_pinned is not None
            else "FAIL",  # no target: reported, unless unfinished
        ),
        Row(
            bench,
            "duplicate channels",
            str(storm.duplicates),
            str(base.duplicates),
            "0",
            verdict(storm.duplicates == 0 and base.duplicates == 0),
        ),
        Row(
            bench,
            "lost timeline entries",
            str(storm.lost_entries + storm.missing_incidents),
            str(base.lost_entries + base.missing_incidents),
            "0",
            verdict(
                storm.lost_entries
                + storm.missing_incidents
                + base.lost_entries
                + base.missing_incidents
                == 0
            ),
        ),
        Row(
            bench,
            "peak RSS (master + workers)",
            f"{storm.peak_mib:.0f} MiB",
            f"{base.peak_mib:.0f} MiB",
            f"{storm.peak_mib / base.peak_mib:.2f}x" if base.peak_mib else "",
            "",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--rate", type=float, default=0.2, help="share of Web API calls answered 429"
    )
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument(
        "--timeout", type=float, default=420.0, help="give up waiting for channels after this"
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="25 declarations in 2.5 s")
    args = parser.parse_args(argv)
    count, seconds = (25, 2.5) if args.quick else (args.count, args.seconds)
    started = time.monotonic()
    rows = run(
        db=args.db,
        count=count,
        seconds=seconds,
        rate=args.rate,
        retry_after=args.retry_after,
        timeout=args.timeout,
        workers=args.workers,
    )
    print(f"\n(storm took {time.monotonic() - started:.0f} s)")
    return 0 if all(row.verdict != "FAIL" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
