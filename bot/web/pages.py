"""The web pages behind Sign in with Slack: `/` (open incidents, who is on call now),
`/incidents/<n>`, `/postmortems/<n>` and `/rotations/<name>`, server-rendered with Jinja2
(templates in bot/web/templates), every time in the viewer's own zone (the people file's, or
their Slack profile's). An incident the viewer may not see answers 404, like one that does not
exist. Without SLACK_CLIENT_ID none of these routes exist (404)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, abort
from markupsafe import Markup

from bot.incidents import service as incidents
from bot.incidents.paging import pages_of
from bot.models import Incident
from bot.oncall import service as oncall
from bot.oncall.service import OncallError
from bot.postmortem import service as postmortems
from bot.postmortem.html import render_markdown
from bot.schedule.zones import utc_to_local
from bot.text import plain
from bot.web.app import ROUTE_INSTALLERS
from bot.web.signin import SignIn, csrf_value
from bot.web.templating import render
from bot.web.visibility import visible_to

if TYPE_CHECKING:
    from bot.runtime import Runtime

ROTATION_DAYS = 14


def local(instant: datetime | None, tz: str) -> str:
    """`Tue 10 Mar 2026 08:00 PDT`: an instant in the viewer's zone."""
    if instant is None:
        return ""
    shown = utc_to_local(tz, instant)
    return f"{shown:%a %d %b %Y %H:%M} {shown.tzname()}"


def install(runtime: Runtime, web: Flask) -> None:
    if not runtime.settings.web_pages:
        return
    signin: SignIn = web.config["signin"]
    people = runtime.people

    def name(user_id: str | None) -> str:
        if not user_id:
            return ""
        if user_id[:1] not in "UW":
            return user_id  # an alert source, not a person
        try:
            return people.profile(user_id).name or user_id
        except Exception:  # noqa: BLE001 - Slack unreachable: the ID still says who
            return user_id

    def is_member(channel: str, user: str) -> bool:
        with runtime.storage.read() as session:
            if incidents.is_member(db_session=session, channel_id=channel, user_id=user):
                return True
        return runtime.incidents.is_channel_member(channel, user)

    def page(template: str, user: str, status: int = 200, **context: Any) -> Response:
        tz = people.tz(user)
        html = render(template, user=user, user_name=name(user), tz=tz, csrf=csrf_value(), **context)
        return Response(html, status=status, mimetype="text/html")

    def incident_for(user: str, number: int) -> Incident:
        with runtime.storage.read() as session:
            found = session.get(Incident, number)
        if found is None or not visible_to(user, found, is_member):
            abort(404)  # not shown and not there look the same
        return found

    @web.get("/")
    @signin.page
    def home(user: str) -> Response:
        tz = people.tz(user)
        with runtime.storage.read() as session:
            open_incidents = incidents.list_open_incidents(db_session=session)
        shown = [{"id": i.id, "severity": i.severity, "title": plain(i.title), "status": i.status,
                  "commander": name(i.commander), "declared": local(i.declared_at, tz)}
                 for i in open_incidents if visible_to(user, i, is_member)]
        rotations = [runtime.rotations[key] for key in sorted(runtime.rotations)]
        found = oncall.cached_adjustments(runtime.storage).of(rotations) if rotations else {}
        now = runtime.clock.now()
        on_call = []
        for rotation in rotations:
            shift = oncall.shift_at(rotation, now, found[rotation.name])
            on_call.append({"name": rotation.name, "who": name(people.resolve(shift.user)), "region": shift.region,
                            "until": local(shift.end, tz)})
        return page("index.html", user, incidents=shown, rotations=on_call)

    @web.get("/incidents/<int(max=2147483647):number>")
    @signin.page
    def incident_page(user: str, number: int) -> Response:
        incident = incident_for(user, number)
        tz = people.tz(user)
        with runtime.storage.read() as session:
            entries = incidents.timeline(db_session=session, incident=incident)
            paged = pages_of(db_session=session, incident=incident)
            has_postmortem = postmortems.latest_draft(db_session=session, incident_id=number) is not None
        shown = {"id": incident.id, "severity": incident.severity, "title": plain(incident.title),
                 "status": incident.status, "commander": name(incident.commander),
                 "declarer": name(incident.declarer), "declared": local(incident.declared_at, tz),
                 "resolved": local(incident.resolved_at, tz), "rotation": incident.rotation,
                 "summary": plain(incident.summary or "")}
        timeline = [{"at": local(e.at, tz), "actor": name(e.actor), "text": plain(e.text)} for e in entries]
        pages = [{"who": name(p.user), "rotation": p.rotation, "paged": local(p.paged_at, tz),
                  "answer": _answer(p, tz, name)} for p in paged]
        return page("incident.html", user, incident=shown, timeline=timeline, pages=pages,
                    has_postmortem=has_postmortem)

    @web.get("/postmortems/<int(max=2147483647):number>")
    @signin.page
    def postmortem_page(user: str, number: int) -> Response:
        incident_for(user, number)
        with runtime.storage.read() as session:
            draft = postmortems.latest_draft(db_session=session, incident_id=number)
        if draft is None:
            abort(404)
        body = Markup(render_markdown(draft.markdown))
        response = page("postmortem.html", user, number=number, version=draft.version, body=body)
        response.headers["ETag"] = f'"inc-{number}-v{draft.version}"'
        return response

    @web.get("/rotations/<name_>")
    @signin.page
    def rotation_page(user: str, name_: str) -> Response:
        try:
            rotation = oncall.find_rotation(runtime.rotations, name_)
        except OncallError:
            abort(404)
        tz = people.tz(user)
        start = runtime.clock.now()
        with runtime.storage.read() as session:
            shifts = oncall.shifts(db_session=session, rotation=rotation, start=start, days=ROTATION_DAYS)
        rows = []
        for shift in shifts:
            tag = f"covering for {name(people.resolve(shift.covering_for))}" if shift.covering_for else (
                "override" if shift.is_override else "")
            rows.append({"start": local(max(shift.start, start), tz), "end": local(shift.end, tz),
                         "who": name(people.resolve(shift.user)), "region": shift.region, "tag": tag})
        return page("rotation.html", user, name=rotation.name, description=rotation.description,
                    days=ROTATION_DAYS, shifts=rows)


def _answer(p: Any, tz: str, name: Any) -> str:
    if p.acknowledged_at:
        return f"acknowledged {local(p.acknowledged_at, tz)}"
    if p.escalated_at:
        return f"escalated {local(p.escalated_at, tz)}"
    if p.resolved_at:
        return "alert resolved first"
    return "not answered yet"

ROUTE_INSTALLERS.append(install)
