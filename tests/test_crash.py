"""kill -9 while incidents are being declared and Slack fails 30% of calls: after a restart
every saved declaration (each acknowledged one among them) is an incident under the number it
was told, with its channel, exactly once."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests.conftest import BOT_TOKEN, ROTATIONS, SIGNING_SECRET, eventually, free_port, healthy, slash_command

ROOT = Path(__file__).parent.parent


def _declare(base: str, standin, title: str) -> int | None:
    """The incident number when the bot acknowledged the declaration, else None."""
    try:
        match = re.search(r"Declared incident #(\d+)", slash_command(base, standin, f"declare sev2 {title}", timeout=5))
    except OSError:
        return None
    return int(match.group(1)) if match else None


@pytest.mark.timeout(300)
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path, standin, postgres):
    standin.set_failure_rate(0.3, statuses=(429, 500), seed=11, retry_after=0)
    standin.set_limits(False)  # about crashes and injected failures; Slack's tiers would only slow it down
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database = postgres.create_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": standin.api_url,
        "DATABASE_URL": database, "ROTATIONS_DIR": str(ROTATIONS), "PORT": str(port),
        "INCIDENTS_CHANNEL": "C0INCIDENTS", "OUTBOX_LEASE_SECONDS": "3", "SLACK_PACING": "off",
    })
    rng = random.Random(5)
    told: list[tuple[int, int]] = []  # (incident number in the reply, which declaration)
    lock = threading.Lock()
    sent = 0
    kills = 0

    def start() -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(lambda: healthy(base), timeout=60, message="the bot to start")
        return process

    while sent < 20:
        process = start()
        batch = min(5, 20 - sent)

        def declare(n: int) -> None:
            number = _declare(base, standin, f"Crash test {n}")
            if number is not None:
                with lock:
                    told.append((number, n))

        threads = [threading.Thread(target=declare, args=(sent + k,)) for k in range(batch)]
        for thread in threads:
            thread.start()
            time.sleep(rng.uniform(0.0, 0.15))  # declarations at random moments, not in one burst
        time.sleep(rng.uniform(0.0, 0.6))  # the kill at a random moment among them
        process.send_signal(signal.SIGKILL)  # mid-flight: requests, outbox work, anything
        process.wait(timeout=10)
        kills += 1
        for thread in threads:
            thread.join(timeout=10)
        sent += batch

    numbers = [number for number, _ in told]
    assert len(set(numbers)) == len(numbers), f"one number told for two declarations: {sorted(told)}"
    standin.set_failure_rate(0.3, statuses=(429, 500), seed=12, retry_after=0)
    final = start()
    try:
        def channels_of(number: int) -> list[dict]:
            return [c for c in standin.channel_list() if re.fullmatch(rf"inc-{number}(-.*)?", c["name"])]

        def all_open() -> bool:
            stored = _stored(database)
            return len(stored) == _saved(database) and all(
                len(channels_of(n)) >= 1 and standin.pins(channels_of(n)[0]["id"]) for n in stored
            )

        eventually(all_open, timeout=120, message="every saved declaration's incident, channel and pinned summary")
        time.sleep(2)  # let any straggling retry show itself
        stored = _stored(database)
        names = [c["name"] for c in standin.channel_list()]
        channels = Counter(int(m[1]) for name in names if (m := re.fullmatch(r"inc-(\d+)(?:-.*)?", name)))
        assert channels == Counter(list(stored)), f"not one channel per saved declaration: {sorted(names)}"
        for number in stored:
            assert len(standin.pins(channels_of(number)[0]["id"])) == 1
    finally:
        final.terminate()
        final.wait(timeout=30)
    assert kills >= 4 and len(told) >= 5
    assert sorted(stored) == list(range(1, len(stored) + 1)), "a number was taken and its declaration lost"
    for number, n in told:
        assert stored.get(number) == f"Crash test {n}", (number, n, stored.get(number))


def _saved(database: str) -> int:
    """Declarations committed: each takes its number and queues its incident in one transaction."""
    with psycopg.connect(database) as connection:
        row = connection.execute("SELECT value FROM counter WHERE name = 'incident'").fetchone()
    return int(row[0]) if row else 0


def _stored(database: str) -> dict[int, str]:
    """Each stored incident's title by its number."""
    with psycopg.connect(database) as connection:
        return dict(connection.execute("SELECT id, title FROM incident").fetchall())
