"""Follow-ups: action items with an owner, an optional due date and a status. The owner is
reminded on the due date at 10:00 in their own time zone (a one-off job at that UTC instant);
with GITHUB_REPO set, each item is also a GitHub issue (outbox tasks, bot.github)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlmodel import Session, col, select

from bot.incidents.service import IncidentError, add_entry, check_length
from bot.jobs.scheduler import cancel_job, request_job
from bot.models import ActionItem, Incident
from bot.outbox import enqueue
from bot.schedule.zones import local_to_utc
from bot.text import safe, user

REMIND = "action.remind"
GITHUB_OPEN = "github.issue.open"
GITHUB_CLOSE = "github.issue.close"
REMIND_AT = time(10, 0)  # on the due date, in the owner's zone


def reminder_instant(due: date, zone: str) -> datetime:
    """10:00 on the due date in that zone, as UTC."""
    return local_to_utc(zone, datetime.combine(due, REMIND_AT))


def add_item(
    *, db_session: Session, incident: Incident, text: str, owner: str | None, due: date | None, actor: str,
    now: datetime,
) -> ActionItem:
    """A follow-up, open, on the timeline; its number is the item's id."""
    check_length(text, what="action item")
    item = ActionItem(incident_id=incident.id, text=text, owner=owner, created_by=actor, created_at=now, due=due)
    db_session.add(item)
    db_session.flush()
    details = "".join([f" (owner <@{owner}>)" if owner else "", f" due {due.isoformat()}" if due else ""])
    add_entry(db_session=db_session, incident=incident, at=now, actor=actor, kind="action",
              text=f"Action item {item.id}: {text}{details}")
    return item


def complete_item(*, db_session: Session, incident: Incident, number: int, actor: str, now: datetime) -> ActionItem:
    """Mark an item of this incident done; IncidentError when there is no such open item."""
    item = db_session.get(ActionItem, number)
    if item is None or item.incident_id != incident.id:
        raise IncidentError(f"Incident #{incident.id} has no action item {number}; `/incident timeline` lists them.")
    if item.status == "done":
        raise IncidentError(f"Action item {number} is already done.")
    item.status, item.done_at = "done", now
    db_session.add(item)
    add_entry(db_session=db_session, incident=incident, at=now, actor=actor, kind="action",
              text=f"Action item {item.id} done: {item.text}")
    return item


def open_items_of(*, db_session: Session, owner: str) -> list[ActionItem]:
    """Someone's open follow-ups across incidents, earliest due first (undated last)."""
    items = db_session.exec(
        select(ActionItem).where(ActionItem.owner == owner, ActionItem.status == "open").order_by(col(ActionItem.id))
    ).all()
    return sorted(items, key=lambda i: (i.due is None, i.due or date.max, i.id or 0))


class Followups:
    """The flows of `/incident action`, `/incident action done N` and the due-date reminder."""

    def __init__(self, *, zone_of: Any, github: bool) -> None:
        self.zone_of = zone_of  # user ID -> IANA zone (the people file's, else Slack's)
        self.github = github  # GITHUB_TOKEN and GITHUB_REPO are set

    def add(self, session: Session, incident: Incident, *, text: str, owner: str | None, due: date | None,
            actor: str, now: datetime) -> str:
        item = add_item(db_session=session, incident=incident, text=text, owner=owner, due=due, actor=actor, now=now)
        if owner and due:
            run_at = reminder_instant(due, self.zone_of(owner))
            if run_at > now:
                request_job(session, kind=REMIND, key=f"action:{item.id}:{run_at.isoformat()}", run_at=run_at,
                            payload={"item_id": item.id})
        if self.github:
            enqueue(session, GITHUB_OPEN, {"item_id": item.id}, now=now)
        owner_text = f" (owner {user(owner)})" if owner else ""
        due_text = f", due {due.isoformat()}" if due else ""
        enqueue(session, "incident.post", {"incident_id": incident.id, "text": (
            f":white_check_mark: Action item {item.id}{owner_text}{due_text}: {safe(text)}")}, now=now)
        return f"Action item {item.id} added to the postmortem. `/incident action done {item.id}` when it is done."

    def done(self, session: Session, incident: Incident, *, number: int, actor: str, now: datetime) -> str:
        item = complete_item(db_session=session, incident=incident, number=number, actor=actor, now=now)
        cancel_job(session, key=f"action:{item.id}:", prefix=True)
        if self.github:
            enqueue(session, GITHUB_CLOSE, {"item_id": item.id}, now=now)
        enqueue(session, "incident.post", {"incident_id": incident.id, "text": (
            f":ballot_box_with_check: {user(actor)} marked action item {item.id} done: {safe(item.text)}")}, now=now)
        return f"Action item {item.id} is done."

    def remind(self, session: Session, payload: dict[str, Any], now: datetime) -> None:
        """Job: DM the owner of an open item on its due date."""
        item = session.get(ActionItem, payload["item_id"])
        if item is None or item.status != "open" or not item.owner:
            return
        incident = session.get(Incident, item.incident_id)
        where = f" of incident #{item.incident_id}" + (f" (<#{incident.channel_id}>)" if incident and incident.channel_id else "")
        enqueue(session, "slack.post", {"channel": item.owner, "text": (
            f":spiral_calendar_pad: Action item {item.id}{where} is due today: {safe(item.text)}\n"
            f"Mark it done with `/incident action done {item.id}` in the incident's channel; "
            "`/oncall followups` lists all of yours.")}, now=now)


def followups_text(items: list[ActionItem], incidents: dict[int, Incident]) -> str:
    """`/oncall followups`: one line per open item."""
    if not items:
        return ":sunny: You have no open action items."
    lines = [f"*Your open action items* ({len(items)})"]
    for item in items:
        incident = incidents.get(item.incident_id)
        where = f"<#{incident.channel_id}>" if incident and incident.channel_id else f"incident #{item.incident_id}"
        due = f" · due {item.due.isoformat()}" if item.due else ""
        issue = f" · <{item.issue_url}|issue>" if item.issue_url else ""
        lines.append(f"• *{item.id}* {safe(item.text)[:200]} · {where}{due}{issue}")
    return "\n".join(lines)
