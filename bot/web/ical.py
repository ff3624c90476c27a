"""GET /ical/<secret>.ics[?rotation=NAME]: a person's calendar feed (icalendar library).

The secret comes from `/oncall ical`; an unknown, malformed or replaced one is 404, and so is
every other address under /ical/. Without `rotation` the feed lists the person's own shifts
on every rotation; with it, every shift of that rotation (unknown rotation: 404). A control
character in the query is 400 (a bare CR would be written as is, and lenient readers take it
for a line break: an injected event). Names from the rotation files lose their control
characters too.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask, Response, abort, jsonify, request
from icalendar import Calendar, Event

from bot.oncall import service as oncall
from bot.oncall.feeds import feed_owner
from bot.oncall.service import OncallError
from bot.schedule import Rotation
from bot.web.app import ROUTE_INSTALLERS

if TYPE_CHECKING:
    from bot.runtime import Runtime

PAST = timedelta(days=7)
AHEAD_DAYS = 90
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _written(text: str) -> str:
    """Text for the calendar without control characters (icalendar escapes the rest)."""
    return CONTROL.sub("", text)


def shifts_calendar(runtime: Runtime, rotations: list[Rotation], user: str | None, title: str) -> bytes:
    """A week back and 90 days ahead of effective shifts (overrides applied), UTC times; only
    `user`'s when given."""
    now = runtime.clock.now().replace(minute=0, second=0, microsecond=0)
    calendar = Calendar()
    calendar.add("prodid", "-//oncall-bot//on-call shifts//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", _written(title))
    people = runtime.people
    for rotation in rotations:
        with runtime.storage.read() as session:
            shifts = oncall.shifts(db_session=session, rotation=rotation, start=now - PAST,
                                   days=AHEAD_DAYS + PAST.days)
        name = _written(rotation.name)
        for shift in shifts:
            who = people.resolve(shift.user) if "@" in shift.user else shift.user
            if user and who != user:
                continue
            region, person = _written(shift.region), _written(who)
            event = Event()
            event.add("uid", f"{name}-{region}-{shift.start:%Y%m%dT%H%M%SZ}-{person}@oncall-bot")
            event.add("dtstamp", now)
            event.add("dtstart", shift.start)
            event.add("dtend", shift.end)
            tag = " (override)" if shift.is_override else ""
            if shift.covering_for:
                tag = f" (covering for {shift.covering_for})"
            event.add("summary", f"On call: {name} ({region}){tag}")
            event.add("description", f"Slack user {person} holds the {name} pager.")
            calendar.add_component(event)
    return calendar.to_ical()


def install(runtime: Runtime, web: Flask) -> None:
    key = runtime.settings.key("calendar-feed")

    @web.get("/ical/<secret>.ics")
    def ical(secret: str):  # type: ignore[no-untyped-def]
        with runtime.storage.read() as session:
            owner = feed_owner(db_session=session, key=key, secret=secret)
        if owner is None:
            abort(404)
        if any(CONTROL.search(k) or CONTROL.search(v) for k, v in request.args.items(multi=True)):
            return jsonify({"ok": False, "error": "control characters are not allowed in a calendar address"}), 400
        name = request.args.get("rotation")
        if name is None:
            body = shifts_calendar(runtime, list(runtime.rotations.values()), owner, "On call: my shifts")
        else:
            try:
                rotation = oncall.find_rotation(runtime.rotations, name)
            except OncallError as exc:
                return jsonify({"ok": False, "error": str(exc)}), 404
            body = shifts_calendar(runtime, [rotation], None, f"On call: {rotation.name}")
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", name or "my-shifts")  # a header value: nothing to quote
        headers = {"Content-Disposition": f'inline; filename="{filename}.ics"', "Cache-Control": "private, no-store"}
        return Response(body, mimetype="text/calendar", headers=headers)


ROUTE_INSTALLERS.append(install)
