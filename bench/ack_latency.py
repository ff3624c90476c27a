"""Acknowledgement latency: how fast Slack hears back from the production server.

Signed `/incident declare` and `/oncall` requests go over HTTP to `python -m bot serve
--no-scheduler` (the Procfile's web process: gunicorn, the bot's worker) pointed at a Slack stand-in
and an SQLite file (or PostgreSQL with --db postgresql), at concurrency 1, 8 and 32. The
baseline, in the same run and interleaved round by round, is bench/bare_bolt_app.py (a Bolt
app that only acks) behind the same gunicorn settings, through Bolt's Flask adapter (with
--bare wsgi, Bolt's WSGI adapter without Flask, the way the bot answers /slack/events). A
second baseline, interleaved the same way and reported for information only, is the same bare
app with the bot's listener mode (process_before_response=True: the listener runs in the
request's thread, with no 10 ms polling for ack). The latency is that of the HTTP response,
which is Slack's acknowledgement; between rounds the bot's outbox is left to drain and its
processes to go idle, so that its side effects never land on the next round.

Target at concurrency 8: p99 under 100 ms and under 2x the bare-Bolt p99 (Bolt's defaults).

    .venv/bin/python bench/ack_latency.py [--db sqlite|postgresql] [--requests 1000] [--rounds 10] [--bare flask|wsgi] [--quick]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from _common import (
    Databases,
    Row,
    Workdir,
    machine,
    ms,
    percentile,
    print_table,
    ratio,
    slash_body,
    start_bare_bolt,
    start_bot,
    start_standin,
    verdict,
    wait_quiet,
)
from _loadgen import Load, run_load

TARGET_P99 = 0.100
TARGET_RATIO = 2.0
COMMANDS = ("declare", "oncall")
SERVERS = {  # name: label in the tables
    "bot": "bot",
    "bare": "bare Bolt",
    "bare-same-settings": "bare Bolt, bot's settings",  # process_before_response=True
}


def bodies(kind: str, count: int, standin, tag: str) -> list[str]:
    """Slash-command bodies, each with its own response_url."""
    out = []
    for i in range(count):
        url = standin.response_url(channel_id="C0GENERAL", user_id="U0PRIYA")
        if kind == "declare":
            out.append(
                slash_body(
                    "/incident", f"declare sev3 Bench {tag} {i} checkout slow", response_url=url
                )
            )
        else:
            out.append(slash_body("/oncall", "", response_url=url))
    return out


def merge(loads: list[Load]) -> tuple[list[float], int, float, int]:
    """(latencies, errors, throughput, count) over rounds; throughput = answered / summed wall."""
    latencies = [x for load in loads for x in load.latencies]
    errors = sum(load.errors for load in loads)
    wall = sum(load.wall for load in loads)
    return (
        latencies,
        errors,
        (len(latencies) / wall if wall else float("nan")),
        sum(len(load.results) for load in loads),
    )


def wrong_replies(kind: str, loads: list[Load]) -> int:
    """Bot answers that are not what the command should say (a declaration names its number)."""
    if kind != "declare":
        return 0
    return sum(
        1
        for load in loads
        for r in load.results
        if r.status == 200 and not re.search(r"Declared incident #\d+", r.body)
    )


def run(
    *,
    db: str = "sqlite",
    requests: int = 1000,
    levels: tuple[int, ...] = (1, 8, 32),
    rounds: int = 10,
    workers: int = 1,
    threads: int = 8,
    warmup: int = 20,
    bare: str = "flask",
    commands: tuple[str, ...] = COMMANDS,
    other: tuple[str, Path] | None = None,
) -> list[Row]:
    """With other=(piece, folder), the bot of that checkout (the same code with one speed
    mechanism taken out) runs too, interleaved, and its figures and targets are reported."""
    labels = dict(SERVERS)
    if other is not None:
        labels["other"] = f"bot without {other[0]}"
    print(
        f"\n== ack latency ({db}): {requests} requests per command and level, {rounds} interleaved rounds, "
        f"gunicorn (the bot's request-buffering gthread) {workers} worker(s) x {threads} threads; bare Bolt through "
        + {"flask": "Bolt's Flask adapter", "wsgi": "Bolt's WSGI adapter (no Flask)"}[bare]
        + ", with Bolt's defaults and with the bot's process_before_response=True"
    )
    print(f"machine: {machine()}")
    collected: dict[tuple[str, int, str], list[Load]] = {}
    used: dict[tuple[str, int, str], float] = {}  # server CPU seconds
    with Workdir() as workdir:
        databases = Databases(workdir)
        standin = start_standin()
        servers = {}
        try:
            url = databases.url(db)
            servers["bot"] = start_bot(workdir, standin, url, workers=workers, threads=threads)
            if other is not None:
                servers["other"] = start_bot(
                    workdir, standin, databases.url(db), workers=workers, threads=threads,
                    name="bot-without", root=other[1],
                )
            servers["bare"] = start_bare_bolt(workdir, standin, workers=workers, threads=threads, adapter=bare)
            servers["bare-same-settings"] = start_bare_bolt(
                workdir, standin, workers=workers, threads=threads, adapter=bare,
                process_before_response=True, name="bare-bolt-same",
            )
            for kind in commands:  # first requests load templates, fill caches, open pools
                for name, server in servers.items():
                    run_load(
                        server.host, bodies(kind, warmup, standin, f"warmup-{name}"), concurrency=1
                    )
                    wait_quiet(standin)
                    server.wait_idle()
            per_round = max(1, requests // rounds)
            lagged = 0.0  # the longest wait for the bot's processes to go idle after a round
            for level in levels:
                for kind in commands:
                    for r in range(rounds):
                        for name, server in servers.items():
                            cpu = server.cpu_seconds()
                            load = run_load(
                                server.host,
                                bodies(kind, per_round, standin, f"c{level}-r{r}-{name}"),
                                concurrency=level,
                                timeout=180,
                            )
                            collected.setdefault((kind, level, name), []).append(load)
                            if name in ("bot", "other"):  # its side effects stay out of the next turn
                                wait_quiet(standin)  # the outbox's Slack calls
                                lagged = max(lagged, server.wait_idle())  # and the clock's saving
                            # server CPU of the round, the bot's outbox work included
                            used[(kind, level, name)] = used.get((kind, level, name), 0.0) + (
                                server.cpu_seconds() - cpu
                            )
            wait_quiet(standin, quiet=1.0, timeout=120)
            memory = {name: server.memory() for name, server in servers.items()}
            channels = sum(1 for c in standin.channel_list() if c["name"].startswith("inc-"))
            declared = (
                sum(
                    1
                    for (kind, _, name), loads in collected.items()
                    if kind == "declare" and name in ("bot", "other")
                    for load in loads
                    for r in load.results
                    if r.status == 200
                )
                + warmup * (2 if other is not None and "declare" in commands else 1)
            )
        finally:
            for server in servers.values():
                server.stop()
            standin.stop()
            databases.close()

    rows, summary = [], []
    p99s: dict[tuple[str, int, str], float] = {}
    for kind in commands:
        for level in levels:
            for name, label in labels.items():
                loads = collected[(kind, level, name)]
                latencies, errors, rps, count = merge(loads)
                errors += wrong_replies(kind, loads) if name in ("bot", "other") else 0
                p99s[(kind, level, name)] = percentile(latencies, 99)
                rows.append(
                    [
                        kind,
                        level,
                        label,
                        count,
                        errors,
                        ms(percentile(latencies, 50)),
                        ms(percentile(latencies, 90)),
                        ms(percentile(latencies, 99)),
                        ms(max(latencies, default=float("nan"))),
                        f"{rps:.0f}",
                        f"{used[(kind, level, name)] / count * 1000:.1f}" if count else "n/a",
                    ]
                )
            for base in ("bare", "bare-same-settings"):
                bot_over_base = ratio(p99s[(kind, level, "bot")], p99s[(kind, level, base)])
                rows.append(
                    [kind, level, f"ratio bot/{base} (p99)", "", "", "", "", f"{bot_over_base:.2f}x"]
                    + [""] * 3
                )
            if other is not None:
                without = ratio(p99s[(kind, level, "other")], p99s[(kind, level, "bot")])
                rows.append(
                    [kind, level, "ratio without/bot (p99)", "", "", "", "", f"{without:.2f}x"]
                    + [""] * 3
                )
    print_table(
        [
            "command",
            "conc.",
            "server",
            "requests",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "req/s",
            "server CPU ms/req",
        ],
        rows,
        title=f"Acknowledgement latency over HTTP ({db})",
    )
    print(
        "\nserver CPU: user + system time of the gunicorn master and workers over each round, "
        "the bot's outbox work (channels, invites, pins, DMs) until the stand-in went quiet and its processes idle included"
    )
    print(
        f"between rounds the bot's processes went idle within {lagged:.1f} s of the stand-in's last call\n"
        f"bot: {declared} declarations acknowledged, {channels} incident channels created by the outbox; "
        "peak RSS: " + "; ".join(f"{labels[n]} {memory[n][0] / 1024:.0f} MiB" for n in labels)
    )
    print(
        "ratio bot/bare-same-settings: against the bare app run as the bot's "
        "(process_before_response=True), for information, no target"
    )
    level = 8 if 8 in levels else levels[-1]
    print(f"\ntargets at concurrency {level}:")
    if other is not None:
        summary += without_rows(db, level, commands, other[0], p99s, used, collected)
    for kind in commands:
        bot_p99, bare_p99 = p99s[(kind, level, "bot")], p99s[(kind, level, "bare")]
        same_p99 = p99s[(kind, level, "bare-same-settings")]
        errors = sum(
            row[4] for row in rows if row[0] == kind and row[2] == "bot" and isinstance(row[4], int)
        )
        ok_abs, ok_rel = bot_p99 < TARGET_P99, ratio(bot_p99, bare_p99) < TARGET_RATIO
        print(
            f"  {kind}: p99 {ms(bot_p99)} ms < 100 ms: {verdict(ok_abs)}; "
            f"{ratio(bot_p99, bare_p99):.2f}x bare-Bolt p99 ({ms(bare_p99)} ms) < 2x: {verdict(ok_rel)}; "
            f"errors {errors}: {verdict(errors == 0)}; "
            f"info: {ratio(bot_p99, same_p99):.2f}x bare-same-settings p99 ({ms(same_p99)} ms)"
        )
        bench = f"ack latency ({db})"
        command = "incident declare" if kind == "declare" else "oncall"
        summary += [
            Row(
                bench,
                f"/{command} p99 at c={level}",
                f"{ms(bot_p99)} ms",
                f"{ms(bare_p99)} ms bare Bolt",
                "< 100 ms",
                verdict(ok_abs),
            ),
            Row(
                bench,
                f"/{command} p99 ratio at c={level}",
                f"{ratio(bot_p99, bare_p99):.2f}x",
                "1x",
                "< 2x",
                verdict(ok_rel),
            ),
            Row(
                bench,
                f"/{command} p99 ratio to bare-same-settings at c={level}",
                f"{ratio(bot_p99, same_p99):.2f}x",
                f"{ms(same_p99)} ms bare Bolt, bot's settings",
                "no target",
                "info",
            ),
        ]
        for each in levels:
            if each != level:
                summary.append(
                    Row(
                        bench,
                        f"/{command} p99 at c={each}",
                        f"{ms(p99s[(kind, each, 'bot')])} ms",
                        f"{ms(p99s[(kind, each, 'bare')])} ms bare Bolt",
                        f"{ratio(p99s[(kind, each, 'bot')], p99s[(kind, each, 'bare')]):.2f}x",
                        "",
                    )
                )
        summary.append(
            Row(bench, f"{kind} errors (all levels)", str(errors), "", "0", verdict(errors == 0))
        )
    summary.append(
        Row(
            f"ack latency ({db})",
            "channels created / declared",
            f"{channels} / {declared}",
            "",
            "all",
            verdict(channels == declared),
        )
    )
    return summary


def without_rows(
    db: str, level: int, commands: tuple[str, ...], piece: str, p99s: dict, used: dict, collected: dict
) -> list[Row]:
    """The on/off comparison: the bot without the piece against the bot and the targets."""
    out = []
    for kind in commands:
        on, off, bare = (p99s[(kind, level, n)] for n in ("bot", "other", "bare"))
        cpu = {
            n: used[(kind, level, n)] / max(1, merge(collected[(kind, level, n)])[3]) * 1000
            for n in ("bot", "other")
        }
        held = off < TARGET_P99 and ratio(off, bare) < TARGET_RATIO
        print(
            f"  {kind} without {piece}: p99 {ms(off)} ms against {ms(on)} ms with it "
            f"({ratio(off, on):.2f}x), {ratio(off, bare):.2f}x bare Bolt; CPU/req "
            f"{cpu['other']:.1f} against {cpu['bot']:.1f} ms; targets without it: {verdict(held)}"
        )
        out.append(
            Row(
                f"on/off {piece} ({db})",
                f"{kind} p99 at c={level} without / with",
                f"{ms(off)} / {ms(on)} ms",
                f"{ms(bare)} ms bare Bolt",
                f"{ratio(off, bare):.2f}x / {ratio(on, bare):.2f}x bare",
                "held" if held else "missed",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--requests", type=int, default=1000, help="per command and concurrency level"
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="bot and baseline alternate this many times per level"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gunicorn workers (WEB_CONCURRENCY; Procfile default 1)",
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="gunicorn threads per worker (`serve` default 8)"
    )
    parser.add_argument(
        "--bare",
        choices=("flask", "wsgi"),
        default="flask",
        help="the baseline behind Flask (Bolt's Flask adapter, as ever) or Bolt's WSGI adapter",
    )
    parser.add_argument("--quick", action="store_true", help="60 requests per level")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels, comma-separated")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="declare, oncall or both")
    parser.add_argument(
        "--without", nargs=2, metavar=("PIECE", "FOLDER"),
        help="also run the bot of FOLDER (a checkout without PIECE), interleaved (bench/on_off.py)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = run(
        db=args.db,
        requests=60 if args.quick else args.requests,
        rounds=args.rounds,
        workers=args.workers,
        threads=args.threads,
        bare=args.bare,
        levels=tuple(int(x) for x in args.levels.split(",")),
        commands=tuple(args.commands.split(",")),
        other=(args.without[0], Path(args.without[1])) if args.without else None,
    )
    print(f"\n(ack latency took {time.monotonic() - started:.0f} s)")
    return 0 if all(row.verdict != "FAIL" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
