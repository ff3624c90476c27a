"""Effective on-call shifts: follow-the-sun precedence, gap extension, overrides, and queries."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise

from bot.schedule.model import Away, Override, Rotation, Shift
from bot.schedule.windows import LOOKBACK, Window, last_window_before, rotation_windows
from bot.schedule.zones import require_utc

# Local dates differ from UTC by at most 14 h and windows last at most 25 h, so two days either
# side of an interval take in every window that can touch it.
MARGIN = timedelta(days=2)
LONGEST_EXACT_SPAN = timedelta(days=400)

# Builds a Shift from a tuple in C, skipping NamedTuple's Python-level __new__ (a hot path).
_new_shift = tuple.__new__

# A resolved piece of the timeline before it becomes a Shift: [start, end, region order, user].
_Segment = list


# Time off by member (a user ID or e-mail as rotation files name them).
AwayByMember = Mapping[str, Sequence[Away]]


class Timeline:
    """A rotation's effective shifts over an interval, answering "who is on call at t" fast."""

    def __init__(self, shifts: Sequence[Shift]) -> None:
        self.shifts = list(shifts)
        # Every start is in UTC, so bisecting compares datetimes field by field, in C.
        self._starts = [shift.start for shift in self.shifts]
        self._end = self.shifts[-1].end if self.shifts else None

    def at(self, when: datetime) -> Shift:
        """The shift covering when (an aware datetime; TypeError when naive); ValueError when
        when lies outside the timeline."""
        if when.tzinfo is not UTC:
            if when.tzinfo is None or when.utcoffset() is None:
                raise TypeError(f"{when.isoformat()} has no time zone")
            when = when.astimezone(UTC)
        # Shifts are back to back, so only the two ends of the timeline need checking.
        index = bisect_right(self._starts, when) - 1
        if index < 0 or self._end is None or when >= self._end:
            raise ValueError(f"{when.isoformat()} is outside this timeline")
        return self.shifts[index]


def build_timeline(
    rotation: Rotation, start: datetime, end: datetime, overrides: Iterable[Override] = (),
    away: AwayByMember | None = None,
) -> Timeline:
    """The effective shifts of rotation over [start, end), ready for repeated queries."""
    return Timeline(shifts_between(rotation, start, end, overrides, away))


def shifts_between(
    rotation: Rotation, start: datetime, end: datetime, overrides: Iterable[Override] = (),
    away: AwayByMember | None = None,
) -> list[Shift]:
    """Effective shifts covering [start, end) back to back, clipped to it.

    At each instant the region whose window began most recently holds the pager, however long
    ago it began; where no window runs, the previous holder keeps it until the next window
    begins. A member away is covered by the next member of the region in turn order who is not
    away (see cover_time_off). The rotation's own overrides, then the given ones (later wins),
    replace whoever is scheduled.
    """
    start, end = require_utc(start, name="start"), require_utc(end, name="end")
    if end <= start:
        return []
    segments = _resolve(windows_from(rotation, start, end), start, end)
    pieces = _override_pieces([*rotation.overrides, *overrides], start, end)
    names = [region.name for region in rotation.regions]
    rotation_name = rotation.name
    if not pieces:
        shifts = [
            _new_shift(Shift, (rotation_name, names[o], u, s, e, False, None)) for s, e, o, u in segments
        ]
    else:
        shifts = [
            _new_shift(Shift, (rotation_name, names[o], u, s, e, is_override, None))
            for s, e, o, u, is_override in _apply_overrides(segments, pieces)
        ]
    away = with_file_time_off(rotation, away)
    return cover_time_off(rotation, shifts, away)[0] if away else shifts


def with_file_time_off(rotation: Rotation, away: AwayByMember | None) -> AwayByMember | None:
    """The given time off together with the rotation's own (from the people file)."""
    if not rotation.time_off:
        return away
    merged: dict[str, list[Away]] = {member: list(periods) for member, periods in rotation.time_off}
    for member, periods in (away or {}).items():
        merged.setdefault(member, []).extend(periods)
    return merged


def windows_from(rotation: Rotation, start: datetime, end: datetime) -> list[Window]:
    """The windows that can touch [start, end), from the last one that began at or before start."""
    windows = rotation_windows(rotation, first_day=(start - LOOKBACK).date(), last_day=(end + MARGIN).date())
    if windows and windows[0].start <= start:
        return windows
    earlier = last_window_before(rotation, start)
    return windows if earlier is None else [earlier, *windows]


def cover_time_off(
    rotation: Rotation, shifts: Sequence[Shift], away: AwayByMember | None
) -> tuple[list[Shift], list[Shift]]:
    """The shifts (back to back, as shifts_between gives them) with each scheduled member's
    time away held by the next member of the same region in turn order who is not away then
    (`covering_for` names whom they cover), and the pieces nobody could cover, which stay with
    the member away. Overrides are not touched."""
    if not away:
        return list(shifts), []
    members = {region.name: region.members for region in rotation.regions}
    covered: list[Shift] = []
    uncovered: list[Shift] = []
    done = 0  # shifts before this index are in covered
    for index in _shifts_away(shifts, away):
        _copy_untouched(covered, shifts, done, index)
        done = index + 1
        shift = shifts[index]
        team = members.get(shift.region, ())
        periods = [(p.start, p.end, who) for who in team for p in away.get(who, ())
                   if p.start < shift.end and p.end > shift.start]
        edges = sorted({shift.start, shift.end, *(max(shift.start, min(shift.end, t))
                                                   for s, e, _ in periods for t in (s, e))})
        for low, high in pairwise(edges):
            absent = {who for s, e, who in periods if s <= low < e}
            if shift.user not in absent:
                _append_shift(covered, shift._replace(start=low, end=high))
                continue
            cover = _next_present(team, shift.user, absent)
            piece = shift._replace(start=low, end=high)
            if cover is None:
                _append_shift(covered, piece)
                uncovered.append(piece)
            else:
                _append_shift(covered, piece._replace(user=cover, covering_for=shift.user))
    _copy_untouched(covered, shifts, done, len(shifts))
    return covered, uncovered


def _copy_untouched(covered: list[Shift], shifts: Sequence[Shift], low: int, high: int) -> None:
    """Append shifts[low:high], which nobody's time off touches; the first may continue the
    last piece of the split shift before it."""
    if low < high:
        _append_shift(covered, shifts[low])
        covered.extend(shifts[low + 1 : high])


def _shifts_away(shifts: Sequence[Shift], away: AwayByMember) -> list[int]:
    """The indexes, in order, of the shifts (not overrides) whose member is away for part of
    them; found by bisection, since the shifts are back to back and few overlap time off."""
    starts = [shift.start for shift in shifts]
    found = set()
    for member, periods in away.items():
        for period in periods:
            first = max(0, bisect_right(starts, period.start) - 1)
            for index in range(first, bisect_left(starts, period.end)):
                shift = shifts[index]
                if shift.user == member and not shift.is_override and period.overlaps(shift.start, shift.end):
                    found.add(index)
    return sorted(found)


def _next_present(team: Sequence[str], member: str, absent: set[str]) -> str | None:
    """The member after `member` in turn order who is not absent; None when everyone is."""
    first = team.index(member) if member in team else -1
    for step in range(1, len(team) + 1):
        candidate = team[(first + step) % len(team)]
        if candidate != member and candidate not in absent:
            return candidate
    return None


def _append_shift(shifts: list[Shift], shift: Shift) -> None:
    """Append shift, merged into the previous one when the two are the same turn back to back."""
    if shifts and shifts[-1].end == shift.start and shifts[-1][:3] == shift[:3] and shifts[-1][5:] == shift[5:]:
        shifts[-1] = shifts[-1]._replace(end=shift.end)
    else:
        shifts.append(shift)


def who_is_on_call(
    rotation: Rotation, at: datetime, overrides: Iterable[Override] = (), away: AwayByMember | None = None
) -> Shift:
    """The effective shift containing at, with its real start and end (exact within a year)."""
    at = require_utc(at, name="at")
    overrides = tuple(overrides)
    span = timedelta(days=2)
    while True:
        low, high = at - span, at + span
        shift = Timeline(shifts_between(rotation, low, high, overrides, away)).at(at)
        if (low < shift.start and shift.end < high) or span > LONGEST_EXACT_SPAN:
            return shift
        span *= 4


def next_shifts_for(
    rotation: Rotation,
    user: str,
    after: datetime,
    limit: int = 5,
    overrides: Iterable[Override] = (),
    horizon_days: int = 90,
    away: AwayByMember | None = None,
) -> list[Shift]:
    """user's shifts that have not ended by after, in order, within horizon_days; a shift under
    way at after is given with its real start."""
    after = require_utc(after, name="after")
    overrides = tuple(overrides)
    horizon = after + timedelta(days=horizon_days)
    mine = [s for s in shifts_between(rotation, after, horizon, overrides, away) if s.user == user]
    if mine and mine[0].start == after:
        mine[0] = who_is_on_call(rotation, after, overrides, away)
    return mine[:limit]


def handoff_instants(
    rotation: Rotation, start: datetime, end: datetime, overrides: Iterable[Override] = (),
    away: AwayByMember | None = None,
) -> list[datetime]:
    """UTC instants in (start, end] at which the person or the region on call changes."""
    start, end = require_utc(start, name="start"), require_utc(end, name="end")
    shifts = shifts_between(rotation, start, end + timedelta(seconds=1), overrides, away)
    return [
        shift.start
        for before, shift in pairwise(shifts)
        if shift.start <= end and (before.user, before.region) != (shift.user, shift.region)
    ]


def scheduled_windows(rotation: Rotation, start: datetime, end: datetime) -> list[Shift]:
    """Each region's scheduled windows overlapping [start, end), whole, in start order.

    These are the raw turns (no precedence, gap extension or overrides): what each region's
    member is asked to cover, e.g. for a calendar feed.
    """
    start, end = require_utc(start, name="start"), require_utc(end, name="end")
    windows = rotation_windows(
        rotation, first_day=(start - MARGIN).date(), last_day=(end + MARGIN).date()
    )
    names = [region.name for region in rotation.regions]
    return [
        Shift(rotation.name, names[w.order], w.user, w.start, w.end)
        for w in sorted(windows, key=lambda w: (w.start, w.order))
        if w.end > start and w.start < end
    ]


def _resolve(windows: list[Window], start: datetime, end: datetime) -> list[_Segment]:
    """Turn windows (sorted by precedence) into back-to-back segments covering [start, end).

    Each window takes over when it starts; when the holder's window ends, the latest-started
    window still running takes over, and if none is running the holder keeps the pager.
    """
    segments: list[_Segment] = []
    begun: list[Window] = []  # windows that have started, lowest precedence first
    latest_end: datetime | None = None  # the latest end of any window begun so far
    count = len(windows)
    for index, window in enumerate(windows):
        window_start, window_end, order, user = window
        if window_start >= end:
            break
        following = windows[index + 1][0] if index + 1 < count else end
        following = min(following, end)
        begun.append(window)
        earlier_end = latest_end
        latest_end = window_end if latest_end is None else max(latest_end, window_end)
        if following <= start or following == window_start:
            continue  # a later-listed region tying on start time never holds the pager
        if window_end >= following or earlier_end is None or earlier_end <= window_end:
            # The usual case, kept inline for speed: no earlier window outlasts this one, so it
            # holds the pager until the next window starts (through any gap in between).
            low = max(start, window_start)
            last = segments[-1] if segments else None
            if last and last[1] == low and last[2] == order and last[3] == user:
                last[1] = following
            else:
                segments.append([low, following, order, user])
            if window_end <= following:
                begun.pop()  # over before anyone else starts, so it can never take back over
            elif len(begun) > 8:
                begun = [w for w in begun if w.end > window_start]
            continue
        holder, now = window, window_start
        while now < following:
            begun = [w for w in begun if w.end > now]
            if begun:
                holder = begun[-1]
                stop = min(holder.end, following)
            else:
                stop = following  # nobody scheduled: the last holder keeps the pager
            if stop > start:
                _extend(segments, max(now, start), stop, holder.order, holder.user)
            now = stop
    if segments and segments[0][0] > start:
        # Only when no window reached back far enough (a degenerate rotation): never leave a hole.
        segments[0][0] = start
    return segments


def _extend(
    segments: list[_Segment], start: datetime, end: datetime, order: int, user: str
) -> None:
    """Append [start, end) for (order, user), merging with the previous segment when it is theirs."""
    if segments:
        last = segments[-1]
        if last[1] == start and last[2] == order and last[3] == user:
            last[1] = end
            return
    segments.append([start, end, order, user])


def _override_pieces(
    overrides: Sequence[Override], start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    """Disjoint (start, end, user) pieces of the overrides within [start, end); later ones win."""
    relevant = [o for o in overrides if o.end > start and o.start < end]
    if not relevant:
        return []
    edges = sorted({max(start, min(end, t)) for o in relevant for t in (o.start, o.end)})
    pieces: list[tuple[datetime, datetime, str]] = []
    for low, high in pairwise(edges):
        winner = next((o for o in reversed(relevant) if o.start <= low < o.end), None)
        if winner is None:
            continue
        if pieces and pieces[-1][1] == low and pieces[-1][2] == winner.user:
            pieces[-1] = (pieces[-1][0], high, winner.user)
        else:
            pieces.append((low, high, winner.user))
    return pieces


def _apply_overrides(
    segments: list[_Segment], pieces: list[tuple[datetime, datetime, str]]
) -> list[tuple[datetime, datetime, int, str, bool]]:
    """Segments with override pieces cut in; each keeps the region it replaces."""
    if not pieces:
        return [(s, e, o, u, False) for s, e, o, u in segments]
    result: list[tuple[datetime, datetime, int, str, bool]] = []
    first, count = 0, len(pieces)  # both lists are in time order: skip the pieces already past
    for seg_start, seg_end, order, user in segments:
        while first < count and pieces[first][1] <= seg_start:
            first += 1
        if first == count or pieces[first][0] >= seg_end:
            # untouched; it cannot merge with what precedes: _resolve merged its own neighbours
            result.append((seg_start, seg_end, order, user, False))
            continue
        now = seg_start
        for low, high, who in islice(pieces, first, None):
            if low >= seg_end:
                break
            if low > now:
                _append_merged(result, (now, low, order, user, False))
            _append_merged(result, (max(low, now), min(high, seg_end), order, who, True))
            now = min(high, seg_end)
        if now < seg_end:
            _append_merged(result, (now, seg_end, order, user, False))
    return result


def _append_merged(result: list, piece: tuple[datetime, datetime, int, str, bool]) -> None:
    """Append piece, merging it into the previous one when region, user and kind agree."""
    if result and result[-1][1] == piece[0] and result[-1][2:] == piece[2:]:
        result[-1] = (result[-1][0], *piece[1:])
    else:
        result.append(piece)
