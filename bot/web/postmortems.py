"""GET /postmortems/<n>: the latest draft as an HTML page for reviewers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from flask import Flask, Response, jsonify

from bot.models import Incident
from bot.postmortem import render_html
from bot.postmortem import service as postmortems
from bot.web.app import ROUTE_INSTALLERS

if TYPE_CHECKING:
    from bot.runtime import Runtime

# The page never runs anything: no scripts, no frames, no outside resources, only inline styles.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class PageCache:
    """Rendered pages by (incident, version): a stored version never changes, so it is drawn once."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._pages: OrderedDict[tuple[int, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> str | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: tuple[int, int], page: str) -> None:
        with self._lock:
            self._pages[key] = page
            self._pages.move_to_end(key)
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)


def install(runtime: Runtime, web: Flask) -> None:
    """Add GET /postmortems/<n> to the web app."""
    cache = PageCache()

    @web.get("/postmortems/<int(max=2147483647):number>")  # larger overflows the id column
    def postmortem_page(number: int):  # type: ignore[no-untyped-def]
        with runtime.storage.read() as session:
            draft = postmortems.latest_draft(db_session=session, incident_id=number)
            incident = session.get(Incident, number)
        if draft is None or incident is None or incident.private:  # a private one stays in its channel
            error = f"incident #{number} has no postmortem draft"
            return jsonify({"ok": False, "error": error}), 404
        key = (number, draft.version)
        page = cache.get(key)
        if page is None:
            title = f"INC-{number} postmortem, version {draft.version}"
            page = render_html(draft.markdown, title=title)
            cache.put(key, page)
        headers = {**HEADERS, "ETag": f'"inc-{number}-v{draft.version}"'}
        return Response(page, status=200, mimetype="text/html", headers=headers)


ROUTE_INSTALLERS.append(install)
