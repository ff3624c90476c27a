"""Coverage findings: UTC intervals no region covers (gaps) or several cover (overlaps)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from itertools import pairwise

from bot.schedule.engine import (
    AwayByMember,
    cover_time_off,
    shifts_between,
    windows_from,
    with_file_time_off,
)
from bot.schedule.model import Finding, Override, Rotation
from bot.schedule.windows import Window, holiday_calendar
from bot.schedule.zones import local_to_utc, require_utc, utc_to_local

# Occurrences of the same hole further apart than a week are separate runs, not one pattern.
_SAME_RUN = timedelta(days=7, minutes=1)


@dataclass(frozen=True)
class FindingRun:
    """Recurring occurrences of one gap or overlap (same UTC time of day, length and regions)."""

    first: Finding
    last: Finding
    count: int
    every: timedelta | None  # the spacing, when all occurrences are evenly spaced

    @property
    def rotation(self) -> str:
        """The rotation the run belongs to."""
        return self.first.rotation

    @property
    def kind(self) -> str:
        """gap or overlap."""
        return self.first.kind


def coverage_findings(rotation: Rotation, start: datetime, end: datetime) -> list[Finding]:
    """Every gap and overlap of rotation's raw windows within [start, end), one per occurrence."""
    start, end = require_utc(start, name="start"), require_utc(end, name="end")
    if end <= start:
        return []
    windows = windows_from(rotation, start, end)  # from the window before a gap at the start
    names = [region.name for region in rotation.regions]
    findings = []
    for low, high, running, ended, starting in _coverage_pieces(windows, start, end):
        if not running:
            findings.append(_gap(rotation.name, low, high, names, ended, starting))
        elif len(running) > 1:
            findings.append(_overlap(rotation.name, low, high, names, running))
    return findings


def uncovered_findings(
    rotation: Rotation, start: datetime, end: datetime, overrides: Iterable[Override] = (),
    away: AwayByMember | None = None,
) -> list[Finding]:
    """Each stretch of a shift whose member is away while every other member of the region is
    away too: nobody can cover it, so the member away keeps the pager."""
    away = with_file_time_off(rotation, away)
    if not away:
        return []
    _, uncovered = cover_time_off(rotation, shifts_between(rotation, start, end, overrides), away)
    return [
        Finding(rotation.name, "uncovered", piece.start, piece.end,
                f"{piece.user} is away and nobody else in {piece.region} can cover", (piece.region,))
        for piece in uncovered
    ]


def holiday_findings(rotation: Rotation, start: datetime, end: datetime) -> list[Finding]:
    """One finding per public holiday of each region with a holiday calendar in [start, end):
    the region has no window that local day."""
    findings = []
    for region in rotation.regions:
        if not region.holidays:
            continue
        first, last = utc_to_local(region.timezone, start).date(), utc_to_local(region.timezone, end).date()
        calendar = holiday_calendar(region.holidays, range(first.year, last.year + 1))
        for day, name in sorted(calendar.items()):
            if first <= day <= last and day.weekday() in region.days:
                message = f"{region.name} has no window on {day:%a %Y-%m-%d}, {name} ({region.holidays})"
                local_day = datetime.combine(day, time())  # the local day, as UTC instants
                findings.append(Finding(
                    rotation.name, "holiday", local_to_utc(region.timezone, local_day),
                    local_to_utc(region.timezone, local_day + timedelta(days=1)), message, (region.name,),
                ))
    return findings


def group_findings(findings: list[Finding]) -> list[FindingRun]:
    """Findings grouped into runs of the same recurring hole, in order of first occurrence."""
    open_runs: dict[tuple, list[Finding]] = {}
    runs: list[list[Finding]] = [[f] for f in findings if f.start is None or f.end is None]
    timed = [f for f in findings if f.start is not None and f.end is not None]
    for finding in sorted(timed, key=lambda f: _span(f)[0]):
        start, end = _span(finding)
        key = (
            finding.rotation,
            finding.kind,
            start.time(),
            end - start,
            finding.message,
        )
        run = open_runs.get(key)
        if run is None or start - _span(run[-1])[0] > _SAME_RUN:
            run = open_runs[key] = []
            runs.append(run)
        run.append(finding)
    return [_to_run(run) for run in runs]


def _to_run(findings: list[Finding]) -> FindingRun:
    """A FindingRun summarising one run of occurrences."""
    spacings = {_span(b)[0] - _span(a)[0] for a, b in pairwise(findings)}
    every = spacings.pop() if len(spacings) == 1 else None
    return FindingRun(first=findings[0], last=findings[-1], count=len(findings), every=every)


def _span(finding: Finding) -> tuple[datetime, datetime]:
    """The start and end of a gap or overlap (a file error has neither)."""
    if finding.start is None or finding.end is None:
        raise ValueError(f"a {finding.kind} finding has no start or end: {finding.message}")
    return finding.start, finding.end


def _coverage_pieces(
    windows: list[Window], start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime, dict[int, Window], list[Window], list[Window]]]:
    """Yield (low, high, running windows, windows that last ended, windows starting at high).

    Windows before start are swept too, so a gap at the start still knows who held the pager.
    """
    edges: dict[datetime, tuple[list[Window], list[Window]]] = {start: ([], []), end: ([], [])}
    for window in windows:
        edges.setdefault(window.start, ([], []))[0].append(window)
        edges.setdefault(window.end, ([], []))[1].append(window)
    running: dict[int, Window] = {}
    ended: list[Window] = []
    times = sorted(edges)
    for low, high in pairwise(times):
        starting, stopping = edges[low]
        for window in stopping:  # ends before starts: a region's 24 h windows touch
            running.pop(window.order, None)
        for window in starting:
            running[window.order] = window
        if stopping:
            ended = stopping
        if low >= start and high <= end:
            yield low, high, dict(running), ended, edges[high][0]


def _gap(
    rotation: str,
    low: datetime,
    high: datetime,
    names: list[str],
    ended: list[Window],
    starting: list[Window],
) -> Finding:
    """A gap finding; the holder is the latest-starting window that ended at the gap's start."""
    holder = max(ended, key=lambda w: (w.start, -w.order)) if ended else None
    nxt = max(starting, key=lambda w: -w.order) if starting else None
    if holder and nxt and holder.order == nxt.order:
        tail = f"{names[holder.order]} keeps the pager until its next window starts"
    elif holder and nxt:
        tail = f"{names[holder.order]} keeps the pager until {names[nxt.order]} starts"
    elif holder:
        tail = f"{names[holder.order]} keeps the pager"
    else:
        tail = "the previous shift keeps the pager"
    involved = tuple(names[w.order] for w in (holder, nxt) if w is not None)
    message = f"no region is scheduled for {_duration(high - low)}; {tail}"
    return Finding(rotation, "gap", low, high, message, involved)


def _overlap(
    rotation: str, low: datetime, high: datetime, names: list[str], running: dict[int, Window]
) -> Finding:
    """An overlap finding naming the regions and the one that holds the pager."""
    ordered = sorted(running.values(), key=lambda w: w.order)
    holder = max(ordered, key=lambda w: (w.start, -w.order))
    listed = ", ".join(names[w.order] for w in ordered[:-1]) + f" and {names[ordered[-1].order]}"
    together = "both" if len(ordered) == 2 else "all"
    message = (
        f"{listed} are {together} scheduled for {_duration(high - low)}; "
        f"{names[holder.order]} (started last) holds the pager"
    )
    return Finding(rotation, "overlap", low, high, message, tuple(names[w.order] for w in ordered))


def _duration(length: timedelta) -> str:
    """A length of time as "1h", "30min" or "2h 30min"."""
    minutes = round(length.total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours}h {minutes}min"
    return f"{hours}h" if hours else f"{minutes}min"
