"""Each speed mechanism on and off: does the acknowledgement still meet its targets without it?

For each piece, a copy of bot/ is made with that one piece taken out (the smallest edit that
turns it off, listed below), and bench/ack_latency.py runs the bot with it and the copy
without it, interleaved round by round with the bare Bolt baseline, at concurrency 8 on the
databases the piece concerns. A piece the targets hold without (p99 < 100 ms and < 2x bare
Bolt) does not pay its rent. An edit that no longer matches the code stops the run: update
it with the piece.

    .venv/bin/python bench/on_off.py [--pieces NAME,...] [--db sqlite,postgresql] [--requests 600] [--rounds 6]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import astuple, dataclass
from pathlib import Path

import ack_latency
from _common import ROOT, Row, machine, print_table


@dataclass(frozen=True)
class Piece:
    name: str
    databases: tuple[str, ...]
    edits: tuple[tuple[str, str, str], ...]  # (file under bot/, text, replacement)
    commands: tuple[str, ...] = ("declare",)


BOTH = ("sqlite", "postgresql")
PIECES = [
    Piece(
        "group commit",
        BOTH,
        (
            (
                "incidents/numbering.py",
                "        ticket = _Ticket(payload, now, check)\n",
                ("        ticket = _Ticket(payload, now, check)\n        self._commit([ticket])\n"
                "        if ticket.refusal is not None:\n"
                "            raise ticket.refusal\n"
                "        if ticket.error is not None:\n"
                "            raise NotSaved(repr(ticket.error)) from ticket.error\n"
                "        return ticket.number  # type: ignore[return-value]\n"),
            ),
        ),
    ),
    Piece(
        "driver statements",
        BOTH,
        (
            (
                "storage.py",
                ("        with self._cursor(connection) as cursor:\n"
                 "            cursor.execute(self._sql[connection.dialect.name], values)\n"
                 "            return cursor.fetchall() if cursor.description else []\n"),
                ("        found = connection.exec_driver_sql(self._sql[connection.dialect.name], tuple(values))\n"
                 "        return found.fetchall() if found.returns_rows else []\n"),
            ),
            (
                "storage.py",
                ("        with self._cursor(connection) as cursor:\n"
                 "            cursor.executemany(self._sql[connection.dialect.name], rows)\n"),
                "        connection.exec_driver_sql(self._sql[connection.dialect.name], [tuple(row) for row in rows])\n",
            ),
        ),
    ),
    Piece(
        "requests in flight",
        BOTH,
        (("wiring.py", "in_flight = RequestsInFlight.of(settings.database_url)", "in_flight = None"),),
    ),
    Piece(
        "adjustments cache",
        BOTH,
        (
            (
                "oncall/service.py",
                "generation = None if notifications is None else notifications.generation(CHANGES_CHANNEL)",
                "generation = None",
            ),
        ),
        ("declare", "oncall"),
    ),
    Piece(
        "endpoint before Flask",
        BOTH,
        (
            (
                "web/app.py",
                "    web.wsgi_app = SecurityHeaders(SlackEndpoint(runtime, bolt_app, web.wsgi_app))  # type: ignore[method-assign]\n",
                ("    from slack_bolt.adapter.flask import SlackRequestHandler\n"
                "    handler = SlackRequestHandler(bolt_app)\n\n"
                '    @web.post("/slack/events")\n'
                "    def slack_events():  # type: ignore[no-untyped-def]\n"
                "        return handler.handle(request)\n\n"
                "    web.wsgi_app = SecurityHeaders(web.wsgi_app)  # type: ignore[method-assign]\n"),
            ),
        ),
        ("declare", "oncall"),
    ),
]


def without(piece: Piece, into: Path) -> Path:
    """A copy of bot/ with the piece's edits; the folder to run `python -m bot` in."""
    folder = into / piece.name.replace(" ", "-")
    shutil.copytree(ROOT / "bot", folder / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    for file, text, replacement in piece.edits:
        path = folder / "bot" / file
        source = path.read_text()
        if source.count(text) != 1:
            raise SystemExit(f"on_off: the edit for {piece.name!r} no longer matches bot/{file}")
        path.write_text(source.replace(text, replacement))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", help="comma-separated names (default: all)")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=600, help="per command, each server")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    chosen = [p for p in PIECES if not args.pieces or p.name in args.pieces.split(",")]
    databases = args.db.split(",")
    print(f"machine: {machine()}")
    rows: list[Row] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oncall-on-off-") as scratch:
        for piece in chosen:
            folder = without(piece, Path(scratch))
            for db in (d for d in databases if d in piece.databases):
                found = ack_latency.run(
                    db=db, requests=args.requests, rounds=args.rounds, levels=(8,),
                    commands=piece.commands, other=(piece.name, folder),
                )
                rows += [row for row in found if row.benchmark.startswith("on/off")]
    print_table(
        ["piece (database)", "measure", "without / with", "baseline", "ratio to bare", "targets without it"],
        [list(astuple(row)) for row in rows],
        title=f"Speed mechanisms on and off, concurrency 8 ({time.monotonic() - started:.0f} s)",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
