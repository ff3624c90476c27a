"""Postmortem drafts in Slack: drafted on resolve, uploaded to the channel, redrafted on demand.

The draft is made and stored inside the transaction that resolves the incident (or runs
`/incident postmortem`), so a resolved incident always has one; the upload, the resolved
broadcast that links it and the commander's reminder are queued in that same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot.incidents.service import IncidentError
from bot.jobs.scheduler import request_job
from bot.models import Incident
from bot.outbox import PermanentError, enqueue
from bot.postmortem import service as postmortems
from bot.postmortem import validate_templates
from bot.slack.effects import error_code
from bot.slack.people import People
from bot.slack.text import escape, safe, user

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
UPLOAD = "postmortem.upload"
REMINDER = "postmortem.reminder"
# Slack errors after which the upload can never succeed; the broadcast goes out without a link.
_FOR_GOOD = {
    "channel_not_found",
    "is_archived",
    "not_in_channel",
    "invalid_channel",
    "file_not_found",
}


class PostmortemFlows:
    """Drafting, uploading and reminding, bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def _enqueue(self, session: Session, kind: str, **payload: Any) -> None:
        enqueue(session, kind, payload, now=self.rt.clock.now())

    def _draft(self, session: Session, incident: Incident, now: datetime) -> postmortems.Drafted:
        settings = self.rt.settings
        drafted = postmortems.draft_postmortem(
            db_session=session,
            incident=incident,
            templates_dir=settings.templates_dir,
            now=now,
            postmortems_dir=settings.postmortems_dir,
        )
        if drafted.template_error:
            self._enqueue(
                session,
                "incident.post",
                incident_id=incident.id,
                text=(
                    ":warning: The postmortem template is broken, so this draft uses the plain "
                    f"layout: `{escape(drafted.template_error)[:500]}`. Fix the template, then "
                    "run `/incident postmortem` to draft again."
                ),
            )
        return drafted

    def on_resolve(self, session: Session, incident: Incident) -> None:
        """Draft version N, queue its upload (which broadcasts the resolution with a link)
        and the commander's reminder. Whatever fails here, the incident stays resolved."""
        now = self.rt.clock.now()
        try:
            with session.begin_nested():  # a failure rolls back the draft, not the resolve
                drafted = self._draft(session, incident, now)
        except Exception:
            log.exception("drafting the postmortem of incident %s failed", incident.id)
            self._enqueue(
                session,
                "incident.post",
                incident_id=incident.id,
                text=":warning: I could not draft the postmortem. Try `/incident postmortem`.",
            )
            self._enqueue(session, "incident.broadcast", incident_id=incident.id, event="resolved")
            return
        self._enqueue(
            session, UPLOAD, incident_id=incident.id, version=drafted.draft.version, broadcast=True
        )
        assert incident.resolved_at is not None
        zone = postmortems.commander_zone(db_session=session, incident=incident)
        request_job(
            session,
            kind=REMINDER,
            key=f"postmortem-reminder:{incident.id}",
            run_at=postmortems.reminder_due(incident.resolved_at, zone),
            payload={"incident_id": incident.id},
        )

    def redraft(
        self, session: Session, incident: Incident, command: Any, actor: str, now: datetime
    ) -> str:
        """`/incident postmortem`: draft again from what the bot knows now, and upload it;
        `/incident postmortem reviewed|final` marks the latest draft, which ends the reminders."""
        if getattr(command, "mark", None):
            try:
                draft = postmortems.set_draft_status(db_session=session, incident_id=incident.id, status=command.mark)
            except postmortems.PostmortemNotFound as exc:
                raise IncidentError(str(exc)) from exc
            return f"Postmortem version {draft.version} of incident #{incident.id} is now marked {command.mark}."
        drafted = self._draft(session, incident, now)
        version = drafted.draft.version
        self._enqueue(session, UPLOAD, incident_id=incident.id, version=version, broadcast=False)
        reply = (
            f"Drafted version {version} of the postmortem for incident #{incident.id}; "
            f"`{postmortems.file_name(incident.id)}` is being uploaded to this channel."
        )
        if drafted.template_error:
            reply += (
                " The template is broken, so it uses the plain layout (details in the channel)."
            )
        return reply

    def upload(self, payload: dict[str, Any]) -> None:
        """Upload one draft version to the incident channel; on resolve, then broadcast it."""
        incident_id, version = payload["incident_id"], payload["version"]
        with self.rt.storage.read() as session:
            incident = session.get(Incident, incident_id)
            draft = postmortems.get_draft(
                db_session=session, incident_id=incident_id, version=version
            )
        if incident is None or draft is None:
            raise PermanentError(f"incident {incident_id} has no postmortem version {version}")
        if incident.channel_id is None:
            raise RuntimeError(f"incident #{incident_id} has no channel yet")
        name = postmortems.file_name(incident.id)
        comment = (
            f":memo: Postmortem draft for incident #{incident.id} *{safe(incident.title)}* "
            f"(version {version}). Fill in the root cause and lessons; "
            "`/incident postmortem` drafts it again with the latest timeline."
        )
        try:
            response = self.rt.client.files_upload_v2(
                channel=incident.channel_id,
                filename=name,
                content=draft.markdown.encode("utf-8"),
                title=f"INC-{incident.id} postmortem draft v{version}",
                initial_comment=comment,
            )
        except SlackApiError as exc:
            if error_code(exc) not in _FOR_GOOD:
                raise
            if payload.get("broadcast"):
                with self.rt.storage.session() as session:
                    self._enqueue(
                        session, "incident.broadcast", incident_id=incident.id, event="resolved"
                    )
            raise PermanentError(f"postmortem upload refused: {error_code(exc)}") from exc
        if payload.get("broadcast"):
            uploaded = response.get("file") or (response.get("files") or [{}])[0]
            link = uploaded.get("permalink")
            with self.rt.storage.session() as session:
                self._enqueue(
                    session,
                    "incident.broadcast",
                    incident_id=incident.id,
                    event="resolved",
                    postmortem=f"<{link}|{name}>" if link else name,
                )
            self.rt.outbox.notify()
        self._learn_people(incident)

    def _learn_people(self, incident: Incident) -> None:
        """Cache the names and zones of everyone the draft names, so the next draft (drafts are
        made inside a transaction, where Slack is not asked) and `report` show them."""
        people = self.rt.extras.get("people")
        if people is None:
            return
        with self.rt.storage.read() as session:
            user_ids = postmortems.people_of(db_session=session, incident=incident)
        for user_id in sorted(user_ids):
            try:
                people.profile(user_id)  # asks Slack only when the cached one is a day old
            except Exception:  # the upload is done; a missing name must not repeat it
                log.warning("looking up %s failed", user_id, exc_info=True)
                return

    def remind(self, session: Session, payload: dict[str, Any]) -> None:
        """Two business days after resolution: DM the commander if the draft is still a draft."""
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
        self._enqueue(session, "slack.post", channel=incident.commander, text=text)


def install(runtime: Runtime) -> PostmortemFlows:
    """Register the upload outbox task, the reminder job and the incident hooks (idempotent).

    Every process that runs an outbox worker or the scheduler needs this, `clock` included.
    """
    flows = runtime.extras.get("postmortem_flows")
    if isinstance(flows, PostmortemFlows):
        return flows
    flows = PostmortemFlows(runtime)
    runtime.outbox.register(UPLOAD, flows.upload)
    runtime.scheduler.register(REMINDER, flows.remind)
    runtime.extras["on_resolve"] = flows.on_resolve
    runtime.extras["DraftPostmortem"] = flows.redraft
    runtime.extras["postmortem_flows"] = flows
    for problem in validate_templates(runtime.settings.templates_dir):  # caught at start
        log.error("postmortem template problem (drafts fall back to a plain layout): %s", problem)
    return flows


def register(app: App, runtime: Runtime, people: People) -> None:
    """Install the resolve hook, `/incident postmortem` and the upload outbox task."""
    install(runtime)
