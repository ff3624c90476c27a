"""Postmortem drafts from the database: facts gathered for an incident, drafts stored by version.

No Slack here. People are shown by the names cached in ``UserProfile`` (``@alice``), or by their
user ID when the bot never looked them up; nothing here calls Slack to find out.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from bot.incidents import service as incidents
from bot.incidents import workflow
from bot.incidents.commands import severity_label
from bot.incidents.paging import pages_of
from bot.models import ActionItem as ActionRow
from bot.models import Incident, Notification, PostmortemDraft, TimelineEntry, UserProfile
from bot.models import Page as PageRow
from bot.postmortem.facts import (
    ActionItem,
    NotificationFact,
    PageFact,
    PostmortemFacts,
    SeverityChange,
    TimelineItem,
)
from bot.postmortem.render import PostmortemError, render_fallback, render_postmortem
from bot.schedule.zones import UnknownZone, canonical_zone, get_zone, local_to_utc, utc_to_local

log = logging.getLogger(__name__)

DRAFT = "draft"
DRAFT_STATUSES = ("draft", "reviewed", "final")
REMINDER_BUSINESS_DAYS = 2
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
# "/incident resolve Rolled back 4.18. Impact: 12% of checkouts failed" -> summary, impact.
_IMPACT = re.compile(r"(?:^|(?<=[.!?\n]))\s*impact\s*:\s*", re.IGNORECASE)


class PostmortemNotFound(Exception):
    """There is no such incident, or it has no draft yet; the message says which."""


@dataclass(frozen=True)
class Drafted:
    """A stored draft, and what went wrong on the way that people should hear about."""

    draft: PostmortemDraft
    template_error: str | None = None  # the team's template is broken: a plain draft was made
    file_error: str | None = None  # POSTMORTEMS_DIR could not be written


def file_name(number: int) -> str:
    """``postmortem-inc-<n>.md``: the name of the upload and of the file in POSTMORTEMS_DIR."""
    return f"postmortem-inc-{number}.md"


def split_summary(text: str | None) -> tuple[str | None, str | None]:
    """The resolve text as (summary, impact): an ``Impact:`` part, when present, is the impact."""
    if not text or not text.strip():
        return None, None
    found = _IMPACT.search(text)
    if found is None:
        return text.strip(), None
    summary, impact = text[: found.start()].strip(), text[found.end() :].strip()
    return summary or None, impact or None


def _names(db_session: Session, user_ids: Iterable[str]) -> dict[str, str]:
    """Cached Slack names of these users (those never looked up are left out)."""
    wanted = sorted({u for u in user_ids if u and _USER_ID.fullmatch(u)})
    names: dict[str, str] = {}
    for start in range(0, len(wanted), 500):  # stay under SQL parameter limits
        chunk = wanted[start : start + 500]
        rows = db_session.exec(select(UserProfile).where(col(UserProfile.user_id).in_(chunk)))
        names.update({p.user_id: p.name for p in rows if p.name and p.name != p.user_id})
    return names


class _People:
    """Shows user IDs as ``@name`` and labels mentions in text, from the profile cache."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def person(self, value: str | None) -> str | None:
        if value is None:
            return None
        if _USER_ID.fullmatch(value):
            return "@" + self.names.get(value, value)
        return value  # an integration's name, e.g. "Alertmanager"

    def text(self, value: str) -> str:
        if "<@" not in value:
            return value
        return _MENTION.sub(
            lambda m: f"<@{m.group(1)}|{self.names.get(m.group(1), m.group(1))}>", value
        )


def commander_zone(*, db_session: Session, incident: Incident) -> str | None:
    """The commander's IANA time zone from the profile cache, or None when unknown or invalid."""
    profile = db_session.get(UserProfile, incident.commander) if incident.commander else None
    if profile is None or not profile.tz:
        return None
    try:
        return get_zone(profile.tz).zone
    except UnknownZone:
        return None


def _user_ids(
    incident: Incident,
    entries: list[TimelineEntry],
    pages: list[PageRow],
    actions: list[ActionRow],
    roles: dict[str, str],
) -> set[str]:
    ids: set[str] = {incident.commander, incident.declarer}
    ids.update(e.actor for e in entries)
    ids.update(m for e in entries if "<@" in e.text for m in _MENTION.findall(e.text))
    ids.update(p.user for p in pages)
    ids.update(p.acknowledged_by for p in pages if p.acknowledged_by)
    ids.update(a.owner for a in actions if a.owner)
    ids.update(a.created_by for a in actions)
    ids.update(roles.values())
    return {i for i in ids if _USER_ID.fullmatch(i)}


def people_of(*, db_session: Session, incident: Incident) -> set[str]:
    """The Slack user IDs a draft of ``incident`` names (to look their profiles up first)."""
    entries = incidents.timeline(db_session=db_session, incident=incident)
    pages = pages_of(db_session=db_session, incident=incident)
    actions = incidents.action_items(db_session=db_session, incident=incident)
    roles = workflow.roles_of(db_session=db_session, incident=incident)
    return _user_ids(incident, entries, pages, actions, roles)


def gather_facts(*, db_session: Session, incident: Incident) -> PostmortemFacts:
    """Everything the bot recorded about ``incident``, as the facts a draft is rendered from."""
    entries = incidents.timeline(db_session=db_session, incident=incident)
    pages = pages_of(db_session=db_session, incident=incident)
    sent: dict[int, list[Notification]] = {}
    if pages:
        for n in db_session.exec(select(Notification).where(col(Notification.page_id).in_([p.id for p in pages]))
                                 .order_by(col(Notification.id))).all():
            if n.page_id is not None:
                sent.setdefault(n.page_id, []).append(n)
    actions = incidents.action_items(db_session=db_session, incident=incident)
    ids = _user_ids(incident, entries, pages, actions, workflow.roles_of(db_session=db_session, incident=incident))
    people = _People(_names(db_session, ids))
    show = people.person

    history = [
        SeverityChange(e.at, show(e.actor) or "", e.old if e.kind == "severity" else None, e.new)
        for e in entries
        if e.kind in ("declared", "severity") and e.new
    ]
    alerts = [e.at for e in entries if e.kind == "alert"]
    detected = min([incident.declared_at, *alerts])
    summary, impact = split_summary(incident.summary)
    participants = [e.actor for e in entries if _USER_ID.fullmatch(e.actor)]
    return PostmortemFacts(
        number=incident.id,
        title=incident.title,
        severity=severity_label(incident.severity),
        status=incident.status,
        channel_name=incident.channel_name,
        commander=show(incident.commander),
        declarer=show(incident.declarer) or "",
        roles={role: show(who) or "" for role, who in workflow.roles_of(db_session=db_session, incident=incident).items()},
        declared_at=incident.declared_at,
        detected_at=detected,
        acknowledged_at=incident.acknowledged_at,
        mitigated_at=incident.mitigated_at,
        resolved_at=incident.resolved_at,
        summary=summary,
        impact=impact,
        commander_tz=commander_zone(db_session=db_session, incident=incident),
        severity_history=tuple(history),
        timeline=tuple(_timeline_item(e, people) for e in entries),
        participants=tuple(dict.fromkeys(show(p) or "" for p in participants)),
        pages=tuple(
            PageFact(
                user=show(p.user) or "",
                rotation=p.rotation,
                paged_at=p.paged_at,
                acknowledged_at=p.acknowledged_at,
                acknowledged_by=show(p.acknowledged_by),
                escalated_at=p.escalated_at,
                level=p.level + 1,  # stored 0-based; a postmortem counts responders from 1
                acknowledged_via=p.acknowledged_via,
                notifications=tuple(
                    NotificationFact(n.contact, n.sent_at or n.due_at,
                                     "pending" if n.status in ("scheduled", "sending") else n.status)
                    for n in sent.get(p.id or 0, [])
                ),
            )
            for p in pages
        ),
        action_items=tuple(
            ActionItem(people.text(a.text), show(a.owner), a.created_at, show(a.created_by) or "", number=a.id,
                       status=a.status, due=a.due)
            for a in actions
        ),
    )


def _timeline_item(entry: TimelineEntry, people: _People) -> TimelineItem:
    return TimelineItem(
        at=entry.at,
        actor=people.person(entry.actor) or "",
        kind=entry.kind,
        text=people.text(entry.text),
        permalink=entry.permalink,
    )


def latest_draft(*, db_session: Session, incident_id: int) -> PostmortemDraft | None:
    """The newest stored draft of the incident, if any."""
    return db_session.exec(
        select(PostmortemDraft)
        .where(PostmortemDraft.incident_id == incident_id)
        .order_by(col(PostmortemDraft.version).desc())
        .limit(1)
    ).first()


def get_draft(*, db_session: Session, incident_id: int, version: int) -> PostmortemDraft | None:
    """One stored version of the incident's draft."""
    return db_session.exec(
        select(PostmortemDraft).where(
            PostmortemDraft.incident_id == incident_id, PostmortemDraft.version == version
        )
    ).first()


def store_draft(
    *, db_session: Session, incident_id: int, markdown: str, now: datetime
) -> PostmortemDraft:
    """Keep ``markdown`` as the incident's next draft version (1, 2, 3...)."""
    latest = latest_draft(db_session=db_session, incident_id=incident_id)
    draft = PostmortemDraft(
        incident_id=incident_id,
        version=(latest.version + 1) if latest else 1,
        markdown=markdown,
        created_at=now,
        status=DRAFT,
    )
    db_session.add(draft)
    db_session.flush()
    return draft


def set_draft_status(*, db_session: Session, incident_id: int, status: str) -> PostmortemDraft:
    """Mark the latest draft (e.g. ``reviewed``); a draft no longer ``draft`` gets no reminder."""
    if status not in DRAFT_STATUSES:
        raise PostmortemNotFound(f"{status!r} is not a draft status ({', '.join(DRAFT_STATUSES)})")
    draft = latest_draft(db_session=db_session, incident_id=incident_id)
    if draft is None:
        raise PostmortemNotFound(f"Incident #{incident_id} has no postmortem draft yet.")
    draft.status = status
    db_session.add(draft)
    return draft


def write_draft_file(directory: str | os.PathLike[str], number: int, markdown: str) -> Path:
    """Write the draft to ``directory/postmortem-inc-<n>.md`` (replaced whole, never half-written)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name(number)
    partial = folder / f".{file_name(number)}.{os.getpid()}.tmp"
    partial.write_text(markdown, encoding="utf-8")
    os.replace(partial, target)
    return target


def draft_postmortem(
    *,
    db_session: Session,
    incident: Incident,
    templates_dir: str | os.PathLike[str],
    now: datetime,
    postmortems_dir: str | os.PathLike[str] | None = None,
) -> Drafted:
    """Render the incident's draft from the team's template and store it as the next version.

    A broken template never costs the draft: it is rendered plain and the error is returned.
    With ``postmortems_dir`` the draft is also written there as ``postmortem-inc-<n>.md``.
    """
    facts = gather_facts(db_session=db_session, incident=incident)
    template_error = None
    try:
        markdown = render_postmortem(facts, templates_dir=templates_dir)
    except PostmortemError as exc:
        template_error = str(exc)
        log.error("postmortem template failed for incident %s: %s", incident.id, exc)
        markdown = render_fallback(facts, reason=template_error)
    draft = store_draft(db_session=db_session, incident_id=incident.id, markdown=markdown, now=now)
    file_error = None
    if postmortems_dir is not None:
        try:
            write_draft_file(postmortems_dir, incident.id, markdown)
        except OSError as exc:
            file_error = f"could not write {file_name(incident.id)} to {postmortems_dir}: {exc}"
            log.error("%s", file_error)
    return Drafted(draft=draft, template_error=template_error, file_error=file_error)


def _add_business_days(day: date, count: int) -> date:
    """``count`` Monday-to-Friday days after ``day`` (a weekend day counts from the Monday)."""
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def reminder_due(resolved_at: datetime, zone: str | None) -> datetime:
    """The UTC instant 2 business days after ``resolved_at`` at the same local time in ``zone``.

    Counted in the zone's calendar (Saturdays and Sundays skipped), so a Friday 10:00 resolve is
    reminded on Tuesday at 10:00 local, whatever DST did in between; an unknown zone means UTC.
    """
    try:
        name = canonical_zone(zone) if zone else "UTC"
    except UnknownZone:
        name = "UTC"
    local = utc_to_local(name, resolved_at)
    day = _add_business_days(local.date(), REMINDER_BUSINESS_DAYS)
    return local_to_utc(name, datetime.combine(day, local.time()))
