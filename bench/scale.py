"""Scale curve: does a request get slower as incidents pile up?

Seeds databases with 10, 1,000 and 100,000 past (resolved) incidents, each with its timeline
entries, page, outbox tasks, channel members and postmortem draft (bulk inserts through
SQLAlchemy core; the `incident` counter set to the count), on SQLite and PostgreSQL. Then
measures, in process through the Flask app and Bolt exactly as a served request runs (minus
the socket; listeners run before the response, so the time covers the whole handler
including the reply), `/incident declare`, `/oncall`, `/incident list` and a `/metrics`
scrape, interleaving the sizes round by round. The curve must stay flat: the ratio
100k / 10 is printed per measure (target < 1.5x). pyinstrument profiles the slowest case.

    .venv/bin/python bench/scale.py [--db sqlite,postgresql] [--sizes 10,1000,100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import (
    BOT_TOKEN,
    SIGNING_SECRET,
    Databases,
    Row,
    Workdir,
    bot_env,
    machine,
    ms,
    percentile,
    print_table,
    ratio,
    sign,
    slash_body,
    start_standin,
    verdict,
)

TARGET_RATIO = 1.5
MEASURES = ("declare", "oncall", "list", "metrics")
LABELS = {
    "declare": "/incident declare",
    "oncall": "/oncall",
    "list": "/incident list",
    "metrics": "GET /metrics",
}


class InProcessBot:
    """The bot's runtime, Bolt app and Flask app in this process, against one database."""

    def __init__(self, workdir: Any, standin: Any, url: str) -> None:
        import bot.web.routes  # noqa: F401  (installs the non-Slack routes)
        from bot.config import load_settings
        from bot.slack.app import create_app
        from bot.slack.client import make_client
        from bot.web.app import create_web_app
        from bot.wiring import build_runtime

        self.standin = standin
        settings = load_settings(bot_env(workdir, standin, url, 3000))
        self.runtime = build_runtime(
            settings, client=make_client(token=BOT_TOKEN, base_url=standin.api_url)
        )
        bolt = create_app(self.runtime, signing_secret=SIGNING_SECRET)
        self.client = create_web_app(self.runtime, bolt).test_client()
        self.count = 0

    def request(self, measure: str) -> float:
        """One request; returns its seconds. Raises when the answer is not the expected one."""
        self.count += 1
        if measure == "metrics":
            started = time.perf_counter()
            reply = self.client.get("/metrics")
            elapsed = time.perf_counter() - started
            if reply.status_code != 200:
                raise RuntimeError(f"/metrics answered {reply.status_code}")
            return elapsed
        url = self.standin.response_url(channel_id="C0GENERAL", user_id="U0PRIYA")
        command, text = {
            "declare": ("/incident", f"declare sev3 Scale probe {self.count}"),
            "oncall": ("/oncall", ""),
            "list": ("/incident", "list"),
        }[measure]
        body = slash_body(command, text, response_url=url)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
        started = time.perf_counter()
        reply = self.client.post("/slack/events", data=body, headers=headers)
        elapsed = time.perf_counter() - started
        if reply.status_code != 200 or (
            measure == "declare" and b"Declared incident #" not in reply.data
        ):
            raise RuntimeError(f"{measure} answered {reply.status_code}: {reply.data[:200]!r}")
        return elapsed

    def close(self) -> None:
        self.runtime.storage.dispose()


def seed(url: str, count: int, rng: random.Random) -> float:
    """Bulk-insert `count` resolved incidents with their rows; returns seconds taken."""
    from sqlalchemy import insert, update

    from bot.models import (
        ActionItem,
        ChannelMember,
        Claim,
        Counter,
        Incident,
        OutboxTask,
        Page,
        PostmortemDraft,
        TimelineEntry,
    )
    from bot.storage import Storage

    started = time.perf_counter()
    storage = Storage(url)
    storage.migrate()
    users = [
        "U0ALICE",
        "U0FRANK",
        "U0BOB",
        "U0ERIN",
        "U0CAROL",
        "U0DAVE",
        "U0GRACE",
        "U0HEIDI",
        "U0PRIYA",
    ]
    now = datetime.now(UTC)
    chunk = 5_000
    with storage.engine.begin() as conn:
        for first in range(1, count + 1, chunk):
            rows: dict[Any, list[dict[str, Any]]] = {
                t: []
                for t in (
                    Incident,
                    TimelineEntry,
                    Page,
                    OutboxTask,
                    ChannelMember,
                    PostmortemDraft,
                    ActionItem,
                    Claim,
                )
            }
            for n in range(first, min(first + chunk, count + 1)):
                declared = now - timedelta(days=3 * 365) * (1 - n / (count + 1)) - timedelta(days=1)
                resolved = declared + timedelta(minutes=rng.randint(20, 600))
                who, responder = rng.choice(users), rng.choice(users)
                channel = f"CP{n:09d}"
                rows[Incident].append(
                    {
                        "id": n,
                        "title": f"Past incident {n}: checkout errors",
                        "severity": rng.randint(1, 4),
                        "status": "resolved",
                        "commander": who,
                        "declarer": who,
                        "rotation": "payments",
                        "channel_id": channel,
                        "channel_name": f"inc-{n}-past-incident-{n}-checkout-errors",
                        "summary_ts": f"{n}.000100",
                        "declared_at": declared,
                        "acknowledged_at": declared + timedelta(minutes=3),
                        "mitigated_at": resolved - timedelta(minutes=10),
                        "resolved_at": resolved,
                        "last_update_at": resolved,
                        "summary": "Rolled back the release",
                        "description": None,
                        "dedup_key": None,
                    }
                )
                for i, (kind, text) in enumerate(
                    (
                        ("declared", "Declared SEV3"),
                        ("page", f"Paged <@{responder}>"),
                        ("note", "Error rate falling"),
                        ("resolved", "Status → resolved"),
                    )
                ):
                    rows[TimelineEntry].append(
                        {
                            "incident_id": n,
                            "at": declared + timedelta(minutes=i * 5),
                            "actor": who,
                            "kind": kind,
                            "text": text,
                            "old": None,
                            "new": None,
                            "permalink": None,
                            "source_key": None,
                        }
                    )
                rows[Page].append(
                    {
                        "incident_id": n,
                        "user": responder,
                        "rotation": "payments",
                        "level": 0,
                        "paged_by": who,
                        "reason": None,
                        "dedup_key": None,
                        "paged_at": declared,
                        "acknowledged_at": declared + timedelta(minutes=3),
                        "acknowledged_by": responder,
                        "escalated_at": None,
                        "escalated_by": None,
                        "dm_channel": f"D{responder}",
                        "dm_ts": f"{n}.000200",
                    }
                )
                for kind in ("incident.open", "incident.setup", "page.send", "incident.broadcast"):
                    rows[OutboxTask].append(
                        {
                            "kind": kind,
                            "payload": json.dumps({"incident_id": n}),
                            "status": "done",
                            "attempts": 1,
                            "next_attempt_at": declared,
                            "lease_until": None,
                            "last_error": None,
                            "created_at": declared,
                        }
                    )
                for member in {who, responder}:
                    rows[ChannelMember].append({"channel_id": channel, "user_id": member})
                rows[PostmortemDraft].append(
                    {
                        "incident_id": n,
                        "version": 1,
                        "created_at": resolved,
                        "status": "draft",
                        "markdown": f"# Incident {n}\n\nRolled back the release.\n",
                    }
                )
                rows[ActionItem].append(
                    {
                        "incident_id": n,
                        "text": "Add an alert on error rate",
                        "owner": who,
                        "created_by": who,
                        "created_at": resolved,
                    }
                )
                rows[Claim].append({"key": f"job:escalate:{n}:{n}", "claimed_at": declared})
            for model, values in rows.items():
                conn.execute(insert(model.__table__), values)  # type: ignore[attr-defined]
        counters = Counter.__table__  # type: ignore[attr-defined]
        if not conn.execute(
            update(counters).where(counters.c.name == "incident").values(value=count)
        ).rowcount:
            conn.execute(insert(counters).values(name="incident", value=count))
    if storage.engine.dialect.name == "postgresql":
        with storage.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(
                "VACUUM ANALYZE"
            )  # as autovacuum would have, long before 100k incidents
    storage.dispose()
    return time.perf_counter() - started


def profile(bot: InProcessBot, measure: str, requests: int) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(requests):
        bot.request(measure)
    profiler.stop()
    return profiler.output_text(unicode=False, color=False, show_all=False)


def run(
    *,
    databases: tuple[str, ...] = ("sqlite", "postgresql"),
    sizes: tuple[int, ...] = (10, 1_000, 100_000),
    rounds: int = 5,
    per_round: int = 20,
    profile_requests: int = 100,
) -> list[Row]:
    print(
        f"\n== scale curve: {', '.join(f'{s:,}' for s in sizes)} past incidents on {', '.join(databases)}; "
        f"{rounds} rounds x {per_round} requests per measure, sizes interleaved"
    )
    print(f"machine: {machine()}")
    rng = random.Random(2026)
    samples: dict[tuple[str, int, str], list[float]] = {}
    seeded: list[list[Any]] = []
    summary: list[Row] = []
    with Workdir() as workdir:
        dbs = Databases(workdir)
        standin = start_standin()
        bots: dict[tuple[str, int], InProcessBot] = {}
        try:
            for kind in databases:
                for size in sizes:
                    url = dbs.url(kind)
                    seconds = seed(url, size, rng)
                    seeded.append([kind, f"{size:,}", f"{seconds:.1f}"])
                    bots[(kind, size)] = InProcessBot(workdir, standin, url)
            print_table(
                ["database", "past incidents", "seeding s"],
                seeded,
                title="Seeded (about 14 rows per incident)",
            )
            measures = [
                m for m in MEASURES if m != "metrics" or _has_metrics(next(iter(bots.values())))
            ]
            for (
                bot
            ) in bots.values():  # warm-up: templates, caches, connection pools, people's profiles
                for measure in measures:
                    for _ in range(5):
                        bot.request(measure)
            for _ in range(rounds):
                for (kind, size), bot in bots.items():
                    for measure in measures:
                        samples.setdefault((kind, size, measure), []).extend(
                            bot.request(measure) for _ in range(per_round)
                        )
            medians = {key: percentile(values, 50) for key, values in samples.items()}
            growth = {
                (kind, m): ratio(medians[(kind, sizes[-1], m)], medians[(kind, sizes[0], m)])
                for kind in databases
                for m in measures
            }
            # What dominates the slowest request of the two at the largest size, and the
            # request whose time grew most, when it grew past the target.
            cases = [
                max(
                    ((kind, m) for kind in databases for m in ("declare", "oncall")),
                    key=lambda km: medians[(km[0], sizes[-1], km[1])],
                )
            ]
            grew = max(growth, key=lambda km: growth[km])
            if growth[grew] >= TARGET_RATIO and grew not in cases:
                cases.append(grew)
            trees = [
                (kind, m, profile(bots[(kind, sizes[-1])], m, profile_requests))
                for kind, m in cases
            ]
        finally:
            for bot in bots.values():
                bot.close()
            standin.stop()
            dbs.close()

    rows = []
    for kind in databases:
        for measure in measures:
            base, top = medians[(kind, sizes[0], measure)], medians[(kind, sizes[-1], measure)]
            flat = growth[(kind, measure)] < TARGET_RATIO
            # declare and /oncall carry the target; the others are reported, flagged WARN
            judged = verdict(flat) if measure in ("declare", "oncall") else ("" if flat else "WARN")
            rows.append(
                [kind, LABELS[measure]]
                + [
                    f"{ms(percentile(samples[(kind, s, measure)], 50))} / "
                    f"{ms(percentile(samples[(kind, s, measure)], 90))}"
                    for s in sizes
                ]
                + [f"{growth[(kind, measure)]:.2f}x", judged]
            )
            summary.append(
                Row(
                    f"scale ({kind})",
                    f"{LABELS[measure]} median at {sizes[-1]:,} incidents",
                    f"{ms(top)} ms",
                    f"{ms(base)} ms at {sizes[0]:,}",
                    f"{growth[(kind, measure)]:.2f}x, < {TARGET_RATIO}x",
                    judged,
                )
            )
    headers = (
        ["database", "request"]
        + [f"{s:,} p50 / p90 ms" for s in sizes]
        + [f"{sizes[-1]:,} / {sizes[0]:,}", "flat"]
    )
    print_table(headers, rows, title="Latency against past incidents (in process, whole handler)")
    for kind, measure, tree in trees:
        print(
            f"\npyinstrument: {LABELS[measure]} on {kind} with {sizes[-1]:,} past incidents "
            f"({profile_requests} requests, library frames folded):"
        )
        print("\n".join(line for line in tree.splitlines()[:70] if line.strip()))
    return summary


def _has_metrics(bot: InProcessBot) -> bool:
    try:
        bot.request("metrics")
        return True
    except RuntimeError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument(
        "--sizes", default="10,1000,100000", help="past incidents, comma-separated, smallest first"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="sizes 10, 1,000 and 20,000; 3 rounds")
    args = parser.parse_args(argv)
    sizes = (10, 1_000, 20_000) if args.quick else tuple(int(s) for s in args.sizes.split(","))
    started = time.monotonic()
    rows = run(
        databases=tuple(args.db.split(",")),
        sizes=sizes,
        rounds=3 if args.quick else args.rounds,
        per_round=args.per_round,
    )
    print(f"\n(scale took {time.monotonic() - started:.0f} s)")
    return 0 if all(row.verdict != "FAIL" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
