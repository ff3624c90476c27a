"""Pages and escalation chains: service functions, no Slack."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from bot.incidents.service import IncidentError, add_entry
from bot.models import Incident, Page


def page_person(
    *, db_session: Session, user: str, paged_by: str, now: datetime, incident: Incident | None = None,
    rotation: str | None = None, level: int = 0, reason: str | None = None, dedup_key: str | None = None,
) -> Page:
    """Record a page (and its timeline entry when it belongs to an incident)."""
    if incident is not None and incident.status == "resolved":
        raise IncidentError(f"Incident #{incident.id} is resolved; nobody needs paging for it.")
    page = Page(
        incident_id=incident.id if incident else None, user=user, rotation=rotation, level=level,
        paged_by=paged_by, reason=reason, dedup_key=dedup_key, paged_at=now,
    )
    db_session.add(page)
    db_session.flush()
    if incident is not None:
        via = f" (on call for {rotation})" if rotation else ""
        step = f", escalation step {level}" if level else ""
        add_entry(db_session=db_session, incident=incident, at=now, actor=paged_by, kind="page",
                  text=f"Paged <@{user}>{via}{step}", new=user)
    return page


def get_page(*, db_session: Session, page_id: int) -> Page:
    page = db_session.get(Page, page_id)
    if page is None:
        raise IncidentError(f"There is no page #{page_id}.")
    return page


def acknowledge_page(*, db_session: Session, page: Page, actor: str, now: datetime) -> Page:
    """The paged person is on it; a second press says so and changes nothing."""
    if page.acknowledged_at is not None:
        raise IncidentError(f"Already acknowledged by <@{page.acknowledged_by}>.")
    if page.escalated_at is not None:
        raise IncidentError("This page was already escalated to the next responder.")
    if page.resolved_at is not None:
        raise IncidentError("This alert resolved by itself; there is nothing left to acknowledge.")
    page.acknowledged_at, page.acknowledged_by = now, actor
    db_session.add(page)
    if page.incident_id is not None:
        incident = db_session.get(Incident, page.incident_id)
        assert incident is not None
        if incident.acknowledged_at is None:
            incident.acknowledged_at = now
            db_session.add(incident)
        add_entry(db_session=db_session, incident=incident, at=now, actor=actor, kind="acknowledge",
                  text=f"<@{actor}> acknowledged the page")
    return page


def mark_escalated(*, db_session: Session, page: Page, actor: str, now: datetime) -> bool:
    """Close a page as escalated; False when it was acknowledged, escalated or resolved already."""
    if page.acknowledged_at is not None or page.escalated_at is not None or page.resolved_at is not None:
        return False
    if page.incident_id is not None:
        incident = db_session.get(Incident, page.incident_id)
        if incident is not None and incident.status == "resolved":
            return False
    page.escalated_at, page.escalated_by = now, actor
    db_session.add(page)
    return True


def pages_of(*, db_session: Session, incident: Incident) -> list[Page]:
    return list(db_session.exec(select(Page).where(Page.incident_id == incident.id).order_by(col(Page.id))).all())


def resolve_page(*, db_session: Session, page: Page, now: datetime) -> None:
    """The alert behind an unanswered page resolved by itself: the page needs no answer now."""
    page.resolved_at = now
    db_session.add(page)


def open_pages(*, db_session: Session, incident: Incident) -> list[Page]:
    """Pages still waiting for an answer."""
    return [p for p in pages_of(db_session=db_session, incident=incident) if p.acknowledged_at is None and p.escalated_at is None]
