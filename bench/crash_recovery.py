"""Crash recovery: the Procfile's two processes (web under gunicorn, and `clock`, which runs
the outbox) while the Slack stand-in answers 30% of calls with 429 and 10% with 500; 20
declarations from 4 senders; the clock killed with SIGKILL once 10 are acknowledged and
started again at once.

Prints the tasks the dead process held (leased), the time from the restart until the last of
them was claimed again and until the last of them finished (target: claimed within 15 s),
until every acknowledged declaration was fully set up, and what was done twice (channels,
summaries, broadcasts, page DMs; target 0). Not part of run_all.py.

    .venv/bin/python bench/crash_recovery.py [--db postgresql|sqlite] [--seed 27]
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
import urllib.request

from _common import (
    Databases,
    Workdir,
    _launch,
    bot_env,
    machine,
    print_table,
    sign,
    slash_body,
    start_bot,
    start_standin,
    verdict,
)

from bot.storage import Storage
from bot.testing import crash_drill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--seed", type=int, default=27)
    args = parser.parse_args()
    with Workdir() as workdir:
        databases = Databases(workdir)
        standin = start_standin()
        try:
            url = databases.url(args.db)
            standin.set_failure_rate(crash_drill.FAILURE_RATE, statuses=crash_drill.FAILURE_STATUSES,
                                     seed=args.seed, retry_after=0)
            server = start_bot(workdir, standin, url, name="bot")
            storage = Storage(url)
            try:
                report(run(workdir, standin, server, storage, url), standin, storage, args.db)
            finally:
                server.stop()
                storage.dispose()
        finally:
            standin.stop()
            databases.close()


def run(workdir, standin, server, storage, url):  # type: ignore[no-untyped-def]
    """The drill against the running pair; returns (drill, seconds until all set up)."""
    env = bot_env(workdir, standin, url, server.port)
    generation = iter(range(2, 100))

    def declare(title: str) -> int | None:
        body = slash_body("/incident", f"declare sev2 {title}", response_url=standin.response_url())
        request = urllib.request.Request(f"http://{server.host}/slack/events", data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)})
        with urllib.request.urlopen(request, timeout=5) as reply:
            match = re.search(r"Declared incident #(\d+)", reply.read().decode())
        return int(match.group(1)) if match else None

    def kill() -> None:
        clock = server.companions[0]
        clock.send_signal(signal.SIGKILL)
        clock.wait(10)

    def restart() -> None:
        process, log_path = _launch(f"bot-clock-{next(generation)}", [sys.executable, "-m", "bot", "clock"], env, workdir)
        server.companions[0] = process
        deadline = time.monotonic() + 60
        while "clock running" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the clock did not start again:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    drill = crash_drill.run(declare, kill, restart, storage)
    deadline = time.monotonic() + 300
    while not (crash_drill.drained(storage) and all(crash_drill.set_up(standin, storage, n) for n in drill.acknowledged)):
        if time.monotonic() > deadline:
            print("not everything was set up in 5 minutes:", crash_drill.progress(standin, storage, drill))
            return drill, None
        time.sleep(0.1)
    return drill, time.time() - drill.restarted


def report(outcome, standin, storage, db: str) -> None:  # type: ignore[no-untyped-def]
    drill, all_set_up = outcome
    held = len(drill.held)
    claimed = max(drill.started.values(), default=None) if len(drill.started) == held else None
    finished = max(drill.finished.values(), default=None) if len(drill.finished) == held else None
    dupes = crash_drill.duplicates(standin, storage)

    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f}"

    rows = [
        ["declarations acknowledged", len(drill.acknowledged), "", ""],
        ["tasks the killed clock held", held, "", ""],
        ["restart → last held task claimed again (s)", seconds(claimed), "<= 15",
         verdict(claimed is not None and claimed <= 15) if held else "info"],
        ["restart → last held task finished (s)", seconds(finished), "", "info"],
        ["restart → every acknowledged declaration set up (s)", seconds(all_set_up), "", "info"],
        *[[f"duplicate {what}", len(found), "0", verdict(not found)] for what, found in dupes.items()],
    ]
    print_table(["measure", "value", "target", "verdict"], rows,
                title=f"Crash recovery ({db}, clock killed with SIGKILL; {machine()})")


if __name__ == "__main__":
    main()
