"""GET /ical/<rotation>.ics[?user=U…]: the shifts as an iCalendar feed (icalendar library)."""

from __future__ import annotations

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


def shifts_calendar(runtime: "Runtime", rotation_name: str, user: str | None) -> bytes:
    """A week back and 90 days ahead of effective shifts (overrides applied), UTC times."""
    rotation = oncall.find_rotation(runtime.rotations, rotation_name)
    now = runtime.clock.now().replace(minute=0, second=0, microsecond=0)
    with runtime.storage.read() as session:
        shifts = oncall.shifts(db_session=session, rotation=rotation, start=now - PAST, days=AHEAD_DAYS + PAST.days)
    calendar = Calendar()
    calendar.add("prodid", "-//oncall-bot//on-call shifts//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"On call: {rotation.name}" + (f" ({user})" if user else ""))
    people = runtime.people
    for shift in shifts:
        who = people.resolve(shift.user) if "@" in shift.user else shift.user
        if user and who != user:
            continue
        event = Event()
        event.add("uid", f"{rotation.name}-{shift.region}-{shift.start:%Y%m%dT%H%M%SZ}-{who}@oncall-bot")
        event.add("dtstamp", now)
        event.add("dtstart", shift.start)
        event.add("dtend", shift.end)
        tag = " (override)" if shift.is_override else ""
        if shift.covering_for:
            tag = f" (covering for {shift.covering_for})"
        event.add("summary", f"On call: {rotation.name} ({shift.region}){tag}")
        event.add("description", f"Slack user {who} holds the {rotation.name} pager.")
        calendar.add_component(event)
    return calendar.to_ical()


def install(runtime: "Runtime", web: Flask) -> None:
    @web.get("/ical/<name>.ics")
    def ical(name: str):  # type: ignore[no-untyped-def]
        user = request.args.get("user") or None
        try:
            body = shifts_calendar(runtime, name, user)
        except OncallError as exc:
            return jsonify({"ok": False, "error": str(exc)}), 404
        return Response(body, mimetype="text/calendar", headers={"Content-Disposition": f'inline; filename="{name}.ics"'})


ROUTE_INSTALLERS.append(install)
