"""Notifications: from an alert in (`POST /alerts/alertmanager`) to the first notification out
(the Slack DM at the stand-in, and a `json://` push at a local receiver), at 100 alerts a
minute, beside the stand-ins' own response time measured in the same run; then the fan-out
of one incident paging 50 people with 3 contacts each (every one sent, each once).

Against the Procfile's two processes (web under gunicorn, `clock` with the scheduler and the
outboxes), on SQLite or PostgreSQL. Each alert is a group of its own at severity `warning`, so
it pages the on-call person without declaring an incident; everyone's push contact is `json://`
at `notify = 0`, so the DM and the push are both due at once.

    .venv/bin/python bench/notify.py [--db sqlite|postgresql] [--quick] [--seconds 60] [--people 50]
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from _common import (
    ALERT_TOKEN,
    BOT_TOKEN,
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
from _loadgen import run_load

from bot.testing.receivers import HttpReceiver

TARGET_P99 = 1.0  # seconds from the alert's arrival to its first notification out
PER_MINUTE = 100


def people_file(receiver: HttpReceiver, fans: list[str]) -> str:
    """Every bench person: one JSON push at once. Each fan-out person: three, all at once."""
    parts = []
    for user_id, _, _ in PEOPLE:
        parts.append(f'[[people]]\nuser = "{user_id}"\n'
                     f'contacts = {{ push = "json://127.0.0.1:{receiver.port}/push/{user_id}" }}\n'
                     'notify = { push = 0 }\n')
    for user_id in fans:
        contacts = ", ".join(f'{name} = "json://127.0.0.1:{receiver.port}/fan/{user_id}/{name}"'
                             for name in ("phone", "email", "pager"))
        parts.append(f'[[people]]\nuser = "{user_id}"\ncontacts = {{ {contacts} }}\n'
                     'notify = { phone = 0, email = 0, pager = 0 }\n')
    return "\n".join(parts)


def alert_body(name: str) -> bytes:
    return json.dumps({
        "version": "4", "groupKey": f"bench-{name}", "status": "firing", "receiver": "oncall-bot",
        "alerts": [{"status": "firing", "labels": {"alertname": name, "severity": "warning"}}],
    }).encode()


def post_alert(port: int, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/alerts/alertmanager", body=body,
                           headers={"Content-Type": "application/json", "Authorization": f"Bearer {ALERT_TOKEN}"})
        reply = connection.getresponse()
        reply.read()
        return reply.status
    finally:
        connection.close()


def first_dms(standin) -> dict[str, float]:
    """When each alert's first DM reached the stand-in (perf_counter), filled as they arrive."""
    dms: dict[str, float] = {}
    lock = threading.Lock()

    def on_call(call) -> None:
        if call.method == "chat.postMessage" and str(call.args.get("channel", "")).startswith("U"):
            text = str(call.args.get("text", ""))
            at = time.perf_counter()
            for word in text.split():
                name = word.strip("*:.,()[]")
                if name.startswith("Bench") and name[5:].isdigit():
                    with lock:
                        dms.setdefault(name, at)

    standin.on_call(on_call)
    return dms


def stand_in_times(standin, receiver: HttpReceiver, count: int) -> tuple[list[float], list[float]]:
    """The stand-ins' own response time: chat.postMessage to the Slack stand-in, and a POST to
    the push receiver, sent directly (no bot)."""
    from slack_sdk import WebClient

    client = WebClient(token=BOT_TOKEN, base_url=standin.api_url)
    slack, push = [], []
    for i in range(count):
        began = time.perf_counter()
        client.chat_postMessage(channel=f"U0BASE{i:03d}", text=f"baseline {i}")  # a DM, as a page is
        slack.append(time.perf_counter() - began)
        began = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
        connection.request("POST", "/baseline", body=b'{"message": "baseline"}', headers={"Content-Type": "application/json"})
        connection.getresponse().read()
        connection.close()
        push.append(time.perf_counter() - began)
    return slack, push


def run_rate(server, standin, receiver: HttpReceiver, seconds: float):
    """Alerts at PER_MINUTE for `seconds`; (alert→DM, alert→push, errors)."""
    dms = first_dms(standin)
    count = max(1, int(seconds * PER_MINUTE / 60))
    sent: dict[str, float] = {}
    errors = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        futures = []
        for i in range(count):
            name = f"Bench{i:04d}"
            time.sleep(max(0.0, started + i * 60 / PER_MINUTE - time.perf_counter()))
            sent[name] = time.perf_counter()
            futures.append(pool.submit(post_alert, server.port, alert_body(name)))
        errors = sum(1 for f in futures if f.result() != 200)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pushed = {r.body.get("message", "") for r in receiver.received if r.path.startswith("/push/")}
        if len(dms) >= count and sum(1 for name in sent if any(name in m for m in pushed)) >= count:
            break
        time.sleep(0.2)
    pushes: dict[str, float] = {}
    for received in receiver.received:
        if received.path.startswith("/push/") and isinstance(received.body, dict):
            for name in sent:
                if name in str(received.body.get("message", "")):
                    pushes.setdefault(name, received.at)
    to_dm = [dms[n] - sent[n] for n in sent if n in dms]
    to_push = [pushes[n] - sent[n] for n in sent if n in pushes]
    missing = 2 * count - len(to_dm) - len(to_push)
    return to_dm, to_push, errors + missing, count


def run_fanout(server, standin, receiver: HttpReceiver, fans: list[str]) -> tuple[int, int, int, float]:
    """One incident paging every fan: (pushes expected, received once, received twice or more, seconds)."""
    run_load(server.host, [slash_body("/incident", "declare sev2 Fan-out drill", response_url=standin.response_url())],
             concurrency=1)
    deadline = time.monotonic() + 60
    channel = None
    while channel is None and time.monotonic() < deadline:
        channel = next((c["id"] for c in standin.channel_list() if c["name"].startswith("inc-") and "fan-out" in c["name"]), None)
        time.sleep(0.1)
    assert channel is not None, "the fan-out incident's channel was never created"
    began = time.perf_counter()
    bodies = [slash_body("/incident", f"page <@{user_id}|{user_id.lower()}>", channel=channel,
                         response_url=standin.response_url()) for user_id in fans]
    run_load(server.host, bodies, concurrency=4)
    expected = {f"/fan/{u}/{c}" for u in fans for c in ("phone", "email", "pager")}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len({r.path for r in receiver.received} & expected) < len(expected):
        time.sleep(0.2)
    took = time.perf_counter() - began
    time.sleep(3)  # a repeat would come within the outbox's retries
    counts: dict[str, int] = {}
    for received in receiver.received:
        if received.path in expected:
            counts[received.path] = counts.get(received.path, 0) + 1
    once = sum(1 for n in counts.values() if n == 1)
    twice = sum(1 for n in counts.values() if n > 1)
    return len(expected), once, twice, took


def run(*, db: str = "sqlite", seconds: float = 60.0, people: int = 50) -> list[Row]:
    print(f"\n== notifications ({db}): {PER_MINUTE} alerts a minute for {seconds:.0f} s, then one incident paging "
          f"{people} people with 3 contacts each\nmachine: {machine()}")
    receiver = HttpReceiver().start()
    fans = [f"U0FAN{i:03d}" for i in range(people)]
    with Workdir() as workdir:
        databases = Databases(workdir)
        standin = start_standin()
        for user_id in fans + [f"U0BASE{i:03d}" for i in range(100)]:
            standin.add_user(user_id, user_id.lower(), tz="UTC", email=f"{user_id.lower()}@example.com")
        (workdir / "rotations").mkdir(exist_ok=True)
        (workdir / "rotations" / "people.toml").write_text(people_file(receiver, fans))
        server = None
        try:
            server = start_bot(workdir, standin, databases.url(db))
            run_load(server.host, [slash_body("/oncall", "", response_url=standin.response_url())], concurrency=1)
            wait_quiet(standin)
            server.wait_idle()
            to_dm, to_push, errors, count = run_rate(server, standin, receiver, seconds)
            slack_alone, push_alone = stand_in_times(standin, receiver, 100)
            wait_quiet(standin)
            expected, once, twice, took = run_fanout(server, standin, receiver, fans)
        finally:
            if server is not None:
                server.stop()
            standin.stop()
            receiver.stop()
            databases.close()
    print_table(
        ["measure", "count", "p50 ms", "p99 ms", "max ms"],
        [[what, len(values), ms(percentile(values, 50)), ms(percentile(values, 99)), ms(max(values, default=float("nan")))]
         for what, values in (("alert in -> Slack DM out", to_dm), ("alert in -> json:// push out", to_push),
                              ("stand-in alone: chat.postMessage", slack_alone),
                              ("receiver alone: POST", push_alone))],
        title=f"Alert to first notification, {PER_MINUTE} alerts a minute ({db})",
    )
    print(f"\n{count} alerts, {errors} not answered 200 or never notified")
    print(f"fan-out: {expected} pushes expected, {once} received once, {twice} more than once, all in {took:.1f} s")
    worst = max(percentile(to_dm, 99), percentile(to_push, 99)) if to_dm and to_push else float("inf")
    ok = errors == 0 and worst < TARGET_P99
    fan_ok = once == expected and twice == 0
    print(f"target: p99 alert -> notification < {TARGET_P99 * 1000:.0f} ms: {ms(worst)} ms: {verdict(ok)}; "
          f"fan-out all sent once: {verdict(fan_ok)}")
    return [
        Row(f"notify ({db})", f"alert -> DM / push p50, {PER_MINUTE}/min",
            f"{ms(percentile(to_dm, 50))} / {ms(percentile(to_push, 50))} ms",
            f"{ms(percentile(slack_alone, 50))} / {ms(percentile(push_alone, 50))} ms stand-ins alone"),
        Row(f"notify ({db})", f"alert -> DM / push p99, {PER_MINUTE}/min",
            f"{ms(percentile(to_dm, 99))} / {ms(percentile(to_push, 99))} ms",
            f"{ms(percentile(slack_alone, 99))} / {ms(percentile(push_alone, 99))} ms stand-ins alone",
            f"< {TARGET_P99 * 1000:.0f} ms", verdict(ok)),
        Row(f"notify ({db})", f"fan-out: {people} people x 3 contacts", f"{once} of {expected} once",
            f"{twice} repeated", f"all, once ({took:.1f} s)", verdict(fan_ok)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="20 s of alerts instead of 60")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--people", type=int, default=50)
    args = parser.parse_args()
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    rows = run(db=args.db, seconds=seconds, people=args.people)
    return 0 if all(r.verdict in ("PASS", "") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
