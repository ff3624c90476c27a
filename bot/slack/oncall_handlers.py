"""`/oncall` listeners and the App Home tab: who holds the pager, in the asker's time zone."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot.incidents.followups import followups_text, open_items_of
from bot.incidents.service import list_open_incidents
from bot.incidents.workflow import roles_of, visible_to
from bot.models import Incident
from bot.observability.slack_requests import mark_outcome
from bot.oncall import away
from bot.oncall import service as oncall
from bot.oncall.service import OncallError
from bot.schedule import Shift
from bot.schedule.zones import local_to_utc, parse_instant, utc_to_local
from bot.slack import commands, contact_commands, feed_commands, swap_handlers
from bot.slack.blocks import incident_line
from bot.slack.commands import UsageError
from bot.slack.people import NotCached, People
from bot.slack.swap_handlers import SwapFlows
from bot.text import excerpt, safe, user, when

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.slack.after_ack import AfterAck

log = logging.getLogger(__name__)
# Questions that change nothing: answered in the acknowledgement when no profile is missing.
READ_ONLY = (
    commands.WhoIsOnCall, commands.NextOnCall, commands.MyShifts, commands.ShowSchedule, commands.ListAway,
    commands.ListFollowups,
)


def period(start: datetime, end: datetime, tz: str) -> str:
    """`Thu 24 Dec 2026 00:00 → Sat 02 Jan 2027 00:00`: a period in the reader's zone."""
    return " → ".join(f"{utc_to_local(tz, edge):%a %d %b %Y %H:%M}" for edge in (start, end))


class OncallFlows:
    def __init__(self, runtime: "Runtime", people: People) -> None:
        self.rt = runtime
        self.people = people
        self.swaps = SwapFlows(runtime, people)

    def shift_line(self, shift: Shift, tz: str) -> str:
        who = self.people.resolve(shift.user)
        their_tz = self.people.tz(who)
        their_now = utc_to_local(their_tz, self.rt.clock.now())
        return (
            f"{user(who)}{self.tag(shift)} · {safe(shift.region)} · until {when(shift.end, tz)} · "
            f"their time {their_now:%H:%M} {their_now.tzname()}"
        )

    def tag(self, shift: Shift) -> str:
        """Why this person holds this shift, when it is not their turn in the file."""
        if shift.covering_for:
            return f" (covering for {user(self.people.resolve(shift.covering_for))})"
        return " (override)" if shift.is_override else ""

    def who(self, rotation_name: str | None, asker: str) -> str:
        tz = self.people.tz(asker)
        now = self.rt.clock.now()
        names = [rotation_name] if rotation_name else sorted(self.rt.rotations)
        if not names:
            return "No rotations are configured: add TOML files to the rotations folder."
        rotations = [oncall.find_rotation(self.rt.rotations, name) for name in names]
        found = oncall.cached_adjustments(self.rt.storage).of(rotations)  # one query at most
        return "\n".join(
            f"*{safe(rotation.name)}*: {self.shift_line(oncall.shift_at(rotation, now, found[rotation.name]), tz)}"
            for rotation in rotations
        )

    def next(self, rotation_name: str, asker: str) -> str:
        tz = self.people.tz(asker)
        now = self.rt.clock.now()
        rotation = oncall.find_rotation(self.rt.rotations, rotation_name)
        found = oncall.cached_adjustments(self.rt.storage).of([rotation])[rotation.name]
        current = oncall.shift_at(rotation, now, found)
        following = oncall.shift_at(rotation, current.end, found)
        who = self.people.resolve(following.user)
        return (
            f"*{safe(rotation.name)}*: next is {user(who)} ({safe(following.region)}) "
            f"from {when(following.start, tz)} until {when(following.end, tz)}."
        )

    def mine(self, asker: str) -> str:
        tz = self.people.tz(asker)
        now = self.rt.clock.now()
        found: list[tuple[datetime, str]] = []
        rotations = list(self.rt.rotations.values())
        kept = oncall.cached_adjustments(self.rt.storage).of(rotations)
        for rotation in rotations:  # by override or cover too, member of the rotation or not
            for shift in oncall.shifts_of(rotation, kept[rotation.name], lambda u: self.people.resolve(u) == asker,
                                          after=now):
                found.append((shift.start, f"*{safe(rotation.name)}* · {when(shift.start, tz)} → {when(shift.end, tz)}"
                              + self.tag(shift)))
        if not found:
            return "You have no on-call shifts in the next 90 days."
        return f"*Your next shifts* ({tz})\n" + "\n".join(line for _, line in sorted(found)[:10])

    def schedule(self, rotation_name: str, days: int, asker: str) -> str:
        tz = self.people.tz(asker)
        now = self.rt.clock.now()
        with self.rt.storage.read() as session:
            rotation = oncall.find_rotation(self.rt.rotations, rotation_name)
            shifts = oncall.shifts(db_session=session, rotation=rotation, start=now, days=days)
            stored = oncall.list_overrides(db_session=session, rotation=rotation, after=now)
        lines = [f"*{safe(rotation.name)}* — next {days} days, times in {tz}"]
        for shift in shifts[:60]:
            lines.append(f"{when(shift.start, tz)} → {when(shift.end, tz)} · {user(self.people.resolve(shift.user))}{self.tag(shift)} · {safe(shift.region)}")
        if len(shifts) > 60:
            lines.append(f"_…and {len(shifts) - 60} more; `python -m bot schedule` prints them all._")
        if stored:
            lines.append("*Overrides* (remove with `/oncall override remove ID`)")
            lines.extend(f"#{o.id} {user(o.user)} {when(o.start, tz)} → {when(o.end, tz)} ({o.reason})" for o in stored)
        return "\n".join(lines)

    def parse_time(self, text: str, tz: str) -> datetime:
        """ISO date-time with an offset, or a wall-clock time in the asker's zone."""
        try:
            return parse_instant(text)
        except ValueError:
            pass
        try:
            wall = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(f"`{excerpt(text)}` is not a time. Use ISO form such as 2026-11-24T09:00 (your zone) or 2026-11-24T09:00+08:00. Use {commands.FORMS['override']}.") from None
        return local_to_utc(tz, wall.replace(tzinfo=None))

    def override(self, cmd: commands.AddOverride, asker: str) -> str:
        tz = self.people.tz(asker)
        start, end = self.parse_time(cmd.start, tz), self.parse_time(cmd.end, tz)
        with self.rt.storage.session() as session:
            rotation = oncall.find_rotation(self.rt.rotations, cmd.rotation)
            record = oncall.add_override(db_session=session, rotation=rotation, user=cmd.user, start=start, end=end, actor=asker, now=self.rt.clock.now())
            number = record.id
        return f"Override #{number}: {user(cmd.user)} is on call for *{safe(cmd.rotation)}* from {when(start, tz)} to {when(end, tz)}."

    def remove(self, cmd: commands.RemoveOverride, asker: str) -> str:
        with self.rt.storage.session() as session:
            record = oncall.remove_override(db_session=session, rotations=self.rt.rotations, override_id=cmd.override_id, actor=asker)
        return f"Override #{record.id} on *{safe(record.rotation)}* removed."

    def add_away(self, cmd: commands.AddAway, asker: str) -> str:
        tz = self.people.tz(asker)
        start, end = cmd.span(tz)
        now = self.rt.clock.now()
        with self.rt.storage.session() as session:
            record = away.add_away(db_session=session, user=asker, start=start, end=end, now=now)
            number = record.id
        return f"Away #{number}: {period(start, end, tz)} ({tz}). Remove it with `/oncall away remove {number}`."

    def remove_away(self, cmd: commands.RemoveAway, asker: str) -> str:
        tz = self.people.tz(asker)
        with self.rt.storage.session() as session:
            record = away.remove_away(db_session=session, away_id=cmd.away_id, actor=asker)
        return f"Away #{record.id} removed: {period(record.start, record.end, tz)} ({tz})."

    def list_away(self, asker: str) -> str:
        """The asker's time away that has not ended: set in Slack (numbered), then the people file's."""
        profile = self.people.profile(asker)
        tz, email = profile.tz, (profile.email or "").lower()
        now = self.rt.clock.now()
        with self.rt.storage.read() as session:
            stored = away.list_away(db_session=session, user=asker, after=now)
        # The people file names the asker by user ID or by e-mail: no one else need be looked up.
        mine = [p for p in self.rt.people_file.values() if p.user == asker or (email and p.user.lower() == email)]
        from_file = [p for person in mine for p in person.away if p.end > now]
        if not stored and not from_file:
            return "You have no time away ahead. Add some with `/oncall away START END`."
        lines = [f"*Your time away* (times in {tz})"]
        lines += [f"#{r.id} · {period(r.start, r.end, tz)}" for r in stored]
        lines += [f"people file · {period(p.start, p.end, tz)}" for p in from_file]
        if stored:
            lines.append("Remove one with `/oncall away remove ID`.")
        return "\n".join(lines)

    def answer(self, parsed: Any, asker: str) -> str:
        if isinstance(parsed, commands.WhoIsOnCall):
            return self.who(parsed.rotation, asker)
        if isinstance(parsed, commands.NextOnCall):
            return self.next(parsed.rotation, asker)
        if isinstance(parsed, commands.MyShifts):
            return self.mine(asker)
        if isinstance(parsed, commands.ShowSchedule):
            return self.schedule(parsed.rotation, parsed.days, asker)
        if isinstance(parsed, commands.AddOverride):
            return self.override(parsed, asker)
        if isinstance(parsed, commands.RemoveOverride):
            return self.remove(parsed, asker)
        if isinstance(parsed, commands.Swap):
            return self.swaps.swap(parsed, asker)
        if isinstance(parsed, commands.Take):
            return self.swaps.take(parsed, asker)
        if isinstance(parsed, commands.AddAway):
            return self.add_away(parsed, asker)
        if isinstance(parsed, commands.RemoveAway):
            return self.remove_away(parsed, asker)
        if isinstance(parsed, commands.ListFollowups):
            return self.followups(asker)
        if isinstance(parsed, commands.ListAway):
            return self.list_away(asker)
        return commands.ONCALL_HELP

    def reply(self, parsed: Any, asker: str) -> str:
        """The answer, or what was wrong with the request, for the asker."""
        try:
            return self.answer(parsed, asker)
        except (OncallError, UsageError) as exc:
            mark_outcome("refused" if isinstance(exc, OncallError) else "usage_error")
            return str(exc)

    def followups(self, asker: str) -> str:
        """`/oncall followups`: my open action items across incidents."""
        with self.rt.storage.read() as session:
            items = open_items_of(db_session=session, owner=asker)
            found = {i.incident_id: session.get(Incident, i.incident_id) for i in items}
        return followups_text(items, {n: i for n, i in found.items() if i is not None})

    def my_incidents(self, viewer: str) -> str:
        """Open incidents I command, declared or hold a role in (private ones only to members)."""
        with self.rt.storage.read() as session:
            mine = [i for i in list_open_incidents(db_session=session)
                    if (viewer in (i.commander, i.declarer) or viewer in roles_of(db_session=session, incident=i).values())
                    and visible_to(db_session=session, incident=i, user_id=viewer)]
        if not mine:
            return "*My open incidents*\nNone."
        return "*My open incidents*\n" + "\n".join(incident_line(i) for i in mine)

    def home_view(self, viewer: str) -> dict[str, Any]:
        """The App Home tab: who is on call now everywhere, my open incidents, my follow-ups, my
        next shifts, and my contacts with when each is used (URLs masked)."""
        parts = [f"*On call now*\n{self.who(None, viewer)}", self.my_incidents(viewer), self.followups(viewer),
                 self.mine(viewer), contact_commands.ContactReplies(self.rt).listing(viewer)]
        return {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": part[:2900]}}
                                           for part in parts]}


def register(app: App, runtime: "Runtime", after_ack: "AfterAck") -> None:
    people = runtime.people
    flows = OncallFlows(runtime, people)
    contacts = contact_commands.ContactReplies(runtime)

    @app.command("/oncall")
    def oncall_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        try:
            reset = feed_commands.parse_ical(command.get("text", ""))
            if reset is not None:  # a small write: answered in the acknowledgement
                ack(text=feed_commands.feed_reply(runtime, command["user_id"], reset=reset))
                return
            own = contact_commands.parse(command.get("text", ""))
            parsed = own if own is not None else commands.parse_oncall(command.get("text", ""))
        except UsageError as exc:
            mark_outcome("usage_error")
            ack(text=str(exc))
            return
        if own is not None:  # a test notification takes seconds: answered through response_url
            asker = command["user_id"]
            ack()
            after_ack(lambda: respond(text=contacts.reply(own, asker), response_type="ephemeral"))
            return
        if isinstance(parsed, commands.Help):
            ack(text=commands.ONCALL_HELP)
            return
        asker = command["user_id"]
        if isinstance(parsed, READ_ONLY):
            try:  # everyone's time zone already known: the answer is the acknowledgement
                with people.offline():
                    ack(text=flows.reply(parsed, asker))
                return
            except NotCached:
                pass
        ack()  # a time zone has to come from Slack first: reply through response_url
        after_ack(lambda: respond(text=flows.reply(parsed, asker), response_type="ephemeral"))

    swap_handlers.register(app, runtime, after_ack, flows.swaps)

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: Any) -> None:
        if event.get("tab", "home") != "home":
            return
        after_ack(lambda: client.views_publish(user_id=event["user"], view=flows.home_view(event["user"])))

