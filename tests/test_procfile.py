"""The Procfile's topology on one SQLite file: `serve --no-scheduler --no-outbox` only answers
Slack; the `clock` process creates the channel, invites and pins."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BOT_TOKEN, ROTATIONS, SIGNING_SECRET, eventually, free_port, healthy, slash_command

ROOT = Path(__file__).parent.parent


@pytest.mark.timeout(120)
def test_the_web_process_leaves_side_effects_to_the_clock_process(tmp_path, standin):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": standin.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'oncall.db'}", "ROTATIONS_DIR": str(ROTATIONS),
        "PORT": str(port), "INCIDENTS_CHANNEL": "C0INCIDENTS",
    })
    processes = []
    try:
        with open(tmp_path / "web.log", "w") as log:
            processes.append(subprocess.Popen([sys.executable, "-m", "bot", "serve", "--no-scheduler", "--no-outbox"],
                                              env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        eventually(lambda: healthy(base), timeout=60, message="the web process to start")
        reply = slash_command(base, standin, "declare sev2 Checkout down")
        assert re.search(r"Declared incident #1\b", reply), reply
        time.sleep(1.0)  # ten outbox polls: a web process running side effects would have made it by now
        assert not standin.calls_to("conversations.create")

        with open(tmp_path / "clock.log", "w") as log:
            processes.append(subprocess.Popen([sys.executable, "-m", "bot", "clock"], env=env, cwd=ROOT,
                                              stdout=log, stderr=subprocess.STDOUT))
        channel = eventually(
            lambda: next((c for c in standin.channel_list() if c["name"].startswith("inc-1-")), None),
            timeout=60, message="the clock process to create the incident channel",
        )
        assert channel["name"] == "inc-1-checkout-down"
        eventually(lambda: standin.calls_to("pins.add"), timeout=30, message="the summary to be pinned")
        assert len(standin.calls_to("conversations.create")) == 1
        # The clock yields the CPU to the process answering Slack when they share a host.
        assert os.getpriority(os.PRIO_PROCESS, processes[-1].pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    # The web worker's log lines are written by threads of their own (serve's write-behind); what
    # they still held was written before the worker exited.
    web_log = (tmp_path / "web.log").read_text()
    assert "incident 1 declared by U0ALICE" in web_log, web_log
    assert re.search(r'"POST /slack/events HTTP/1\.1" 200', web_log), web_log
