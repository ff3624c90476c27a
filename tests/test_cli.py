"""The command line as an operator uses it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import requests

from tests.conftest import BOT_TOKEN, ROTATIONS, SIGNING_SECRET, eventually, free_port, healthy, slash_command

ROOT = Path(__file__).parent.parent


def run_bot(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    clean.update(env or {})
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=clean, cwd=ROOT, timeout=timeout)


def test_serve_without_a_token_names_the_variable_and_exits_2():
    result = run_bot("serve")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SLACK_BOT_TOKEN" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_without_a_signing_secret_names_it(tmp_path):
    result = run_bot("serve", env={"SLACK_BOT_TOKEN": "xoxb-1"})
    assert result.returncode == 2 and "SLACK_SIGNING_SECRET" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_socket_mode_without_an_app_token_names_it():
    result = run_bot("socket", env={"SLACK_BOT_TOKEN": "xoxb-1"})
    assert result.returncode == 2 and "SLACK_APP_TOKEN" in result.stderr


def test_a_malformed_port_is_one_line_and_exit_2():
    result = run_bot("serve", env={"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PORT": "eighty"})
    assert result.returncode == 2 and "PORT" in result.stderr and "Traceback" not in result.stderr


def test_a_malformed_host_is_one_line_and_exit_2():
    result = run_bot("serve", env={"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "HOST": "my host!"})
    assert result.returncode == 2 and "HOST" in result.stderr and "Traceback" not in result.stderr


def test_console_demo_scenario_runs_a_full_incident_across_a_handoff(tmp_path):
    result = run_bot("console", "--script", "examples/follow-the-sun-incident.txt", timeout=120,
                     env={"POSTMORTEMS_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "created channel #inc-1-eu-card-payments-failing-at-checkout" in out
    assert "DM to @diego: :pager: You are now on call" in out
    assert "@diego is now the incident commander" in out
    assert "no status update for 60 minutes" in out
    assert "Incident resolved" in out
    assert "(App Home) *My open incidents*" in out
    assert "! line" not in out
    assert "Done: 1 incident(s)" in out
    # every entry on the console's clock: the pinned and the shortcut message among the others, in order
    draft = (tmp_path / "postmortem-inc-1.md").read_text(encoding="utf-8")
    timeline = [line for line in draft.split("## Timeline", 1)[1].splitlines() if line.startswith("| 2026-")]
    assert [line[2:18] for line in timeline] == sorted(line[2:18] for line in timeline)
    assert timeline[0][2:18] == "2026-11-24 15:20" and timeline[-1][2:18] == "2026-11-24 17:10"
    assert any("Pinned" in line and "Card processor returns 502" in line for line in timeline)
    assert any("Pinned" in line and "Secondary processor at 100%" in line for line in timeline)


def test_console_submits_the_declaration_form(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("at 2026-11-24T15:20Z\nuser ana U0ANA Europe/Dublin\n@ana /incident declare\n"
                      "@ana submit title=Payroll export leaked; severity=SEV1; private=yes\n@ana home\n")
    result = run_bot("console", "--script", str(script))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Declared incident #1 *Payroll export leaked* (SEV1)" in result.stdout
    assert "It is private" in result.stdout and "Payroll export leaked" in result.stdout.split("(App Home)", 1)[1]


def test_console_replays_time_off_and_a_public_holiday():
    result = run_bot("console", "--script", "examples/holiday-and-time-off.txt", timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    answers = [line for line in result.stdout.splitlines() if "*example-follow-the-sun*:" in line]
    assert [line.split("*: ")[1].split(" · ")[:2] for line in answers] == [
        ["@niamh", "dublin"],  # Tuesday: her own turn
        ["@aoife (covering for @niamh)", "dublin"],  # Wednesday: away, the next in turn covers
        ["@mei", "singapore"],  # Christmas Day: Dublin closed, Singapore keeps the pager
    ]
    assert "On call for `example-follow-the-sun`: @mei (invited and paged)." in result.stdout
    assert "! line" not in result.stdout


def test_console_prints_pushes_like_dms_and_opens_and_presses_the_link():
    result = run_bot("console", "--script", "examples/page-by-phone.txt", timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Contact saved: `phone` · ntfys://ntfy.sh · 2 min after a page." in out and "niamh-7f3k" not in out.split(
        "Contact saved")[1].split("\n")[0]
    [push] = [line for line in out.splitlines() if "[push to @niamh] (phone)" in line]
    assert "Incident #1 (SEV2): Checkout latency is high" in push and "http://localhost:3000/ack/" in push
    assert "[web page 200] Acknowledge the page Incident #1 (SEV2): Checkout latency is high" in out
    assert "[web page 200] Acknowledged" in out
    assert "@niamh acknowledged the page from the acknowledgement link." in out
    assert "Escalating" not in out and "! line" not in out


def test_console_reports_a_bad_line_and_goes_on(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("at 2026-11-24T15:20Z\nuser ana U0ANA Europe/Dublin\n@nobody /incident help\n@ana /incident help\n")
    result = run_bot("console", "--script", str(script))
    assert "! line 3: unknown person @nobody" in result.stdout
    assert "/incident declare [--private] [SEVERITY] TITLE" in result.stdout
    assert result.returncode == 1


def test_serve_runs_under_gunicorn_and_answers_signed_commands(tmp_path, standin):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": standin.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "ROTATIONS_DIR": str(ROTATIONS), "PORT": str(port),
        "INCIDENTS_CHANNEL": "C0INCIDENTS", "HOST": "127.0.0.1",
    })
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: healthy(base), timeout=30, message="gunicorn to answer /healthz")
        started = time.monotonic()
        text = slash_command(base, standin, "declare sev2 Checkout down", timeout=5)
        assert time.monotonic() - started < 3
        assert "Declared incident #1" in text
        # the outbox worker in the served process creates the channel
        eventually(lambda: standin.channel_by_name("inc-1-checkout-down"), timeout=10, message="the incident channel")
        eventually(lambda: standin.pins(standin.channel_by_name("inc-1-checkout-down")["id"]), timeout=10, message="the pinned summary")
        body = urllib.parse.urlencode({"command": "/incident", "text": "help", "user_id": "U0ALICE"})
        unsigned = urllib.request.Request(base + "/slack/events", data=body.encode(), method="POST",
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(unsigned, timeout=5)
        assert refused.value.code == 401
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output[-2000:]
    assert "Traceback" not in output
    assert f"Listening at: http://127.0.0.1:{port}" in output  # HOST, not every interface


def test_check_validates_postmortem_templates_too(tmp_path):
    (tmp_path / "postmortem.md.j2").write_text("{% if %}\n")
    result = run_bot("check", str(ROTATIONS), env={"TEMPLATES_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "postmortem.md.j2" in result.stdout and "line 1" in result.stdout


def test_postmortem_command_for_an_unknown_incident_is_one_line(tmp_path):
    result = run_bot("postmortem", "99", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "99" in result.stderr


def test_console_serves_the_web_pages_signed_in_through_the_stand_in():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    process = subprocess.Popen([sys.executable, "-m", "bot", "console", "--web", str(port)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean, cwd=ROOT)
    printed: list[str] = []  # read as it comes, so a full pipe never stops the console
    reader = threading.Thread(target=lambda: printed.extend(process.stdout), daemon=True)
    reader.start()
    try:
        process.stdin.write("user frank U0FRANK America/Los_Angeles\n@frank /incident declare sev2 Checkout down\n")
        process.stdin.flush()
        eventually(lambda: healthy(url), timeout=60, message="the console's web pages")
        browser = requests.Session()

        def stand_in_page():  # frank exists once the console has read his line
            answer = browser.get(url + "/incidents/1", allow_redirects=True, timeout=10)
            return "Sign in as frank" in answer.text and answer

        to_slack = eventually(stand_in_page, timeout=30, message="the stand-in's sign-in page")
        link = re.search(r'href="([^"]+)">Sign in as frank<', to_slack.text).group(1)
        stand_in = re.match(r"https?://[^/]+", to_slack.url).group(0)
        signed_in = browser.get(stand_in + html.unescape(link), timeout=10)
        assert signed_in.url == url + "/incidents/1"
        page = eventually(lambda: (r := browser.get(url + "/incidents/1", timeout=10)).status_code == 200 and r.text,
                          timeout=30, message="incident #1's page")
        assert "Checkout down" in page
    finally:
        process.stdin.close()
        process.wait(timeout=60)
        reader.join(10)
    output = "".join(printed)
    assert process.returncode == 0, output[-2000:]
    assert f"Web pages: {url}/" in output
