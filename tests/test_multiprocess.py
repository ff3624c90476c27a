"""Several processes on one PostgreSQL, as in production: two `serve` (one as in the Procfile,
leaving Slack side effects to the clocks, one running them itself), two `clock` (one by
mistake). Declarations split across both web processes; timers must fire once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import BOT_TOKEN, SIGNING_SECRET, eventually, free_port, healthy, slash_command

ROOT = Path(__file__).parent.parent


def _rotation_with_a_handoff_soon(folder: Path) -> datetime:
    """A rotation in UTC whose one handoff falls about two minutes from now."""
    at = (datetime.now(timezone.utc) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    if at.hour == 0 and at.minute == 0:
        at += timedelta(minutes=1)
    hhmm = f"{at:%H:%M}"
    folder.mkdir()
    (folder / "payments.toml").write_text(f'''
name = "payments"
start = 2026-01-05
handoff = "weekly"
channel = "C0PAYCHAN"
escalation_minutes = 1
default = true

[[regions]]
name = "early"
timezone = "UTC"
hours = "00:00-{hhmm}"
members = ["U0ALICE"]

[[regions]]
name = "late"
timezone = "UTC"
hours = "{hhmm}-00:00"
members = ["U0BOB"]
''')
    return at


@pytest.mark.timeout(420)
def test_two_web_and_two_clock_processes_declare_fifty_and_fire_timers_once(tmp_path, standin, postgres):
    handoff_at = _rotation_with_a_handoff_soon(tmp_path / "rotations")
    standin.set_limits(False)  # 50 channels within seconds: about processes sharing work, not Slack's tiers
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": standin.api_url,
        "DATABASE_URL": postgres.create_database(), "ROTATIONS_DIR": str(tmp_path / "rotations"),
        "INCIDENTS_CHANNEL": "C0INCIDENTS", "STATUS_REMINDER_MINUTES": "1", "SLACK_PACING": "off",
    })
    ports = [free_port(), free_port()]
    processes = []
    logs = []
    try:
        for port, flags in zip(ports, (["--no-outbox"], [])):
            log = open(tmp_path / f"web-{port}.log", "w")
            logs.append(log)
            processes.append(subprocess.Popen([sys.executable, "-m", "bot", "serve", "--no-scheduler", *flags],
                                              env={**env, "PORT": str(port)}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        for n in range(2):
            log = open(tmp_path / f"clock-{n}.log", "w")
            logs.append(log)
            processes.append(subprocess.Popen([sys.executable, "-m", "bot", "clock"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        bases = [f"http://127.0.0.1:{port}" for port in ports]

        for base in bases:
            eventually(lambda: healthy(base), timeout=60, message=f"{base} to start")
        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda i: slash_command(bases[i % 2], standin, f"declare sev2 Storm incident {i}", user="U0CAROL"), range(50)))
        assert all("Declared incident #" in r for r in replies)
        numbers = sorted(int(re.search(r"#(\d+)", r).group(1)) for r in replies)
        assert numbers == list(range(1, 51))

        def incident_channels():
            return [c for c in standin.channel_list() if c["name"].startswith("inc-")]

        eventually(lambda: len(incident_channels()) >= 50, timeout=90, message="50 incident channels")
        channels = incident_channels()
        assert len(channels) == 50
        assert sorted(int(c["name"].split("-")[1]) for c in channels) == list(range(1, 51))

        # Every incident's first reminder and its page's escalation (1 minute each) fire once.
        def reminded():
            return all(any("no status update" in m["text"] for m in standin.messages(c["id"])) for c in channels)

        eventually(reminded, timeout=150, message="a reminder in every incident channel")

        def escalated():
            return all(any("escalation chain has no further step" in m["text"] for m in standin.messages(c["id"])) for c in channels)

        try:
            eventually(escalated, timeout=60, message="every unanswered page escalated")
        except AssertionError:
            missing = [c["name"] for c in channels if not any("escalation chain" in m["text"] for m in standin.messages(c["id"]))]
            sample = [m["text"][:120] for m in standin.messages(standin.channel_by_name(missing[0])["id"])]
            raise AssertionError(f"{len(missing)} not escalated, e.g. {missing[0]}: {sample}")
        def handoffs() -> list[str]:
            return [m["text"] for m in standin.messages("C0PAYCHAN") if "handoff at" in m["text"]]

        until_handoff = max(0.0, (handoff_at - datetime.now(timezone.utc)).total_seconds())
        eventually(handoffs, timeout=until_handoff + 60, message="the handoff announced")
        time.sleep(5)  # time for a duplicate handoff or reminder from the other processes to show
        for channel in channels:
            texts = [m["text"] for m in standin.messages(channel["id"])]
            reminder_times = sorted(float(m["ts"]) for m in standin.messages(channel["id"]) if "no status update" in m["text"])
            gaps = [b - a for a, b in zip(reminder_times, reminder_times[1:])]
            assert all(gap > 30 for gap in gaps), f"duplicate reminder in {channel['name']}: {gaps}"
            assert sum("escalation chain has no further step" in t for t in texts) == 1
        assert len(handoffs()) == 1, handoffs()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()
    for log in tmp_path.glob("*.log"):
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
