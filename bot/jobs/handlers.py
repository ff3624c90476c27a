"""What each scheduled job does. Each runs inside the transaction that claimed it and queues
its Slack messages on the outbox, so a job's effects are committed exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from bot.jobs import handoffs
from bot.models import Incident
from bot.outbox import enqueue
from bot.slack.text import user

if TYPE_CHECKING:
    from bot.runtime import Runtime



def install(runtime: "Runtime") -> None:
    """Register the job handlers on the runtime's scheduler."""

    def remind(session: Session, payload: dict[str, Any]) -> None:
        """Nudge an open SEV1/SEV2 with no status update for STATUS_REMINDER_MINUTES; keep watching."""
        from bot.jobs.scheduler import request_job

        every = timedelta(minutes=runtime.settings.status_reminder_minutes)

        incident = session.get(Incident, payload["incident_id"])
        if incident is None or incident.status == "resolved" or incident.severity > 2:
            return
        now = runtime.clock.now()
        last = incident.last_update_at or incident.declared_at
        if now - last >= every:
            text = (
                f":alarm_clock: {user(incident.commander)}, no status update for "
                f"{int((now - last).total_seconds() // 60)} minutes on this SEV{incident.severity}. "
                f"Post one with `/incident note TEXT` or `/incident status ...`."
            )
            enqueue(session, "incident.post", {"incident_id": incident.id, "text": text}, now=now)
            next_at = now + every
        else:
            next_at = last + every
        request_job(
            session, kind="incident.reminder", key=f"reminder:{incident.id}:{next_at.isoformat()}",
            run_at=next_at, payload={"incident_id": incident.id},
        )

    runtime.scheduler.register("incident.reminder", remind)
    handoffs.install(runtime)
