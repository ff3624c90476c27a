"""The outbox task that uploads a postmortem draft to its incident's channel (and, on
resolve, broadcasts the resolution with a link to it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.clock import Clock
from bot.models import Incident
from bot.outbox import PermanentError, Waiting, enqueue
from bot.postmortem import service as postmortems
from bot.slack.effects import error_code
from bot.slack.people import People
from bot.storage import Storage
from bot.text import safe

log = logging.getLogger(__name__)
# Slack errors after which the upload can never succeed; the broadcast goes out without a link.
_FOR_GOOD = {"channel_not_found", "is_archived", "not_in_channel", "invalid_channel", "file_not_found"}


class PostmortemUpload:
    def __init__(self, *, storage: Storage, client: WebClient, clock: Clock, people: People,
                 wake: Callable[[], None], web_page: Callable[[int], str | None] = lambda _: None) -> None:
        self.web_page = web_page  # the draft's address on the web pages, when they are on
        self.storage = storage
        self.client = client
        self.clock = clock
        self.people = people
        self.wake = wake

    def _broadcast(self, incident_id: int, postmortem: str | None = None) -> None:
        payload: dict[str, Any] = {"incident_id": incident_id, "event": "resolved"}
        if postmortem:
            payload["postmortem"] = postmortem
        with self.storage.session() as session:
            enqueue(session, "incident.broadcast", payload, now=self.clock.now())

    def __call__(self, payload: dict[str, Any]) -> None:
        """Upload one draft version to the incident channel; on resolve, then broadcast it."""
        incident_id, version = payload["incident_id"], payload["version"]
        with self.storage.read() as session:
            incident = session.get(Incident, incident_id)
            draft = postmortems.get_draft(db_session=session, incident_id=incident_id, version=version)
        if incident is None or draft is None:
            raise PermanentError(f"incident {incident_id} has no postmortem version {version}")
        if incident.channel_id is None:
            raise Waiting(f"incident #{incident_id} has no channel yet")
        name = postmortems.file_name(incident.id)
        comment = (
            f":memo: Postmortem draft for incident #{incident.id} *{safe(incident.title)}* "
            f"(version {version}). Fill in the root cause and lessons; "
            "`/incident postmortem` drafts it again with the latest timeline."
        )
        page = self.web_page(incident.id)
        if page:
            comment += f" Read it on the web: <{page}|{name}>"
        try:
            response = self.client.files_upload_v2(
                channel=incident.channel_id, filename=name, content=draft.markdown.encode("utf-8"),
                title=f"INC-{incident.id} postmortem draft v{version}", initial_comment=comment,
            )
        except SlackApiError as exc:
            if error_code(exc) not in _FOR_GOOD:
                raise
            if payload.get("broadcast"):
                self._broadcast(incident.id)
            raise PermanentError(f"postmortem upload refused: {error_code(exc)}") from exc
        if payload.get("broadcast"):
            uploaded = response.get("file") or (response.get("files") or [{}])[0]
            link = page or uploaded.get("permalink")
            self._broadcast(incident.id, f"<{link}|{name}>" if link else name)
            self.wake()
        self._learn_people(incident)

    def _learn_people(self, incident: Incident) -> None:
        """Cache the names and zones of everyone the draft names, so the next draft (drafts are
        made inside a transaction, where Slack is not asked) and `report` show them."""
        with self.storage.read() as session:
            user_ids = postmortems.people_of(db_session=session, incident=incident)
        for user_id in sorted(user_ids):
            try:
                self.people.profile(user_id)  # asks Slack only when the cached one is a day old
            except Exception:  # the upload is done; a missing name must not repeat it
                log.warning("looking up %s failed", user_id, exc_info=True)
                return
