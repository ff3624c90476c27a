"""Benchmark: the on-call engine against RRULE events expanded by recurring_ical_events.

Expands 365 days of 50 three-region follow-the-sun rotations and answers 100,000 "who is on
call at t" queries twice: with our engine (bisect over precomputed shifts) and the way Grafana
OnCall does it (one RRULE VEVENT per member, expanded with recurring_ical_events). The year
has public holidays (EXDATEs on the iCalendar side), overrides (events that win over every
turn) and members' time off (covered by the next member of the region who is not away, on
both sides alike). Checks that both routes give identical answers, then prints both timings
and their ratio.

    .venv/bin/python bench/schedule.py [--rotations 50] [--queries 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time as clock
from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from bot.schedule import Away, Override, Region, Rotation, build_timeline
from bot.schedule import windows as schedule_windows
from bot.schedule import zones as schedule_zones

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2027, 1, 1, tzinfo=UTC)
# Offices that really hand over to each other, including half- and quarter-hour offsets and
# zones whose clocks change at midnight or by 30 minutes.
OFFICES = [
    ("Asia/Singapore", "Europe/Dublin", "America/Los_Angeles"),
    ("Australia/Sydney", "Europe/London", "America/New_York"),
    ("Asia/Kolkata", "Europe/Berlin", "America/Chicago"),
    ("Asia/Tokyo", "Europe/Paris", "America/Denver"),
    ("Australia/Melbourne", "Europe/Madrid", "America/Sao_Paulo"),
    ("Asia/Shanghai", "Europe/Amsterdam", "America/Toronto"),
    ("Pacific/Auckland", "Asia/Dubai", "America/Santiago"),
    ("Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns"),
    ("Asia/Seoul", "Africa/Johannesburg", "America/Mexico_City"),
    ("Asia/Jakarta", "Europe/Helsinki", "America/Halifax"),
]
WORKDAYS = (frozenset(range(7)), frozenset(range(5)))
# Whose public holidays each office keeps (None: the office works through them).
COUNTRIES = {
    "Asia/Singapore": "SG", "Europe/Dublin": "IE", "America/Los_Angeles": "US", "Europe/London": "GB",
    "America/New_York": "US", "Asia/Kolkata": "IN", "Europe/Berlin": "DE-BE", "Asia/Tokyo": "JP",
    "Europe/Paris": "FR", "Europe/Madrid": "ES", "America/Sao_Paulo": "BR", "Asia/Seoul": "KR",
}
WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


class Occurrence(NamedTuple):
    """One expanded iCalendar event: a region's window with its member, in UTC."""

    start: datetime
    end: datetime
    rank: int  # minus the region's position: at equal starts the first-listed region wins
    region: str
    user: str


def make_rotations(count: int, rng: random.Random) -> list[Rotation]:
    """count weekly three-region rotations with office hours from 07:00 to 18:00 local."""
    rotations = []
    for number in range(count):
        regions = []
        for index, zone in enumerate(rng.choice(OFFICES)):
            opens = rng.choice([7, 8, 9])
            length = rng.choice([8, 8, 9])
            regions.append(
                Region(
                    name=f"office{index}",
                    timezone=zone,
                    hours=(time(opens, rng.choice([0, 30])), time(opens + length)),
                    days=rng.choice(WORKDAYS),
                    members=tuple(f"U{number:02d}{index}{m}" for m in range(rng.randint(2, 6))),
                    holidays=COUNTRIES.get(zone) if rng.random() < 0.7 else None,
                )
            )
        rotations.append(
            Rotation(
                name=f"team{number:02d}",
                start=date(2025, 11, 3) + timedelta(weeks=rng.randint(0, 8)),
                handoff="weekly",
                regions=tuple(regions),
                overrides=tuple(_random_span(rng, Override, f"U{number:02d}X", hours=72) for _ in range(6)),
            )
        )
    return rotations


def make_time_off(rotations: list[Rotation], rng: random.Random) -> dict[str, dict[str, list[Away]]]:
    """Each rotation's time off by member: a few members away a few times a year, 1 to 14 days."""
    away: dict[str, dict[str, list[Away]]] = {}
    for rotation in rotations:
        chosen = rng.sample(rotation.members, k=min(4, len(rotation.members)))
        away[rotation.name] = {
            member: sorted((_random_span(rng, Away, hours=24 * 14) for _ in range(3)), key=lambda t: t.start)
            for member in chosen
        }
    return away


def _random_span(rng: random.Random, kind, *prefix, hours: int):  # type: ignore[no-untyped-def]
    """kind(*prefix, start, end): a span of 1 to `hours` hours starting somewhere in the year."""
    start = YEAR_START + timedelta(hours=rng.randrange(24 * 360))
    return kind(*prefix, start, start + timedelta(hours=rng.randint(1, hours)))


def make_queries(rotations: list[Rotation], count: int, rng: random.Random):
    """count (rotation name, UTC instant) pairs spread over the year."""
    seconds = int((YEAR_END - YEAR_START).total_seconds())
    return [
        (rng.choice(rotations).name, YEAR_START + timedelta(seconds=rng.randrange(seconds)))
        for _ in range(count)
    ]


def clear_engine_caches() -> None:
    """Forget every cached zone and window computation, so the engine starts cold."""
    for cached in (
        schedule_windows.day_spans,
        schedule_windows.holiday_dates,
        schedule_zones._steady_offset,
        schedule_zones._offset_changes,
        schedule_zones._probed_offset,
        schedule_zones._probed_changes,
        schedule_zones._localize_exactly,
        schedule_zones.get_zone,
    ):
        cached.cache_clear()


def engine_route(rotations, queries, away):
    """Expand each rotation's year once, then answer every query by bisection."""
    clear_engine_caches()
    started = clock.perf_counter()
    timelines = {r.name: build_timeline(r, YEAR_START, YEAR_END, away=away[r.name]) for r in rotations}
    expanded = clock.perf_counter()
    answers = []
    for name, at in queries:
        shift = timelines[name].at(at)
        answers.append((shift.region, shift.user))
    done = clock.perf_counter()
    return answers, expanded - started, done - expanded


def ical_route(rotations, queries, away):
    """Build RRULE events per member, expand them with recurring_ical_events, answer queries."""
    since = YEAR_START - timedelta(days=10)  # room to see who held the pager before Jan 1
    started = clock.perf_counter()
    occurrences = {
        r.name: expand_calendar(r, rotation_calendar(r, since), since) for r in rotations
    }
    expanded = clock.perf_counter()
    starts = {name: [o.start for o in found] for name, found in occurrences.items()}
    by_name = {r.name: r for r in rotations}
    answers = []
    for name, at in queries:
        rotation = by_name[name]
        holder = ical_holder(occurrences[name], starts[name], at)
        override = next((o for o in reversed(rotation.overrides) if o.start <= at < o.end), None)
        if override is not None:
            answers.append((holder.region, override.user))
        else:
            answers.append((holder.region, present_member(rotation, holder, at, away[name])))
    done = clock.perf_counter()
    return answers, expanded - started, done - expanded


def rotation_calendar(rotation: Rotation, since: datetime) -> icalendar.Calendar:
    """One VEVENT per member: their region's window every n-th week (n = team size)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//oncall-bot//bench//EN")
    calendar.add("version", "2.0")
    anchor_monday = rotation.start - timedelta(days=rotation.start.weekday())
    first_monday = since.date() - timedelta(days=since.date().weekday())
    first_week = (first_monday - anchor_monday).days // 7
    for order, region in enumerate(rotation.regions):
        zone = ZoneInfo(region.timezone)
        size = len(region.members)
        for turn, member in enumerate(region.members):
            week = first_week + (turn - first_week) % size  # member's first week from `since`
            monday = anchor_monday + timedelta(weeks=week)
            day = monday + timedelta(days=min(region.days))
            opens, closes = region.hours
            end_day = day + timedelta(days=1) if closes <= opens else day
            event = icalendar.Event()
            event.add("uid", f"{rotation.name}-{order}-{turn}@bench")
            event.add("summary", member)
            event.add("location", region.name)
            event.add("priority", order + 1)
            event.add("dtstart", datetime.combine(day, opens, tzinfo=zone))
            event.add("dtend", datetime.combine(end_day, closes, tzinfo=zone))
            if region.holidays:  # the region's holidays: no window those local days
                off = schedule_windows.holiday_calendar(region.holidays, range(since.year, YEAR_END.year + 1))
                exdates = [datetime.combine(d, opens, tzinfo=zone) for d in sorted(off) if d.weekday() in region.days]
                if exdates:
                    event.add("exdate", exdates)
            event.add(
                "rrule",
                {
                    "freq": "weekly",
                    "interval": size,
                    "byday": [WEEKDAY_CODES[d] for d in sorted(region.days)],
                    "wkst": "MO",
                },
            )
            calendar.add_component(event)
    return calendar


def present_member(rotation: Rotation, holder: Occurrence, at: datetime, away) -> str:
    """The holder, or when they are away the next member of their region who is not."""
    members = next(r.members for r in rotation.regions if r.name == holder.region)

    def absent(member: str) -> bool:
        return any(t.start <= at < t.end for t in away.get(member, ()))

    if not absent(holder.user):
        return holder.user
    first = members.index(holder.user)
    for step in range(1, len(members)):
        candidate = members[(first + step) % len(members)]
        if not absent(candidate):
            return candidate
    return holder.user


def expand_calendar(rotation, calendar, since: datetime) -> list[Occurrence]:
    """Every occurrence between since and the end of the year, in precedence order."""
    found = [
        Occurrence(
            event["DTSTART"].dt.astimezone(UTC),
            event["DTEND"].dt.astimezone(UTC),
            1 - int(event["PRIORITY"]),
            str(event["LOCATION"]),
            str(event["SUMMARY"]),
        )
        for event in recurring_ical_events.of(calendar).between(since, YEAR_END)
    ]
    found.sort(key=lambda o: (o.start, o.rank))
    return found


def ical_holder(found: list[Occurrence], starts: list[datetime], at: datetime) -> Occurrence:
    """Who is on call at `at` among expanded occurrences: the latest-started one running, or
    (nobody scheduled) whoever held the pager when the last window ended."""
    last = bisect_right(starts, at) - 1
    recent = found[max(0, last - 24) : last + 1]
    for occurrence in reversed(recent):
        if occurrence.end > at:
            return occurrence
    last_end = max(o.end for o in recent)
    return max((o for o in recent if o.end == last_end), key=lambda o: (o.start, o.rank))


def main(argv: list[str] | None = None) -> int:
    """Run both routes, check the answers agree and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=50)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each route; best reported")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rotations = make_rotations(args.rotations, rng)
    queries = make_queries(rotations, args.queries, rng)
    away = make_time_off(rotations, rng)

    engine, ical = [], []
    for _ in range(args.repeat):  # interleaved, so a busy machine slows both routes alike
        engine.append(engine_route(rotations, queries, away))
        ical.append(ical_route(rotations, queries, away))
    answers, ical_answers = engine[0][0], ical[0][0]
    agree = sum(a == b for a, b in zip(answers, ical_answers))

    best_engine, best_ical = _best(engine), _best(ical)
    print_table(args, best_engine, best_ical)
    print(
        f"median totals of {args.repeat} runs: engine {_median_total(engine):.3f} s, "
        f"iCalendar {_median_total(ical):.3f} s"
    )
    print(f"answers identical: {agree:,} of {len(queries):,}")
    for (name, at), mine, theirs in zip(queries, answers, ical_answers):
        if mine != theirs:
            print(f"  differs: {name} at {at.isoformat()}: engine {mine}, iCalendar {theirs}")
            break
    expand_ratio = best_ical[0] / best_engine[0]
    total_ratio = sum(best_ical) / sum(best_engine)
    print(
        f"targets: year of {args.rotations} rotations < 0.5 s: {_yes(best_engine[0] < 0.5)}; "
        f">= 10x: expansion {_yes(expand_ratio >= 10)}, expansion + queries "
        f"{_yes(total_ratio >= 10)}; identical answers: {_yes(agree == len(queries))}"
    )
    return 0 if agree == len(queries) else 1


def _yes(met: bool) -> str:
    """yes or NO, for the targets line."""
    return "yes" if met else "NO"


def _best(runs) -> tuple[float, float]:
    """(expand, query) seconds of the fastest run."""
    return min(((run[1], run[2]) for run in runs), key=sum)


def _median_total(runs) -> float:
    """The median of the runs' total seconds."""
    return statistics.median(run[1] + run[2] for run in runs)


def print_table(args, engine: tuple[float, float], ical: tuple[float, float]) -> None:
    """The best timings of both routes and their ratio."""
    print(
        f"{args.rotations} rotations x 3 regions, {YEAR_START:%Y-%m-%d} to {YEAR_END:%Y-%m-%d}, "
        f"{args.queries:,} who-is-on-call queries, best of {args.repeat} runs; holidays, "
        "overrides and time off in the year"
    )
    rows = [
        ("route", "expand year (s)", f"{args.queries:,} queries (s)", "total (s)"),
        ("engine (cold caches)", *(f"{t:.3f}" for t in (*engine, sum(engine)))),
        ("RRULE + recurring_ical_events", *(f"{t:.3f}" for t in (*ical, sum(ical)))),
        (
            "ratio (iCalendar / engine)",
            *(f"{a / b:.1f}x" for a, b in zip((*ical, sum(ical)), (*engine, sum(engine)))),
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        print("  ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
