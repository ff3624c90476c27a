"""Alert storm: waves of 10 parallel Alertmanager notifications of 10,000 alerts each (about
720 KB apiece, one group each), new groups and repeats of the last wave taking turns, for 4 s,
while signed declarations arrive 10 a second and /healthz is polled every 0.1 s.

Measures each declaration's acknowledgement (Slack gives up after 3 s: the target is that
every one is answered within it), /healthz, and how long the notifications took, new and
repeated. Baseline in the same run: the same declarations and polls with no alerts. Against the
Procfile's two processes, on SQLite or PostgreSQL.

    .venv/bin/python bench/alert_storm.py [--db sqlite|postgresql] [--posts 10] [--alerts 10000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from _common import (
    ALERT_TOKEN,
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

TARGET_ACK = 3.0
RATE = 10  # declarations per second


@dataclass
class Phase:
    label: str
    acks: list[float] = field(default_factory=list)
    errors: int = 0
    health: list[float] = field(default_factory=list)
    new: list[float] = field(default_factory=list)  # seconds per notification of new alerts
    repeated: list[float] = field(default_factory=list)
    post_errors: int = 0
    cpu: float = 0.0


def notification(group: str, alerts: int) -> bytes:
    """An Alertmanager notification of one group with `alerts` critical alerts."""
    payload = {
        "version": "4", "groupKey": group, "status": "firing", "receiver": "oncall-bot",
        "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "severity": "critical", "disk": str(i)}}
                   for i in range(alerts)],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def post(port: int, body: bytes) -> float | None:
    """Seconds until answered 200, None otherwise."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/alerts/alertmanager", body=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {ALERT_TOKEN}"})
        reply = connection.getresponse()
        reply.read()
        return time.monotonic() - started if reply.status == 200 else None
    except OSError:
        return None
    finally:
        connection.close()


def poll_health(port: int, stop: threading.Event, into: list[float]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            into.append(time.monotonic() - started)
        except OSError:
            into.append(float("inf"))
        finally:
            connection.close()
        stop.wait(0.1)


def storm(port: int, stop: threading.Event, phase: Phase, posts: int, alerts: int) -> None:
    """Waves of `posts` parallel notifications until stopped: new groups, then the same again."""
    wave = 0
    with ThreadPoolExecutor(posts) as pool:
        while not stop.is_set():
            bodies = [notification(f"storm-{wave // 2}-{i}", alerts) for i in range(posts)]
            for seconds in pool.map(lambda body: post(port, body), bodies):
                if seconds is None:
                    phase.post_errors += 1
                else:
                    (phase.repeated if wave % 2 else phase.new).append(seconds)
            wave += 1


def run_phase(label: str, server, standin, *, seconds: float, posts: int, alerts: int) -> Phase:
    phase = Phase(label)
    count = int(seconds * RATE)
    bodies = [slash_body("/incident", f"declare sev3 {label} {i} disk full", response_url=standin.response_url())
              for i in range(count)]
    stop = threading.Event()
    workers = [threading.Thread(target=poll_health, args=(server.port, stop, phase.health))]
    if posts:
        workers.append(threading.Thread(target=storm, args=(server.port, stop, phase, posts, alerts)))
    cpu = server.cpu_seconds()
    loaded: list[Load] = []
    sender = threading.Thread(target=lambda: loaded.append(
        run_load(server.host, bodies, concurrency=32, interval=1 / RATE, timeout=seconds + 60)))
    sender.start()
    time.sleep(0.5)  # the storm begins once declarations are arriving
    for worker in workers:
        worker.start()
    sender.join()
    stop.set()
    for worker in workers:
        worker.join()
    phase.cpu = server.cpu_seconds() - cpu
    load = loaded[0] if loaded else Load([], 0.0)
    phase.acks = load.latencies
    phase.errors = load.errors + count - len(load.results)
    return phase


def run(*, db: str = "sqlite", posts: int = 10, alerts: int = 10_000, seconds: float = 5.0) -> list[Row]:
    print(f"\n== alert storm ({db}): waves of {posts} parallel notifications of {alerts:,} alerts while "
          f"{RATE} declarations a second arrive for {seconds:.0f} s\nmachine: {machine()}")
    phases = []
    with Workdir() as workdir:
        databases = Databases(workdir)
        standin = start_standin()
        server = None
        try:
            server = start_bot(workdir, standin, databases.url(db))
            run_load(server.host, [slash_body("/oncall", "", response_url=standin.response_url())], concurrency=1)
            for label, count in (("declarations alone", 0), ("declarations in the storm", posts)):
                wait_quiet(standin)
                server.wait_idle()
                phases.append(run_phase(label, server, standin, seconds=seconds, posts=count, alerts=alerts))
        finally:
            if server is not None:
                server.stop()
            standin.stop()
            databases.close()
    print_table(
        ["phase", "declarations", "errors", "ack p50 ms", "ack p99 ms", "ack max ms", "/healthz max ms",
         "notifications new / repeated", "new median / max ms", "repeated median / max ms", "server CPU s"],
        [[p.label, len(p.acks), p.errors, ms(percentile(p.acks, 50)), ms(percentile(p.acks, 99)),
          ms(max(p.acks, default=float("nan"))), ms(max(p.health, default=float("nan"))),
          f"{len(p.new)} / {len(p.repeated)}" + (f" ({p.post_errors} failed)" if p.post_errors else ""),
          f"{ms(percentile(p.new, 50))} / {ms(max(p.new, default=float('nan')))}",
          f"{ms(percentile(p.repeated, 50))} / {ms(max(p.repeated, default=float('nan')))}", f"{p.cpu:.1f}"]
         for p in phases],
        title=f"Alert storm ({db})",
    )
    alone, stormed = phases
    slowest = max(stormed.acks, default=float("inf"))
    ok = stormed.errors == 0 and stormed.post_errors == 0 and bool(stormed.new) and slowest < TARGET_ACK
    print(f"\ntarget: every declaration acknowledged < {TARGET_ACK:.0f} s during the storm: "
          f"slowest {ms(slowest)} ms, {stormed.errors} errors, {stormed.post_errors} failed notifications: {verdict(ok)}")
    return [
        Row(f"alert storm ({db})", f"slowest declaration ack, {posts} x {alerts:,}-alert notifications in waves",
            f"{ms(slowest)} ms", f"{ms(max(alone.acks, default=float('nan')))} ms without alerts",
            f"< {TARGET_ACK * 1000:.0f} ms", verdict(ok)),
        Row(f"alert storm ({db})", "notification of new / repeated alerts, median",
            f"{ms(percentile(stormed.new, 50))} / {ms(percentile(stormed.repeated, 50))} ms"),
        Row(f"alert storm ({db})", "slowest /healthz during the storm", f"{ms(max(stormed.health, default=float('nan')))} ms",
            f"{ms(max(alone.health, default=float('nan')))} ms without alerts"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--posts", type=int, default=10)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rows = run(db=args.db, posts=args.posts, alerts=args.alerts, seconds=args.seconds)
    return 0 if all(r.verdict in ("PASS", "") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
