"""Bolt's lazy listeners against the bot's hand-off after the acknowledgement (AfterAck).

Two tiny Bolt apps, both with process_before_response=True as the bot's, served by gunicorn
with the settings bot/serve.py uses (its gthread worker, 1 worker x 8 threads, Bolt's WSGI adapter),
answer `/work TEXT`: the acknowledgement computes a reply, and after it the reply goes to the
Slack stand-in as chat.postEphemeral. `/work quiet` has no after-ack work.

- lazy:     `app.command("/work")(ack=acknowledge, lazy=[post_reply])`; the reply reaches the
            lazy function through the context. For every request of the listener, once the
            ack function has returned, Bolt builds a new BoltRequest from the raw body (parsed
            again) and a copy of the context, deep-copies that whole request (WebClient, ack,
            say and respond included; a context value that cannot be deep-copied is dropped
            with a warning), submits the lazy function to the listener executor and there
            builds its keyword arguments again; on `quiet` the lazy function finds no reply
            and returns.
- executor: the listener acknowledges, then submits the post to a ThreadPoolExecutor with the
            reply in a closure, as AfterAck does; on `quiet` it submits nothing.

Driven by bench/_loadgen.py at concurrency 1 and 8, the two apps alternate round by round.

    .venv/bin/python bench/lazy_vs_after_ack.py [--requests 300] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import (
    Server,
    Workdir,
    machine,
    ms,
    percentile,
    print_table,
    ratio,
    slash_body,
    start_bench_app,
    start_standin,
    wait_quiet,
)
from _loadgen import Load, run_load

APPS = ("lazy", "executor")
TEXTS = ("post", "quiet")  # with after-ack work, without


# ------------------------------------------------------------------ the apps (gunicorn side)
def wsgi_app(kind: str) -> Any:
    """The WSGI app of one kind, with the /healthz the bench waits for."""
    from slack_bolt import App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient

    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="after-ack")
    app = App(
        client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        token_verification_enabled=False,
        process_before_response=True,
        listener_executor=executor,  # lazy functions run here
    )

    def reply(command: dict) -> str | None:
        return None if command["text"] == "quiet" else f"working on {command['text']}"

    def post(client: Any, command: dict, text: str) -> None:
        client.chat_postEphemeral(channel=command["channel_id"], user=command["user_id"], text=text)

    if kind == "lazy":

        def acknowledge(ack: Any, command: dict, context: Any) -> None:
            context["reply"] = reply(command)
            ack()

        def post_reply(client: Any, command: dict, context: Any) -> None:
            if context["reply"]:
                post(client, command, context["reply"])

        app.command("/work")(ack=acknowledge, lazy=[post_reply])
    else:

        @app.command("/work")
        def work(ack: Any, client: Any, command: dict) -> None:
            text = reply(command)
            ack()
            if text:
                executor.submit(post, client, command, text)

    handler = SlackRequestHandler(app)

    def wsgi(environ: dict, start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"ok": true}']
        return handler(environ, start_response)

    return wsgi


# ------------------------------------------------------------------ the bench
def posts(standin: Any) -> int:
    return sum(1 for call in standin.calls_to("chat.postEphemeral") if call.ok)


def turn(
    server: Server, standin: Any, text: str, level: int, count: int
) -> tuple[Load, float, int]:
    """One app's share of a round: the load, the server's CPU seconds and the after-ack posts,
    read once the posts it owes have reached the stand-in and the server is idle."""
    cpu_before, posts_before = server.cpu_seconds(), posts(standin)
    load = run_load(
        server.host, [slash_body("/work", text) for _ in range(count)], concurrency=level
    )
    owed = len(load.latencies) if text == "post" else 0
    deadline = time.monotonic() + 30
    while posts(standin) - posts_before < owed and time.monotonic() < deadline:
        time.sleep(0.05)
    wait_quiet(standin, quiet=0.3)
    server.wait_idle(window=0.3)
    return load, server.cpu_seconds() - cpu_before, posts(standin) - posts_before


def run(*, requests: int = 300, rounds: int = 5, levels: tuple[int, ...] = (1, 8)) -> None:
    per_round = max(1, requests // rounds)
    print(
        f"\n== lazy listeners vs executor hand-off: {per_round * rounds} requests per app, text and "
        f"level, {rounds} interleaved rounds, gunicorn (the bot's gthread worker) 1 worker x 8 threads"
    )
    print(f"machine: {machine()}")
    loads: dict[tuple[str, int, str], list[Load]] = {}
    cpu: dict[tuple[str, int, str], float] = {}
    posted: dict[tuple[str, int, str], int] = {}
    with Workdir() as workdir:
        standin = start_standin()
        standin.add_member("C0GENERAL", "U0PRIYA")  # chat.postEphemeral needs the user in it
        servers: dict[str, Server] = {}
        try:
            for kind in APPS:
                app = f"lazy_vs_after_ack:wsgi_app({kind!r})"
                servers[kind] = start_bench_app(workdir, standin, app, name=f"{kind}-app")
            for server in servers.values():  # Bolt's first request calls auth.test
                run_load(server.host, [slash_body("/work", "warmup")] * 20, concurrency=1)
            wait_quiet(standin)
            for level in levels:
                for text in TEXTS:
                    for r in range(rounds):
                        for kind in APPS if r % 2 == 0 else APPS[::-1]:
                            key = (text, level, kind)
                            load, used, made = turn(servers[kind], standin, text, level, per_round)
                            loads.setdefault(key, []).append(load)
                            cpu[key] = cpu.get(key, 0.0) + used
                            posted[key] = posted.get(key, 0) + made
        finally:
            for server in servers.values():
                server.stop()
            standin.stop()

    rows = []
    for text in TEXTS:
        for level in levels:
            figures = {}
            for kind in APPS:
                key = (text, level, kind)
                latencies = [x for load in loads[key] for x in load.latencies]
                count = sum(len(load.results) for load in loads[key])
                p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                per_request = cpu[key] / count
                figures[kind] = (p50, p99, per_request)
                rows.append(
                    [f"/work {text}", level, kind, count, sum(load.errors for load in loads[key]),
                     ms(p50), ms(p99), f"{per_request * 1000:.2f}", posted[key]]
                )  # fmt: skip
            rows.append(
                [f"/work {text}", level, "ratio lazy/executor", "", ""]
                + [f"{ratio(a, b):.2f}x" for a, b in zip(figures["lazy"], figures["executor"])]
                + [""]
            )
    print_table(
        ["command", "conc.", "app", "requests", "errors", "p50 ms", "p99 ms",
         "server CPU ms/req", "after-ack posts"],
        rows,
        title="Acknowledgement latency and server CPU: Bolt lazy listener vs executor hand-off",
    )  # fmt: skip
    print(
        "\nserver CPU: user + system time of the gunicorn master and worker over each round, "
        "the after-ack chat.postEphemeral calls included (the stand-in quiet, the worker idle)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per app, text and level")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100 requests in 4 rounds")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.quick:
        run(requests=100, rounds=4)
    else:
        run(requests=args.requests, rounds=args.rounds)
    print(f"\n(lazy vs executor took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
