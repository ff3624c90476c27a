"""Command line: parses arguments, calls into the package, nothing else."""

from __future__ import annotations

import argparse
import logging
import sys

from bot.config import ConfigError
from bot.observability.logs import configure_logging_from_env


def build_parser() -> argparse.ArgumentParser:
    from bot import postmortem_cli, schedule_cli

    parser = argparse.ArgumentParser(prog="oncall-bot", description="Incident response and on-call bot for Slack.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="HTTP mode behind gunicorn: POST /slack/events, /healthz, ...")
    serve.add_argument("--no-scheduler", action="store_true", help="leave handoffs, reminders and escalations to a `clock` process")
    serve.add_argument("--no-outbox", action="store_true",
                       help="leave Slack side effects (channels, invites, DMs) to a `clock` process, so this one only answers Slack")
    serve.add_argument("--workers", type=int, default=None, help="gunicorn worker processes (default WEB_CONCURRENCY or 1)")
    serve.add_argument("--threads", type=int, default=8, help="threads per worker")
    serve.set_defaults(func=_serve)

    socket = sub.add_parser("socket", help="Socket Mode, for teams without a public URL")
    socket.add_argument("--no-scheduler", action="store_true")
    socket.set_defaults(func=_socket)

    clock = sub.add_parser("clock", help="the scheduler (handoffs, reminders, escalations) and the outbox, without HTTP")
    clock.set_defaults(func=_clock)

    console = sub.add_parser("console", help="try the bot without Slack: type slash commands as a named user")
    console.add_argument("--script", help="replay a scenario file instead of reading the keyboard")
    console.add_argument("--at", help="start the clock at this ISO instant (default: now)")
    console.add_argument("--database", help="SQLAlchemy URL (default: a fresh temporary SQLite file)")
    console.add_argument("--web", type=int, metavar="PORT",
                         help="also serve the web pages on 127.0.0.1:PORT, signed in through the stand-in")
    console.set_defaults(func=_console)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(func=_migrate)

    schedule_cli.add_subcommands(sub)
    postmortem_cli.add_subcommands(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from bot.serve import serve

    return serve(workers=args.workers, threads=args.threads, with_scheduler=not args.no_scheduler,
                 with_outbox=not args.no_outbox)


def _socket(args: argparse.Namespace) -> int:
    from bot.serve import socket_mode

    return socket_mode(with_scheduler=not args.no_scheduler)


def _clock(args: argparse.Namespace) -> int:
    from bot.serve import clock

    return clock()


def _console(args: argparse.Namespace) -> int:
    from bot.console_run import run_console

    return run_console(script=args.script, start=args.at, database_url=args.database, web_port=args.web)


def _migrate(args: argparse.Namespace) -> int:
    from bot.config import load_settings
    from bot.wiring import open_storage

    open_storage(load_settings().database_url).dispose()  # migrated and checked, or one line
    print("database schema is up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Servers log their work; one-shot commands and the console print only what went wrong.
    level = logging.INFO if args.command in ("serve", "socket", "clock") else logging.WARNING
    configure_logging_from_env(level=level)  # LOG_FORMAT=json for JSON lines; secrets masked
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"oncall-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
