"""Postmortem drafts: drafted when an incident is resolved, drafted again on demand, and the
commander reminded while the draft stays a draft.

The draft is made and stored inside the transaction that resolves the incident (or runs
`/incident postmortem`), so a resolved incident always has one; its upload (which broadcasts
the resolution with a link) and the commander's reminder are queued in that same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.clock import Clock
from bot.config import Settings
from bot.incidents.service import IncidentError
from bot.jobs.scheduler import request_job
from bot.models import Incident
from bot.outbox import enqueue
from bot.postmortem import service as postmortems
from bot.postmortem import validate_templates
from bot.text import escape, safe, user

log = logging.getLogger(__name__)
UPLOAD = "postmortem.upload"
REMINDER = "postmortem.reminder"


class PostmortemFlows:
    def __init__(self, *, clock: Clock, settings: Settings) -> None:
        self.clock = clock
        self.settings = settings

    def check_templates(self) -> None:
        """Log template problems at start (drafts fall back to a plain layout meanwhile)."""
        for problem in validate_templates(self.settings.templates_dir):
            log.error("postmortem template problem (drafts fall back to a plain layout): %s", problem)

    def _draft(self, session: Session, incident: Incident, now: datetime) -> postmortems.Drafted:
        drafted = postmortems.draft_postmortem(
            db_session=session, incident=incident, templates_dir=self.settings.templates_dir, now=now,
            postmortems_dir=self.settings.postmortems_dir,
        )
        if drafted.template_error:
            text = (
                ":warning: The postmortem template is broken, so this draft uses the plain "
                f"layout: `{escape(drafted.template_error)[:500]}`. Fix the template, then "
                "run `/incident postmortem` to draft again."
            )
            enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
        return drafted

    def on_resolve(self, session: Session, incident: Incident) -> None:
        """Draft version N, queue its upload (which broadcasts the resolution with a link)
        and the commander's reminder. Whatever fails here, the incident stays resolved."""
        now = self.clock.now()
        try:
            with session.begin_nested():  # a failure rolls back the draft, not the resolve
                drafted = self._draft(session, incident, now)
        except Exception:
            log.exception("drafting the postmortem of incident %s failed", incident.id)
            enqueue(session, "incident.post", {
                "incident_id": incident.id,
                "text": ":warning: I could not draft the postmortem. Try `/incident postmortem`.",
            }, now=now)
            enqueue(session, "incident.broadcast", {"incident_id": incident.id, "event": "resolved"}, now=now)
            return
        enqueue(session, UPLOAD, {"incident_id": incident.id, "version": drafted.draft.version, "broadcast": True},
                now=now)
        assert incident.resolved_at is not None
        zone = postmortems.commander_zone(db_session=session, incident=incident)
        request_job(session, kind=REMINDER, key=f"postmortem-reminder:{incident.id}",
                    run_at=postmortems.reminder_due(incident.resolved_at, zone), payload={"incident_id": incident.id})

    def redraft(self, session: Session, incident: Incident, *, mark: str | None, now: datetime) -> str:
        """`/incident postmortem`: draft again from what the bot knows now, and upload it;
        `/incident postmortem reviewed|final` marks the latest draft, which ends the reminders."""
        if mark:
            try:
                draft = postmortems.set_draft_status(db_session=session, incident_id=incident.id, status=mark)
            except postmortems.PostmortemNotFound as exc:
                raise IncidentError(str(exc)) from exc
            return f"Postmortem version {draft.version} of incident #{incident.id} is now marked {mark}."
        drafted = self._draft(session, incident, now)
        version = drafted.draft.version
        enqueue(session, UPLOAD, {"incident_id": incident.id, "version": version, "broadcast": False}, now=now)
        reply = (
            f"Drafted version {version} of the postmortem for incident #{incident.id}; "
            f"`{postmortems.file_name(incident.id)}` is being uploaded to this channel."
        )
        if drafted.template_error:
            reply += " The template is broken, so it uses the plain layout (details in the channel)."
        return reply

    def remind(self, session: Session, payload: dict[str, Any]) -> None:
        """Job, two business days after resolution: DM the commander if the draft is still a draft."""
        incident = session.get(Incident, payload["incident_id"])
        if incident is None:
            return
        draft = postmortems.latest_draft(db_session=session, incident_id=incident.id)
        if draft is None or draft.status != postmortems.DRAFT:
            return
        where = f" in <#{incident.channel_id}>" if incident.channel_id else ""
        text = (
            f":memo: {user(incident.commander)}, the postmortem for incident #{incident.id} "
            f"*{safe(incident.title)}* is still a draft, two business days after it was resolved. "
            f"The latest version ({draft.version}) is{where} as `{postmortems.file_name(incident.id)}`: "
            "fill in the root cause, what went well and badly, and the lessons, then review it "
            "with the team."
        )
        enqueue(session, "slack.post", {"channel": incident.commander, "text": text}, now=self.clock.now())
