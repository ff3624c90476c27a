"""GET /ical/<rotation>.ics[?user=U…]: the shifts as an iCalendar feed (icalendar library).

Nothing a request carries reaches the calendar unchecked: a control character anywhere in the
path or the query is 400 (a bare CR would be written as is, and lenient readers take it for a
line break: an injected event), `user` must be a Slack user ID, and the rotation must be one
that is loaded (404). Names from the rotation files lose their control characters too.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask, Response, jsonify, request
from icalendar import Calendar, Event

from bot.oncall import service as oncall
from bot.oncall.service import OncallError
from bot.web.app import ROUTE_INSTALLERS

if TYPE_CHECKING:
    from bot.runtime import Runtime

PAST = timedelta(days=7)
AHEAD_DAYS = 90
USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _written(text: str) -> str:
    """Text for the calendar without control characters (icalendar escapes the rest)."""
    return CONTROL.sub("", text)


def shifts_calendar(runtime: "Runtime", rotation_name: str, user: str | None) -> bytes:
    """A week back and 90 days ahead of effective shifts (overrides applied), UTC times."""
    rotation = oncall.find_rotation(runtime.rotations, rotation_name)
    now = runtime.clock.now().replace(minute=0, second=0, microsecond=0)
    with runtime.storage.read() as session:
        shifts = oncall.shifts(db_session=session, rotation=rotation, start=now - PAST, days=AHEAD_DAYS + PAST.days)
    calendar = Calendar()
    calendar.add("prodid", "-//oncall-bot//on-call shifts//EN")
    calendar.add("version", "2.0")
    name = _written(rotation.name)
    calendar.add("x-wr-calname", f"On call: {name}" + (f" ({_written(user)})" if user else ""))
    people = runtime.people
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


def install(runtime: "Runtime", web: Flask) -> None:
    @web.get("/ical/<name>.ics")
    def ical(name: str):  # type: ignore[no-untyped-def]
        if CONTROL.search(name) or any(CONTROL.search(k) or CONTROL.search(v) for k, v in request.args.items(multi=True)):
            return jsonify({"ok": False, "error": "control characters are not allowed in a calendar address"}), 400
        user = request.args.get("user") or None
        if user is not None and not USER_ID.fullmatch(user):
            return jsonify({"ok": False, "error": "user must be a Slack user ID such as U012AB3CD"}), 400
        try:
            body = shifts_calendar(runtime, name, user)
        except OncallError as exc:
            return jsonify({"ok": False, "error": str(exc)}), 404
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", name)  # a header value: nothing that needs quoting
        return Response(body, mimetype="text/calendar", headers={"Content-Disposition": f'inline; filename="{filename}.ics"'})


ROUTE_INSTALLERS.append(install)
