"""Incident storm against Slack's limits: 100 declarations within 10 seconds against the served
bot while the Slack stand-in keeps Slack's rate-limit tiers (bot/slack/limits.py).

Measures the time from the first declaration until every incident's channel is fully set up
(channel, invites, topic, pinned summary, broadcast) next to the floor the tiers impose,
computed from the same table: for each budget the storm draws on, the time its limit allows
for the calls the storm needs there, with a sliding window that starts full; the largest of
these. Also: the time until every page DM is sent, 429s received, duplicate channels, lost
timeline entries, the slowest acknowledgement (Slack gives up after 3 s) and whether every page
DM went before any topic or pin of a later incident (by call order in the stand-in's log).

    .venv/bin/python bench/storm.py [--db sqlite|postgresql] [--count 100] [--seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from _common import (
    INCIDENTS_CHANNEL,
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

from bot.slack.limits import budgets, floor_seconds

CHANNEL = re.compile(r"^inc-(\d+)(?:-|$)")
SETUP = ("conversations.create", "conversations.invite", "conversations.setTopic", "pins.add", "broadcast")


@dataclass
class Outcome:
    declared: int = 0
    errors: int = 0
    ack_p50: float = float("nan")
    ack_p99: float = float("nan")
    ack_max: float = float("nan")
    set_up: int = 0
    all_set_up: float | None = None  # seconds from the first declaration
    pages: int = 0
    pages_sent: int = 0
    all_pages: float | None = None
    floor: float = 0.0
    floor_budget: str = ""
    duplicates: int = 0
    lost_entries: int = 0
    rate_limited: int = 0
    late_pages: int = 0  # page DMs sent after a topic or pin of a later incident
    slack_calls: int = 0
    outbox_failed: int = 0
    outbox_pending: int = 0
    budgets: list[list[Any]] = field(default_factory=list)


def incident_of(call: Any) -> int | None:
    """The incident a message names in its metadata."""
    metadata = call.args.get("metadata")
    if isinstance(metadata, dict):
        number = (metadata.get("event_payload") or {}).get("incident_id")
        return int(number) if number is not None else None
    return None


class Progress:
    """What the stand-in's call log says about each incident: when each setup step first
    succeeded, when its page DMs went, and the log positions of both."""

    def __init__(self, calls: list[Any]) -> None:
        self.channels: dict[str, int] = {}
        self.steps: dict[int, dict[str, float]] = defaultdict(dict)
        self.page_dms: list[tuple[int, int, float]] = []  # (log index, incident, at)
        self.topics_and_pins: list[tuple[int, int]] = []  # (log index, incident)
        for index, call in enumerate(calls):
            if call.method == "conversations.create" and call.ok:
                channel = call.response["channel"]
                match = CHANNEL.match(channel["name"])
                if match:
                    self.channels[channel["id"]] = int(match.group(1))
                    self.steps[int(match.group(1))].setdefault(call.method, call.at)
            number = self.channels.get(str(call.args.get("channel", "")))
            done = call.ok or call.response.get("error") == "already_in_channel"
            if number is not None and done and call.method in SETUP:
                self.steps[number].setdefault(call.method, call.at)
                if call.method in ("conversations.setTopic", "pins.add"):
                    self.topics_and_pins.append((index, number))
            if call.method == "chat.postMessage" and call.ok and incident_of(call) is not None:
                target = str(call.args.get("channel", ""))
                if target == INCIDENTS_CHANNEL:
                    self.steps[incident_of(call)].setdefault("broadcast", call.at)
                elif target.startswith("U"):
                    self.page_dms.append((index, incident_of(call), call.at))

    def set_up(self, numbers: set[int]) -> dict[int, float]:
        """Incidents fully set up, with the instant of their last step."""
        return {n: max(self.steps[n].values()) for n in numbers if all(s in self.steps[n] for s in SETUP)}

    def late_pages(self) -> list[tuple[int, int, int, int]]:
        """Page DMs that went after a topic or pin of a later incident: (page's incident, its log
        index, the first such later incident, that call's log index)."""
        late = []
        for index, number, _ in self.page_dms:
            before = [(i, later) for i, later in self.topics_and_pins if i < index and later > number]
            if before:
                late.append((number, index, before[0][1], before[0][0]))
        return late


def needed_calls(count: int, pages_by_user: Counter[str]) -> dict[str, tuple[int, Any]]:
    """Each budget the storm draws on, by its key: (calls the storm needs, its limit). Every
    incident needs a channel, an invite, a topic, a pin, a summary in its channel and a broadcast;
    every page a DM to its person."""
    needed: dict[str, tuple[int, Any]] = {}

    def add(method: str, args: dict[str, Any], calls: int) -> None:
        for key, limit in budgets(method, args):
            needed[key] = (needed.get(key, (0, limit))[0] + calls, limit)

    for method in ("conversations.create", "conversations.invite", "conversations.setTopic", "pins.add"):
        add(method, {}, count)
    add("chat.postMessage", {"channel": INCIDENTS_CHANNEL}, count)
    for user, pages in pages_by_user.items():
        add("chat.postMessage", {"channel": user}, pages)
    return needed


def storm_once(*, db: str, count: int, seconds: float, timeout: float, workers: int, rate: float,
               retry_after: int) -> Outcome:
    outcome = Outcome()
    with Workdir() as workdir:
        databases = Databases(workdir)
        standin = start_standin(limits=True)
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
            standin.rate_limits.reset()  # the window starts full, as the floor assumes
            if rate:
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
            sender = threading.Thread(target=lambda: loaded.setdefault("load", run_load(
                server.host, bodies, concurrency=32, interval=seconds / count, timeout=seconds + 60)))
            sender.start()
            launched = time.time()
            sender.join(timeout=seconds + 90)
            load = loaded.get("load") or Load([], 0.0)
            numbers = {
                int(m.group(1))
                for r in load.results
                if r.status == 200
                for m in [re.search(r"Declared incident #(\d+)", r.body)]
                if m
            }
            began = load.began or launched
            progress = Progress([])
            while time.time() - launched < timeout:
                pages_by_incident = read_pages(url)
                progress = Progress(standin.calls)
                sent = Counter(number for _, number, _ in progress.page_dms)
                if len(progress.set_up(numbers)) == len(numbers) and all(
                    sent[n] >= pages for n, pages in pages_by_incident.items()
                ):
                    break
                time.sleep(1.0)
            finished = progress.set_up(numbers)
            outcome.set_up = len(finished)
            if numbers and len(finished) == len(numbers):
                outcome.all_set_up = max(finished.values()) - began
            pages_by_user, pages_total = read_pages_by_user(url)
            outcome.pages, outcome.pages_sent = pages_total, len(progress.page_dms)
            if progress.page_dms and outcome.pages_sent >= outcome.pages:
                outcome.all_pages = max(at for _, _, at in progress.page_dms) - began
            late = progress.late_pages()
            outcome.late_pages = len(late)
            for number, index, later, at in late[:5]:
                print(f"late page: #{number}'s DM (call {index}) after a topic or pin of #{later} (call {at})")
            latencies = load.latencies
            outcome.declared = len(numbers)
            outcome.errors = load.errors + (count - len(load.results))
            outcome.ack_p50, outcome.ack_p99 = percentile(latencies, 50), percentile(latencies, 99)
            outcome.ack_max = max(latencies, default=float("nan"))
            per_number = Counter(
                int(m.group(1)) for c in standin.channel_list() for m in [CHANNEL.match(c["name"])] if m
            )
            outcome.duplicates = sum(n - 1 for n in per_number.values() if n > 1)
            calls = standin.calls
            outcome.slack_calls = len(calls)
            outcome.rate_limited = sum(1 for c in calls if c.status == 429)
            needed = needed_calls(len(numbers), pages_by_user)
            made = Counter(key for c in calls if c.status != 429 for key, _ in budgets(c.method, c.args))
            refused = Counter(key for c in calls if c.status == 429 for key, _ in budgets(c.method, c.args))
            floors = {key: floor_seconds(n, limit) for key, (n, limit) in needed.items()}
            outcome.floor_budget, outcome.floor = max(floors.items(), key=lambda kv: kv[1], default=("", 0.0))
            outcome.floor = max(outcome.floor, seconds)  # nothing is set up before it is declared
            outcome.budgets = [
                [key, f"{limit.calls}/{limit.seconds:.0f} s", n, made[key], refused[key], f"{floors[key]:.0f}"]
                for key, (n, limit) in sorted(needed.items(), key=lambda kv: -floors[kv[0]])
            ]
            stored, entries, failed, pending = read_database(url)
            outcome.lost_entries = len(numbers - entries) + len(numbers - stored)
            outcome.outbox_failed, outcome.outbox_pending = failed, pending
        finally:
            if server is not None:
                server.stop()
            standin.stop()
            databases.close()
    return outcome


def read_pages(url: str) -> dict[int, int]:
    """Pages recorded so far, by incident."""
    from sqlmodel import select

    from bot.models import Page
    from bot.storage import Storage

    storage = Storage(url)
    try:
        with storage.read() as session:
            return Counter(n for n in session.exec(select(Page.incident_id)).all() if n is not None)
    finally:
        storage.dispose()


def read_pages_by_user(url: str) -> tuple[Counter[str], int]:
    from sqlmodel import select

    from bot.models import Page
    from bot.storage import Storage

    storage = Storage(url)
    try:
        with storage.read() as session:
            users = Counter(session.exec(select(Page.user).where(Page.incident_id.is_not(None))).all())
    finally:
        storage.dispose()
    return users, sum(users.values())


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
                session.exec(select(TimelineEntry.incident_id).where(TimelineEntry.kind == "declared")).all()
            )
            statuses = Counter(session.exec(select(OutboxTask.status)).all())
    finally:
        storage.dispose()
    return incidents, declared, statuses.get("failed", 0), statuses.get("pending", 0)


def seconds_text(value: float | None, timeout: float) -> str:
    return f"> {timeout:.0f} (unfinished)" if value is None else f"{value:.1f}"


def run(*, db: str = "sqlite", count: int = 100, seconds: float = 10.0, rate: float = 0.0,
        retry_after: int = 1, timeout: float = 420.0, workers: int = 1) -> list[Row]:
    extra = f", plus {rate:.0%} of calls answered 429 + Retry-After {retry_after} s" if rate else ""
    print(f"\n== incident storm ({db}): {count} declarations in {seconds:g} s against Slack's tiers{extra}")
    print(f"machine: {machine()}")
    o = storm_once(db=db, count=count, seconds=seconds, timeout=timeout, workers=workers, rate=rate,
                   retry_after=retry_after)
    print_table(["budget", "limit", "calls needed", "calls made", "429s", "floor s"], o.budgets,
                title=f"Slack budgets the storm draws on ({db})")
    bench = f"storm ({db})"
    ratio = o.all_set_up / o.floor if o.all_set_up is not None and o.floor else float("inf")
    rows = [
        Row(bench, "declarations acknowledged", f"{o.declared}/{count}", "", "all",
            verdict(o.declared == count and o.errors == 0)),
        Row(bench, "slowest acknowledgement", f"{ms(o.ack_max)} ms", f"p50 {ms(o.ack_p50)} ms", "< 3000 ms",
            verdict(o.ack_max < 3.0)),
        Row(bench, "time until every channel is set up",
            seconds_text(o.all_set_up, timeout) + " s" + (f" ({ratio:.2f}x floor)" if ratio != float("inf") else ""),
            f"floor {o.floor:.0f} s ({o.floor_budget})", "<= 1.1x floor", verdict(ratio <= 1.1)),
        Row(bench, "channels fully set up", f"{o.set_up}/{o.declared}", "", "all", verdict(o.set_up == o.declared)),
        Row(bench, "time until every page DM is sent", seconds_text(o.all_pages, timeout) + " s",
            f"{o.pages_sent}/{o.pages} DMs", "", ""),
        Row(bench, "page DMs after a later incident's topic or pin", str(o.late_pages), "", "0",
            verdict(o.late_pages == 0 and o.pages_sent >= o.pages)),
        Row(bench, "429s received", str(o.rate_limited), f"{o.slack_calls} calls", "", ""),
        Row(bench, "duplicate channels", str(o.duplicates), "", "0", verdict(o.duplicates == 0)),
        Row(bench, "lost timeline entries", str(o.lost_entries), "", "0", verdict(o.lost_entries == 0)),
        Row(bench, "outbox failed/pending at end", f"{o.outbox_failed}/{o.outbox_pending}", "", "", ""),
    ]
    print_table(["measure", "value", "beside", "target", "verdict"],
                [[r.measure, r.value, r.baseline, r.target, r.verdict] for r in rows], title=f"Incident storm ({db})")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=0.0, help="share of Web API calls also answered 429")
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=420.0, help="give up waiting for the set-up after this")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="25 declarations in 2.5 s")
    args = parser.parse_args(argv)
    count, seconds = (25, 2.5) if args.quick else (args.count, args.seconds)
    started = time.monotonic()
    rows = run(db=args.db, count=count, seconds=seconds, rate=args.rate, retry_after=args.retry_after,
               timeout=args.timeout, workers=args.workers)
    print(f"\n(storm took {time.monotonic() - started:.0f} s)")
    return 0 if all(row.verdict != "FAIL" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
