"""Running the console (`oncall-bot console`): the stand-in workspace and the bot wired to it,
a scenario file or the keyboard, and the web pages when asked for. The lines it understands are
in `bot.console`."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TextIO

from bot.clock import ManualClock
from bot.config import load_settings
from bot.console import (
    CLIENT_ID,
    CLIENT_SECRET,
    SECRET,
    TOKEN,
    Console,
    ConsoleError,
    clock_instant,
)
from bot.runtime import Runtime
from bot.slack.client import make_client
from bot.standin import SlackStandIn
from bot.wiring import build_runtime


def seed(console: Console, runtime: Runtime) -> None:
    """#general, #incidents, each rotation's channel and user group, and every member."""
    slack = console.slack
    slack.add_channel("general", channel_id="C0GENERAL")
    slack.add_channel("incidents", channel_id="C0INCIDENTS", members=("UBOT",))
    for rotation in runtime.rotations.values():
        if rotation.channel and not slack.channel_by_name(rotation.name + "-oncall"):
            slack.add_channel(rotation.name + "-oncall", channel_id=rotation.channel, members=("UBOT",))
        if rotation.usergroup:
            slack.add_usergroup(rotation.usergroup, handle=f"{rotation.name}-oncall")
        for region in rotation.regions:
            for member in region.members:
                if member.startswith(("U", "W")) and member not in console.names.values():
                    console.add_user(member.lower(), member, region.timezone)


def serve_web_pages(console: Console, port: int) -> Callable[[], None]:
    """Serve the web pages on 127.0.0.1:port (Sign in with Slack on the stand-in); the stop."""
    from werkzeug.serving import make_server

    import bot.web.routes  # noqa: F401  (installs the routes)
    from bot.web.app import create_web_app

    server = make_server("127.0.0.1", port, create_web_app(console.rt, console.bolt), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="console-web").start()
    console.out.write(f"Web pages: http://127.0.0.1:{port}/ (sign in by picking a person on the stand-in's page)\n")
    return server.shutdown


def run_console(*, script: str | None, start: str | None, database_url: str | None, out: TextIO = sys.stdout,
                web_port: int | None = None) -> int:
    """Run a scenario file, or read lines from the keyboard, serving the web pages on web_port
    when given; returns the exit code."""
    workdir = Path(tempfile.mkdtemp(prefix="oncall-console-"))
    slack = SlackStandIn(bot_token=TOKEN, bot_user_id="UBOT", team_id="T0CONSOLE").start()
    env = {
        "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": database_url or f"sqlite:///{workdir / 'console.db'}",
        "INCIDENTS_CHANNEL": "C0INCIDENTS",
    }
    if web_port is not None:
        slack.add_oidc_client(CLIENT_ID, CLIENT_SECRET)
        env.update(SLACK_CLIENT_ID=CLIENT_ID, SLACK_CLIENT_SECRET=CLIENT_SECRET, PUBLIC_URL=f"http://127.0.0.1:{web_port}")
    for name in ("ROTATIONS_DIR", "TEMPLATES_DIR", "POSTMORTEMS_DIR"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    settings = load_settings(env)
    clock = ManualClock(clock_instant(start) if start else datetime.now(timezone.utc).replace(second=0, microsecond=0))
    runtime = build_runtime(settings, client=make_client(token=TOKEN, base_url=slack.api_url), clock=clock, manual=True)
    runtime.scheduler.start()
    console = Console(runtime, slack, out)
    slack.now = lambda: clock.now().timestamp()  # messages, and so pinned entries, on the console's clock
    stop_web = serve_web_pages(console, web_port) if web_port is not None else (lambda: None)
    lines: Any = open(script, encoding="utf-8") if script else None
    failures = 0
    try:
        if lines is None:
            out.write("oncall-bot console: type `@alice /incident help`, `+30m`, or Ctrl-D to quit.\n")
            lines = _prompt_lines()
        else:
            out.write(f"Replaying {script}\n")
        from bot.jobs.handoffs import plan_handoffs

        started = False
        for number, line in enumerate(lines, 1):
            try:
                if not started and not line.strip().startswith(("at ", "user ", "#")) and line.strip():
                    seed(console, runtime)  # after the script named its people
                    plan_handoffs(runtime)  # once the clock is set: handoffs from "now" on
                    started = True
                console.run_line(line)
            except ConsoleError as exc:
                failures += 1
                out.write(f"  ! line {number}: {exc}\n")
    finally:
        if script and lines is not None:
            lines.close()
        stop_web()
        runtime.scheduler.stop()
        slack.stop()
    with runtime.storage.read() as session:
        from sqlmodel import func, select

        from bot.models import Incident, TimelineEntry

        incidents = session.exec(select(func.count()).select_from(Incident)).one()
        entries = session.exec(select(func.count()).select_from(TimelineEntry)).one()
    out.write(f"\nDone: {incidents} incident(s), {entries} timeline entries, {len(slack.calls)} Slack API calls; database {settings.database_url}\n")
    return 1 if failures and script else 0


def _prompt_lines():  # type: ignore[no-untyped-def]
    while True:
        try:
            yield input("oncall> ")
        except EOFError:
            return
