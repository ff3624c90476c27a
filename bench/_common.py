"""Shared pieces of the benchmarks: signed Slack requests, percentiles, tables, and the
servers under test (the bot behind gunicorn, a bare Bolt app, the Slack stand-in,
PostgreSQL). The load generator is in _loadgen.py."""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.slack.signing import signed_headers
from bot.web.worker import WORKER_CLASS

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
ALERT_TOKEN = "bench-alert-token"  # /alerts/* answer 404 without one
INCIDENTS_CHANNEL = "C0INCIDENTS"
# Everyone the bench's rotations name, plus the people who type the commands.
PEOPLE = [
    ("U0ALICE", "alice", "America/Los_Angeles"),
    ("U0FRANK", "frank", "America/Los_Angeles"),
    ("U0BOB", "bob", "Europe/Dublin"),
    ("U0ERIN", "erin", "Europe/Dublin"),
    ("U0CAROL", "carol", "Asia/Singapore"),
    ("U0DAVE", "dave", "Asia/Singapore"),
    ("U0GRACE", "grace", "UTC"),
    ("U0HEIDI", "heidi", "UTC"),
    ("U0PRIYA", "priya", "Europe/London"),
]
ROTATIONS = {
    "payments.toml": """\
name = "payments"
description = "Payments primary, follow-the-sun (bench)"
start = 2026-01-05
handoff = "weekly"
escalation_minutes = 10
escalate_to = "payments-secondary"
default = true

[[regions]]
name = "apac"
timezone = "Asia/Singapore"
hours = "08:00-16:00"
members = ["U0CAROL", "U0DAVE"]

[[regions]]
name = "emea"
timezone = "Europe/Dublin"
hours = "08:00-16:00"
members = ["U0BOB", "U0ERIN"]

[[regions]]
name = "amer"
timezone = "America/Los_Angeles"
hours = "08:00-16:00"
members = ["U0ALICE", "U0FRANK"]
""",
    "payments-secondary.toml": """\
name = "payments-secondary"
description = "Payments secondary, one person a week around the clock (bench)"
start = 2026-01-05
handoff = "weekly"

[[regions]]
name = "global"
timezone = "UTC"
hours = "00:00-00:00"
members = ["U0GRACE", "U0HEIDI"]
""",
}


# ------------------------------------------------------------------ requests and figures
def sign(body: str, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Slack's v0 signature headers for a request body, timestamped now."""
    return signed_headers(secret, body)


def slash_body(
    command: str,
    text: str,
    *,
    user: str = "U0PRIYA",
    channel: str = "C0GENERAL",
    response_url: str = "",
) -> str:
    """The form body Slack posts for a slash command."""
    return urllib.parse.urlencode(
        {
            "token": "legacy",
            "team_id": "T0STANDIN",
            "team_domain": "standin",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0BOT",
            "response_url": response_url,
            "trigger_id": f"trigger-{time.monotonic_ns()}",
        }
    )


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline and not math.isnan(baseline) else float("nan")


def print_table(headers: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """A Markdown table; numbers right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    numeric = [
        all(_numberish(r[i]) for r in cells) if cells else False for i in range(len(headers))
    ]
    if title:
        print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print(
        "|"
        + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric))
        + "|"
    )
    for row in cells:
        print(
            "| "
            + " | ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric))
            + " |"
        )
    sys.stdout.flush()


def _numberish(text: str) -> bool:
    return bool(re.fullmatch(r"([-+]?[\d,.]+\s*(x|%|ms|s|MiB)?|n/a|nan|)", text))


@dataclass
class Row:
    """One line of run_all's summary table."""

    benchmark: str
    measure: str
    value: str
    baseline: str = ""
    target: str = ""
    verdict: str = ""  # PASS, FAIL, "info" or "" (reported, no target)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def machine() -> str:
    """One line naming the machine: cores, memory, CPU model, load, Python."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = ", load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return f"{os.cpu_count()} cores ({model}){memory}{load}, Python {platform.python_version()}"


# ------------------------------------------------------------------ processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Direct child processes (gunicorn workers of a master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    """(peak RSS VmHWM, current RSS VmRSS) of a process in KiB; zeros when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    values = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB", status, re.MULTILINE))
    return int(values.get("VmHWM", 0)), int(values.get("VmRSS", 0))


@dataclass
class Server:
    """A gunicorn server started by the bench, on 127.0.0.1:port."""

    name: str
    process: subprocess.Popen
    port: int
    log_path: Path
    pids_seen: set[int] = field(default_factory=set)
    # Processes deployed beside it (the Procfile's clock): counted in its CPU and memory.
    companions: list[subprocess.Popen] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(f"http://{self.host}/healthz", timeout=2) as reply:
                    if reply.status == 200:
                        self.pids_seen.update(self.pids())
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} did not answer /healthz in {timeout:.0f} s:\n{self.tail()}"
        )

    def pids(self) -> list[int]:
        return [
            pid
            for process in (self.process, *self.companions)
            for pid in (process.pid, *children_of(process.pid))
        ]

    def memory(self) -> tuple[int, int]:
        """(sum of VmHWM, sum of VmRSS) in KiB over the master, its workers and companions."""
        pids = self.pids()
        self.pids_seen.update(pids)
        peak = current = 0
        for pid in pids:
            hwm, rss = memory_kib(pid)
            peak, current = peak + hwm, current + rss
        return peak, current

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the master, its workers and companions."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        return total / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, busy_below: float = 0.1, window: float = 0.5, timeout: float = 60.0) -> float:
        """Wait until the server's processes used under `busy_below` of a core over `window`
        seconds (the clock's work that makes no Slack call, such as saving declarations or
        storing escalation timers, included); returns the seconds waited."""
        began = time.monotonic()
        before = self.cpu_seconds()
        while time.monotonic() - began < timeout:
            time.sleep(window)
            after = self.cpu_seconds()
            if after - before < busy_below * window:
                break
            before = after
        return time.monotonic() - began

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        for process in (self.process, *self.companions):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


def _launch(
    name: str, command: list[str], env: dict[str, str], workdir: Path, *, root: Path = ROOT
) -> tuple[subprocess.Popen, Path]:
    """A process run in root (the repository's, or another checkout's for on/off comparisons:
    `python -m bot` imports the bot of its working folder), its output in workdir/name.log."""
    log_path = workdir / f"{name}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process, log_path


def _spawn(
    name: str, command: list[str], env: dict[str, str], port: int, workdir: Path, *, root: Path = ROOT
) -> Server:
    process, log_path = _launch(name, command, env, workdir, root=root)
    server = Server(name, process, port, log_path)
    try:
        server.wait_healthy()
    except BaseException:
        server.stop()
        raise
    return server


def base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DATABASE_URL", "WEB_CONCURRENCY"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_rotations(workdir: Path) -> Path:
    folder = workdir / "rotations"
    folder.mkdir(exist_ok=True)
    for name, text in ROTATIONS.items():
        (folder / name).write_text(text)
    return folder


def bot_env(workdir: Path, standin: Any, database_url: str, port: int) -> dict[str, str]:
    env = base_env()
    env.update(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": standin.api_url,
            "DATABASE_URL": database_url,
            "ROTATIONS_DIR": str(write_rotations(workdir)),
            "TEMPLATES_DIR": str(ROOT / "templates"),
            "INCIDENTS_CHANNEL": INCIDENTS_CHANNEL,
            "ALERTMANAGER_TOKEN": ALERT_TOKEN,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            # the bot paces itself only when the stand-in keeps Slack's limits
            "SLACK_PACING": "on" if getattr(getattr(standin, "rate_limits", None), "enabled", False) else "off",
        }
    )
    return env


def start_bot(
    workdir: Path,
    standin: Any,
    database_url: str,
    *,
    workers: int = 1,
    threads: int = 8,
    name: str = "bot",
    root: Path = ROOT,
) -> Server:
    """The Procfile's two processes: `serve --no-scheduler --no-outbox` (web, under gunicorn)
    and `clock` (scheduler and outbox), both counted in the returned server's CPU and memory;
    the bot of `root`, this repository's unless another checkout is given."""
    port = free_port()
    env = bot_env(workdir, standin, database_url, port)
    env["WEB_CONCURRENCY"] = str(workers)
    web = [sys.executable, "-m", "bot", "serve", "--no-scheduler", "--no-outbox", "--threads", str(threads)]
    server = _spawn(name, web, env, port, workdir, root=root)
    clock, log_path = _launch(
        f"{name}-clock", [sys.executable, "-m", "bot", "clock"], env, workdir, root=root
    )
    server.companions.append(clock)
    deadline = time.monotonic() + 60
    while "clock running" not in log_path.read_text(errors="replace"):
        if clock.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} clock did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return server


def start_bench_app(
    workdir: Path,
    standin: Any,
    app: str,
    *,
    name: str,
    workers: int = 1,
    threads: int = 8,
    env: dict[str, str] | None = None,
) -> Server:
    """A WSGI app of bench/ (gunicorn's `module:app`) with the gunicorn settings bot/serve.py
    uses, its Slack settings pointing at the stand-in."""
    port = free_port()
    full_env = base_env()
    full_env.update(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": standin.api_url,
            **(env or {}),
        }
    )
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        WORKER_CLASS,
        "--graceful-timeout",
        "20",
        "--access-logfile",
        "-",
        "--pythonpath",
        str(BENCH),
        app,
    ]
    return _spawn(name, command, full_env, port, workdir)


def start_bare_bolt(
    workdir: Path,
    standin: Any,
    *,
    workers: int = 1,
    threads: int = 8,
    adapter: str = "flask",
    process_before_response: bool = False,
    name: str = "bare-bolt",
) -> Server:
    """bench/bare_bolt_app.py behind Flask, or through Bolt's WSGI adapter with
    adapter="wsgi"; Bolt's default listener mode, or the bot's with process_before_response."""
    return start_bench_app(
        workdir,
        standin,
        "bare_bolt_app:" + {"flask": "app", "wsgi": "wsgi"}[adapter],
        name=name,
        workers=workers,
        threads=threads,
        env={"BARE_BOLT_PROCESS_BEFORE_RESPONSE": "1" if process_before_response else "0"},
    )


def start_standin(limits: bool = False) -> Any:
    """The Slack stand-in with the bench's people and channels; Slack's rate limits only when
    asked (the storm), since the other benchmarks measure the bot, not Slack's tiers."""
    from bot.standin import SlackStandIn

    slack = SlackStandIn(bot_token=BOT_TOKEN, bot_user_id="UBOT", team_id="T0STANDIN", limits=limits)
    slack.start()
    for user_id, name, tz in PEOPLE:
        slack.add_user(user_id, name, tz=tz, email=f"{name}@example.com", real_name=name.title())
    slack.add_channel("general", channel_id="C0GENERAL")
    slack.add_channel("incidents", channel_id=INCIDENTS_CHANNEL)
    return slack


def wait_quiet(standin: Any, quiet: float = 0.5, timeout: float = 60.0) -> float:
    """Wait until the stand-in has had no call for `quiet` seconds; returns the seconds waited."""
    began = time.monotonic()
    last_count, last_change = -1, began
    while time.monotonic() - began < timeout:
        count = len(standin.calls)
        now = time.monotonic()
        if count != last_count:
            last_count, last_change = count, now
        elif now - last_change >= quiet:
            break
        time.sleep(0.05)
    return time.monotonic() - began


class Databases:
    """SQLite files in the work folder; PostgreSQL started once on first use."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.postgres: Any = None
        self._count = 0

    def url(self, kind: str) -> str:
        self._count += 1
        if kind == "sqlite":
            return f"sqlite:///{self.workdir / f'bench{self._count}.db'}"
        if kind == "postgresql":
            if self.postgres is None:
                from bot.testing.postgres import PostgresServer

                self.postgres = PostgresServer().start()
            return str(self.postgres.create_database())
        raise ValueError(f"unknown database kind {kind!r}")

    def close(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


class Workdir:
    """A temporary folder, removed on exit unless BENCH_KEEP is set."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="oncall-bench-"))
        return self.path

    def __exit__(self, *exc: object) -> None:
        if os.environ.get("BENCH_KEEP"):
            print(f"(kept {self.path})")
        else:
            shutil.rmtree(self.path, ignore_errors=True)
