"""Status nudges that back off. An open SEV1 is nudged STATUS_REMINDER_MINUTES after its last
update, a SEV2 after twice that; each unanswered nudge doubles the interval (at most 4 hours);
after five, one last message to the commander and INCIDENTS_CHANNEL (the incident's channel
when it is private), then nothing until the next update (`/incident update`, a status change
or a note)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.config import Settings
from bot.jobs.scheduler import cancel_job, request_job
from bot.models import Incident
from bot.outbox import enqueue
from bot.text import safe, user

REMINDER = "incident.reminder"
MAX_INTERVAL = timedelta(hours=4)
NUDGES = 5  # unanswered nudges before the last message


def first_interval(severity: int, settings: Settings) -> timedelta | None:
    """How long a SEV1 or SEV2 may go without an update; None: never nudged."""
    factor = {1: 1, 2: 2}.get(severity)
    return None if factor is None else timedelta(minutes=settings.status_reminder_minutes * factor)


def interval_after(nudges: int, first: timedelta) -> timedelta:
    """The wait before the next nudge once `nudges` went unanswered."""
    return min(first * int(2 ** nudges), MAX_INTERVAL)


class Nudges:
    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings

    def schedule(self, session: Session, incident: Incident, *, now: datetime, updated: bool = False,
                 declared: bool = False) -> None:
        """(Re)plan the next nudge; `updated`: an update was just posted, so the count starts over;
        `declared`: the incident is new, so no nudge is planned yet."""
        if not declared:
            cancel_job(session, key=f"reminder:{incident.id}:", prefix=True)
        if updated:
            incident.nudges = 0
            session.add(incident)
        first = first_interval(incident.severity, self.settings)
        if first is None or incident.status == "resolved" or incident.nudges > NUDGES:
            return
        since = incident.last_update_at or incident.declared_at
        if incident.nudges == 0:
            run_at = since + first
        else:
            run_at = now + interval_after(incident.nudges, first)
        request_job(session, kind=REMINDER, key=f"reminder:{incident.id}:{incident.nudges}:{run_at.isoformat()}",
                    run_at=run_at, payload={"incident_id": incident.id, "nudge": incident.nudges,
                                            "since": since.isoformat()})

    def remind(self, session: Session, payload: dict[str, Any], now: datetime) -> None:
        """Job: the next nudge, or the last message after five unanswered ones."""
        incident = session.get(Incident, payload["incident_id"])
        first = first_interval(incident.severity, self.settings) if incident else None
        if incident is None or first is None or incident.status == "resolved":
            return
        since = incident.last_update_at or incident.declared_at
        if "since" not in payload:  # planned by a version that did not back off: plan it anew
            self.schedule(session, incident, now=now)
            return
        if payload["since"] != since.isoformat() or payload.get("nudge", 0) != incident.nudges:
            return  # an update or a severity change planned another one since
        minutes = int((now - since).total_seconds() // 60)
        if incident.nudges < NUDGES:
            text = (
                f":alarm_clock: {user(incident.commander)}, no status update for {minutes} minutes on this "
                f"SEV{incident.severity}. Post one with `/incident update TEXT` (stakeholders see it), "
                "`/incident note TEXT` or `/incident status ...`."
            )
            enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
        else:
            self._give_up(session, incident, minutes, now)
        incident.nudges += 1
        session.add(incident)
        self.schedule(session, incident, now=now)

    def _give_up(self, session: Session, incident: Incident, minutes: int, now: datetime) -> None:
        """One message to the commander and to the incidents channel; no nudges after it."""
        where = f"<#{incident.channel_id}>" if incident.channel_id else f"#{incident.id}"
        text = (
            f":mute: Incident #{incident.id} *{safe(incident.title)}* (SEV{incident.severity}, commander "
            f"{user(incident.commander)}) has had no status update for {minutes} minutes and {NUDGES} "
            f"reminders in {where}. No more reminders until the next `/incident update`."
        )
        enqueue(session, "slack.post", {"channel": incident.commander, "text": text}, now=now)
        channel = incident.channel_id if incident.private else self.settings.incidents_channel
        if channel:
            enqueue(session, "slack.post", {"channel": channel, "text": text}, now=now)
