"""The `postmortem` and `report` commands: a draft from the command line, and incident metrics.

Neither calls Slack: people are shown with the names and time zones the bot has cached.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import or_
from sqlmodel import Session, col, select

from bot.clock import Clock, utcnow
from bot.config import ConfigError, Settings, load_settings
from bot.incidents.commands import severity_label
from bot.models import Incident, Page, UserProfile
from bot.postmortem import format_duration, validate_templates
from bot.postmortem import service as postmortems
from bot.schedule.zones import UnknownZone, parse_instant, utc_to_local
from bot.storage import Storage

_INCIDENT = re.compile(r"(?:#|inc-?)?(\d+)", re.IGNORECASE)
WORK_START, WORK_END = 9, 18  # local hours: a page outside 09:00-18:00 Mon-Fri is off hours
DEFAULT_REPORT_DAYS = 30


class BadInput(Exception):
    """A command-line value that cannot be used; the message is the one line to print."""


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add the `postmortem` and `report` subcommands; each sets func(args) -> exit code."""
    draft = subparsers.add_parser(
        "postmortem",
        help="print or write an incident's postmortem draft",
        description="Print the latest postmortem draft of INCIDENT (drafting one if there is "
        "none yet), or write it to FILE.",
    )
    draft.add_argument("incident", metavar="INCIDENT", help="incident number: 42, #42 or INC-42")
    draft.add_argument(
        "--out", metavar="FILE", help="write the Markdown here instead of printing it"
    )
    draft.add_argument(
        "--mark",
        choices=[s for s in postmortems.DRAFT_STATUSES if s != postmortems.DRAFT],
        help="mark the latest draft as reviewed or final (no reminder is sent for it then)",
    )
    draft.set_defaults(func=run_postmortem)

    report = subparsers.add_parser(
        "report",
        help="incident and paging metrics for reviews",
        description="Incidents by severity with mean and 90th-percentile time to acknowledge "
        "and to resolve, and pages per person with off-hours pages (outside 09:00-18:00 "
        "Monday to Friday in each person's own time zone).",
    )
    report.add_argument(
        "--since",
        metavar="DATE",
        help=f"ISO date (00:00 UTC) or datetime with offset; default {DEFAULT_REPORT_DAYS} days ago",
    )
    report.add_argument("--until", metavar="DATE", help="end of the period (default now)")
    report.add_argument("--oncall", action="store_true", help="the on-call load per rotation and person instead")
    report.add_argument("--json", action="store_true", help="with --oncall: a JSON list, one object per row")
    report.set_defaults(func=run_report)


def validate_templates_command(templates_dir: str | Path) -> list[str]:
    """One line per postmortem template problem in the folder, for `check`."""
    return validate_templates(templates_dir)


def _storage(settings: Settings) -> Storage:
    storage = Storage(settings.database_url)
    storage.migrate()
    return storage


def _learn_people(storage: Storage, settings: Settings, user_ids: Iterable[str]) -> None:
    """Cache these people's Slack names and time zones when a bot token is set (best effort)."""
    if not settings.slack_bot_token:
        return
    from slack_sdk.errors import SlackClientError

    from bot.slack.client import make_client
    from bot.slack.people import People

    client = make_client(token=settings.slack_bot_token, base_url=settings.slack_api_url, retries=1)
    people = People(storage, client, Clock())
    for user_id in sorted(set(user_ids)):
        try:
            people.profile(user_id)
        except (SlackClientError, OSError) as error:  # unreachable: the cache will do
            print(
                f"warning: cannot look people up in Slack ({error}); using cached profiles",
                file=sys.stderr,
            )
            return


def _incident_number(text: str) -> int:
    found = _INCIDENT.fullmatch(text.strip())
    if found is None:
        raise BadInput(f"{text!r} is not an incident number (e.g. 42, #42 or INC-42)")
    return int(found.group(1))


def run_postmortem(args: argparse.Namespace) -> int:
    """Print or write the latest draft; exit 2 for an unknown incident or a bad argument."""
    try:
        number = _incident_number(args.incident)
        settings = load_settings()
    except (BadInput, ConfigError) as error:
        print(f"postmortem: {error}", file=sys.stderr)
        return 2
    storage = _storage(settings)
    try:
        with storage.read() as session:
            incident = session.get(Incident, number)
            if incident is None:
                print(f"postmortem: there is no incident #{number}", file=sys.stderr)
                return 2
            draft = postmortems.latest_draft(db_session=session, incident_id=number)
            if draft is None:  # about to draft: names and zones from Slack when we can ask
                _learn_people(
                    storage, settings, postmortems.people_of(db_session=session, incident=incident)
                )
        with storage.session() as session:
            incident = session.get(Incident, number)
            assert incident is not None
            draft = postmortems.latest_draft(db_session=session, incident_id=number)
            if draft is None:
                drafted = postmortems.draft_postmortem(
                    db_session=session,
                    incident=incident,
                    templates_dir=settings.templates_dir,
                    now=utcnow(),
                    postmortems_dir=settings.postmortems_dir,
                )
                draft = drafted.draft
                for problem in (drafted.template_error, drafted.file_error):
                    if problem:
                        print(f"postmortem: warning: {problem}", file=sys.stderr)
            if args.mark:
                draft = postmortems.set_draft_status(
                    db_session=session, incident_id=number, status=args.mark
                )
    finally:
        storage.dispose()
    if args.mark:
        print(f"INC-{number} postmortem version {draft.version} is now {args.mark}")
    if args.out:
        try:
            Path(args.out).write_text(draft.markdown, encoding="utf-8")
        except OSError as error:
            print(
                f"postmortem: cannot write {args.out}: {error.strerror or error}", file=sys.stderr
            )
            return 1
        print(
            f"wrote {args.out} (INC-{number} postmortem, version {draft.version}, {draft.status})"
        )
    elif not args.mark:
        sys.stdout.write(draft.markdown)
    return 0


@dataclass(frozen=True)
class SeverityRow:
    severity: str
    incidents: int
    acknowledge: list[timedelta]
    resolve: list[timedelta]


@dataclass(frozen=True)
class PagerRow:
    person: str
    zone: str
    pages: int
    off_hours: int
    acknowledged: int
    escalated: int


def percentile(values: Sequence[timedelta], share: float) -> timedelta | None:
    """The nearest-rank percentile: the smallest value with at least ``share`` of them at or
    below it (the 90th of ten values is the ninth); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def mean(values: Sequence[timedelta]) -> timedelta | None:
    return sum(values, timedelta(0)) / len(values) if values else None


def is_off_hours(instant: datetime, zone: str) -> bool:
    """True outside 09:00-18:00 Monday to Friday on the wall clock of ``zone`` (UTC if unknown)."""
    try:
        local = utc_to_local(zone, instant)
    except UnknownZone:
        local = utc_to_local("UTC", instant)
    return local.weekday() >= 5 or not WORK_START <= local.hour < WORK_END


def severity_rows(*, db_session: Session, since: datetime, until: datetime) -> list[SeverityRow]:
    """Incidents declared in [since, until) by severity, worst first, then all of them; private
    incidents are left out (they are reported only to their channel's members)."""
    found = db_session.exec(
        select(Incident).where(Incident.declared_at >= since, Incident.declared_at < until)
        .where(col(Incident.private).is_(False))
    ).all()
    groups: dict[str, list[Incident]] = defaultdict(list)
    for incident in found:
        groups[severity_label(incident.severity)].append(incident)

    def row(name: str, members: list[Incident]) -> SeverityRow:
        return SeverityRow(
            severity=name,
            incidents=len(members),
            acknowledge=[i.acknowledged_at - i.declared_at for i in members if i.acknowledged_at],
            resolve=[i.resolved_at - i.declared_at for i in members if i.resolved_at],
        )

    rows = [row(name, groups[name]) for name in sorted(groups)]
    return rows + [row("All", list(found))]


def pager_rows(*, db_session: Session, since: datetime, until: datetime) -> list[PagerRow]:
    """Pages sent in [since, until) per person, busiest first; off hours in their own zone."""
    private = select(Incident.id).where(col(Incident.private).is_(True))
    pages = db_session.exec(
        select(Page).where(Page.paged_at >= since, Page.paged_at < until)
        .where(or_(col(Page.incident_id).is_(None), col(Page.incident_id).not_in(private)))
    ).all()
    by_user: dict[str, list[Page]] = defaultdict(list)
    for page in pages:
        by_user[page.user].append(page)
    profiles = {
        p.user_id: p
        for p in db_session.exec(
            select(UserProfile).where(col(UserProfile.user_id).in_(list(by_user)))
        )
    }
    rows = []
    for user_id, theirs in by_user.items():
        profile = profiles.get(user_id)
        zone = profile.tz if profile and profile.tz else "UTC"
        name = profile.name if profile and profile.name else user_id
        rows.append(
            PagerRow(
                person=f"@{name}",
                zone=zone if profile else f"{zone} (unknown)",
                pages=len(theirs),
                off_hours=sum(is_off_hours(p.paged_at, zone) for p in theirs),
                acknowledged=sum(p.acknowledged_at is not None for p in theirs),
                escalated=sum(p.escalated_at is not None for p in theirs),
            )
        )
    return sorted(rows, key=lambda r: (-r.pages, -r.off_hours, r.person))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = []
    for cells in (header, *rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip())
    return lines


def format_report(
    severities: list[SeverityRow], pagers: list[PagerRow], since: datetime, until: datetime
) -> str:
    """The `report` text: both tables with a heading each."""
    period = f"{since:%Y-%m-%d %H:%M} UTC to {until:%Y-%m-%d %H:%M} UTC"
    lines = [f"Incidents declared from {period}", ""]
    if severities[-1].incidents == 0:
        lines.append("No incidents.")
    else:
        lines += _table(
            (
                "Severity",
                "Incidents",
                "Acked",
                "Mean TTA",
                "P90 TTA",
                "Resolved",
                "Mean TTR",
                "P90 TTR",
            ),
            [
                (
                    r.severity,
                    str(r.incidents),
                    str(len(r.acknowledge)),
                    format_duration(mean(r.acknowledge)),
                    format_duration(percentile(r.acknowledge, 0.9)),
                    str(len(r.resolve)),
                    format_duration(mean(r.resolve)),
                    format_duration(percentile(r.resolve, 0.9)),
                )
                for r in severities
            ],
        )
        lines.append("")
        lines.append("TTA and TTR count from the declaration, over the incidents acknowledged or")
        lines.append("resolved; P90 is the nearest-rank 90th percentile.")
    heading = (
        f"Pages per person (off hours: outside {WORK_START:02d}:00-{WORK_END:02d}:00 "
        "Monday to Friday in the person's own time zone)"
    )
    lines += ["", heading, ""]
    if not pagers:
        lines.append("No pages.")
    else:
        lines += _table(
            ("Person", "Time zone", "Pages", "Off hours", "Acknowledged", "Escalated"),
            [
                (
                    r.person,
                    r.zone,
                    str(r.pages),
                    str(r.off_hours),
                    str(r.acknowledged),
                    str(r.escalated),
                )
                for r in pagers
            ],
        )
    return "\n".join(lines) + "\n"


def _period(args: argparse.Namespace) -> tuple[datetime, datetime]:
    try:
        until = parse_instant(args.until) if args.until else utcnow()
        since = parse_instant(args.since) if args.since else until - timedelta(DEFAULT_REPORT_DAYS)
    except ValueError as error:
        raise BadInput(str(error)) from None
    if since >= until:
        raise BadInput(f"--since ({since:%Y-%m-%d %H:%M} UTC) must be before the end of the period")
    return since, until


def run_report(args: argparse.Namespace) -> int:
    """Print incident metrics by severity and pages per person for a period."""
    try:
        since, until = _period(args)
        settings = load_settings()
    except (BadInput, ConfigError) as error:
        print(f"report: {error}", file=sys.stderr)
        return 2
    storage = _storage(settings)
    if args.oncall:
        from bot.oncall_cli import run_oncall_report

        try:
            return run_oncall_report(storage, str(settings.rotations_dir), since, until, args.json)
        finally:
            storage.dispose()
    try:
        with storage.read() as session:
            paged = session.exec(
                select(Page.user).where(Page.paged_at >= since, Page.paged_at < until)
            ).all()
        _learn_people(storage, settings, paged)
        with storage.read() as session:
            severities = severity_rows(db_session=session, since=since, until=until)
            pagers = pager_rows(db_session=session, since=since, until=until)
    finally:
        storage.dispose()
    sys.stdout.write(format_report(severities, pagers, since, until))
    return 0
