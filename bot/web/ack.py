"""GET|POST /ack/<token>: the acknowledgement link sent with every page outside Slack.

GET shows what would be acknowledged and one button, and changes nothing (mail scanners and
link previews open links); only the button's POST acknowledges, as the Slack button does. An
unknown or forged token is 404, a used one or one whose page has ended 410, a POST without the
form's CSRF value 403: each a short plain page that changes nothing. The token is the only
credential, so the page shows the incident's number, severity and title, nothing more."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from flask import Flask, Response, request

from bot.incidents.commands import severity_label
from bot.incidents.service import IncidentError
from bot.models import AckLink, Incident, Page
from bot.notify import links
from bot.notify.flows import plain
from bot.web.app import ROUTE_INSTALLERS

if TYPE_CHECKING:
    from sqlmodel import Session

    from bot.runtime import Runtime

# Nothing runs on these pages: no scripts, no frames, no outside resources; the form posts here only.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token is in the address: never pass it on
    "Cache-Control": "no-store",
}
STYLE = "body{font-family:system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em}button{font-size:1.2em}"


def page(title: str, body: str, status: int) -> Response:
    text = (f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width'><meta name=robots content=noindex><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
    return Response(text, status=status, mimetype="text/html", headers=HEADERS)


def not_found() -> Response:
    return page("Link not valid", "<p>This acknowledgement link is not valid.</p>", 404)


def gone() -> Response:
    return page("Link no longer works",
                "<p>This page was already answered, escalated or resolved; the link no longer works.</p>", 410)


def what(session: Session, link: AckLink) -> str:
    """`Incident #4 (SEV1): Checkout down`, or the alert of a page without an incident."""
    stored = session.get(Page, link.page_id)
    incident = session.get(Incident, stored.incident_id) if stored and stored.incident_id else None
    if incident is not None:
        return f"Incident #{incident.id} ({severity_label(incident.severity)}): {plain(incident.title)}"
    return f"Alert: {plain(stored.reason or 'a page') if stored else 'a page'}"


def install(runtime: Runtime, web: Flask) -> None:
    """Add GET and POST /ack/<token> to the web app."""

    def usable(session: Session, token: str) -> tuple[AckLink | None, bool]:
        """(the link or None when unknown or forged, whether it still works)."""
        link = links.find(session, token)
        if link is None:
            return None, False
        stored = session.get(Page, link.page_id)
        return link, link.used_at is None and stored is not None and links.page_is_open(session, stored)

    @web.get("/ack/<token>")
    def show_link(token: str) -> Response:
        with runtime.storage.read() as session:
            link, works = usable(session, token)
            if link is None:
                return not_found()
            if not works:
                return gone()
            summary = what(session, link)
            csrf = links.csrf_for(session, token)
        form = (f"<p>{html.escape(summary)}</p><p>You were paged for this. Acknowledge to tell the others you have "
                f"it; the escalation stops.</p><form method=post action='/ack/{html.escape(token)}'>"
                f"<input type=hidden name=csrf value='{html.escape(csrf)}'><button type=submit>Acknowledge</button>"
                "</form>")
        return page("Acknowledge the page", form, 200)

    @web.post("/ack/<token>")
    def acknowledge_link(token: str) -> Response:
        with runtime.storage.read() as session:
            link = links.find(session, token)
            if link is None:
                return not_found()
            if not links.csrf_holds(session, token, request.form.get("csrf", "")):
                return page("Not acknowledged", "<p>Open the link again and press the button.</p>", 403)
            _, works = usable(session, token)
            if not works:
                return gone()
            page_id, person, summary = link.page_id, link.user, what(session, link)

        def use(session: Session, _page: Page) -> None:
            stored = session.get(AckLink, page_id)
            assert stored is not None
            if stored.used_at is not None:
                raise IncidentError("used")
            stored.used_at = runtime.clock.now()
            session.add(stored)

        try:
            runtime.paging.acknowledge(page_id=page_id, actor=person, via="link", before=use)
        except IncidentError:  # answered meanwhile (a press in Slack, a second tab)
            return gone()
        return page("Acknowledged", f"<p>{html.escape(summary)}</p><p>Acknowledged. Thank you!</p>", 200)


ROUTE_INSTALLERS.append(install)
