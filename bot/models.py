"""SQLModel tables. Every datetime is stored as UTC and comes back aware."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Optional

from sqlalchemy import Column, DateTime, Index, Integer, Text, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):  # type: ignore[type-arg]
    """Stores aware datetimes as naive UTC and returns them aware (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def _when(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Counter(SQLModel, table=True):
    """Named gap-free counters (incident numbers)."""

    name: str = Field(primary_key=True)
    value: int = 0


class Incident(SQLModel, table=True):
    id: int = Field(primary_key=True)  # the incident number, gap-free
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: Optional[str] = Field(default=None, sa_column=Column(Text))
    severity: int = 3
    status: str = Field(default="investigating", index=True)
    commander: str
    declarer: str
    rotation: Optional[str] = None
    channel_id: Optional[str] = Field(default=None, index=True)
    channel_name: Optional[str] = None
    summary_ts: Optional[str] = None
    declared_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    acknowledged_at: Optional[datetime] = _when()
    mitigated_at: Optional[datetime] = _when()
    resolved_at: Optional[datetime] = _when()
    last_update_at: Optional[datetime] = _when()
    summary: Optional[str] = Field(default=None, sa_column=Column(Text))
    dedup_key: Optional[str] = Field(default=None, index=True)
    title_key: Optional[str] = Field(default=None, sa_column=Column(Text))  # the duplicate guard's form of the title
    private: bool = False  # a private channel; nothing is posted outside it
    broadcast_ts: Optional[str] = None  # the declaration's message in INCIDENTS_CHANNEL (updates reply to it)
    nudges: int = 0  # status nudges since the last update


# Compared byte by byte on PostgreSQL too, so a range of suffixes is exactly those with a prefix.
KEY_TEXT = Text().with_variant(Text(collation="C"), "postgresql")


class IncidentKeySuffix(SQLModel, table=True):
    """Each ending of an incident's title_key that starts at a word, with a space after it, and
    the whole key once more after an "=" (bot.incidents.service.key_suffixes), so the duplicate
    guard looks titles up by index instead of reading every open incident: those containing a
    new key by a range (`"full on "` starts `"full on db 3 "`), those the new key contains by
    their whole key among the runs of its words."""

    suffix: str = Field(sa_column=Column(KEY_TEXT, primary_key=True))
    # indexed too: each declaration drops the suffixes of incidents older than the guard's window
    incident_id: int = Field(sa_column=Column(Integer, primary_key=True, index=True))


class IncidentRole(SQLModel, table=True):
    """Who holds a role (INCIDENT_ROLES: comms, scribe, ops...) in an incident."""

    incident_id: int = Field(foreign_key="incident.id", primary_key=True)
    role: str = Field(primary_key=True)
    user: str


class TimelineEntry(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("incident_id", "source_key"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor: str
    kind: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    old: Optional[str] = None
    new: Optional[str] = None
    permalink: Optional[str] = None
    source_key: Optional[str] = None  # e.g. the pinned message, so a re-delivery adds nothing


class Page(SQLModel, table=True):
    """A person paged: for an incident, or straight from an alert that declared none."""

    # /metrics counts escalated and unanswered pages from this index, not from the table.
    __table_args__ = (Index("ix_page_answer", "escalated_at", "acknowledged_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    incident_id: Optional[int] = Field(default=None, foreign_key="incident.id", index=True)
    user: str
    rotation: Optional[str] = None
    level: int = 0  # 0 = first page; n = n-th step of the escalation chain
    paged_by: str = ""
    reason: Optional[str] = Field(default=None, sa_column=Column(Text))  # alert title, when no incident
    dedup_key: Optional[str] = Field(default=None, index=True)
    paged_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    acknowledged_at: Optional[datetime] = _when()
    acknowledged_by: Optional[str] = None
    escalated_at: Optional[datetime] = _when()
    escalated_by: Optional[str] = None
    resolved_at: Optional[datetime] = _when()  # its alert group resolved before anyone answered
    acknowledged_via: Optional[str] = None  # "slack" (the DM button) or "link" (acknowledgement link)
    chain: Optional[str] = None  # the rotation its escalation chain started from
    chain_round: int = 0  # 0 = first walk of the chain; n = n-th repeat (escalation_repeat)
    dm_channel: Optional[str] = None
    dm_ts: Optional[str] = None


class ActionItem(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    owner: Optional[str] = Field(default=None, index=True)
    created_by: str
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    due: Optional[date] = None
    status: str = "open"  # open | done
    done_at: Optional[datetime] = _when()
    issue_url: Optional[str] = None  # the GitHub issue that tracks it, when GITHUB_REPO is set
    issue_number: Optional[int] = None


class PostmortemDraft(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("incident_id", "version"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    version: int
    markdown: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = "draft"


class OverrideRecord(SQLModel, table=True):
    """An on-call override or swap made from Slack."""

    id: Optional[int] = Field(default=None, primary_key=True)
    rotation: str = Field(index=True)
    user: str
    start: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    end: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    reason: str = "override"


class AwayRecord(SQLModel, table=True):
    """Time away someone set in Slack (`/oncall away`): they are away over [start, end)."""

    # A person's periods that have not ended: /oncall away, and what covering reads.
    __table_args__ = (Index("ix_awayrecord_user_end", "user", "end"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    user: str
    start: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    end: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class UserProfile(SQLModel, table=True):
    """What Slack told us about a person, cached: name and time zone."""

    user_id: str = Field(primary_key=True)
    name: str = ""
    tz: str = "UTC"
    email: Optional[str] = Field(default=None, index=True)
    fetched_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Claim(SQLModel, table=True):
    """A once-only marker: Slack event ids, button presses, job runs, handoff announcements."""

    key: str = Field(primary_key=True, max_length=255)
    claimed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class OutboxTask(SQLModel, table=True):
    """Slack side effects owed to users, retried with backoff until done."""

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    status: str = "pending"  # pending | done | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    lease_until: Optional[datetime] = _when()
    last_error: Optional[str] = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    priority: int = Field(default=1, sa_column_kwargs={"server_default": "1"})  # 0 runs first


class SlackBudget(SQLModel, table=True):
    """One Slack rate-limit budget (a method, or a method in one channel), shared by all the
    bot's processes: the instants of its recent calls and until when a 429 blocks it."""

    key: str = Field(primary_key=True)
    instants: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON, epoch seconds
    blocked_until: float = 0.0  # epoch seconds


class JobRequest(SQLModel, table=True):
    """A one-off job to add to (or drop from) the scheduler, written in the requester's
    transaction; only the process that runs the scheduler moves it into APScheduler's store."""

    id: Optional[int] = Field(default=None, primary_key=True)
    action: str  # add | cancel
    key: str
    kind: str = ""
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    run_at: Optional[datetime] = _when()


class ChannelMember(SQLModel, table=True):
    """Who is in an incident channel, as far as the bot has seen (invites and member events)."""

    channel_id: str = Field(primary_key=True)
    user_id: str = Field(primary_key=True)


class ContactSetting(SQLModel, table=True):
    """A contact or notify delay someone set in Slack; it wins over the people file's."""

    user: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    url: Optional[str] = Field(default=None, sa_column=Column(Text))  # a secret: never shown whole
    removed: bool = False  # the contact of that name is gone, the file's included
    notify_minutes: Optional[int] = None
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Notification(SQLModel, table=True):
    """A page (or an offer to take command) sent to one contact outside Slack, at its notify delay."""

    id: Optional[int] = Field(default=None, primary_key=True)
    page_id: Optional[int] = Field(default=None, foreign_key="page.id", index=True)
    incident_id: Optional[int] = Field(default=None, foreign_key="incident.id")  # an offer to take command
    user: str
    contact: str  # the contact's name
    kind: str  # the URL's scheme (mailto, ntfys, json...): what /metrics counts by
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = "scheduled"  # scheduled | sending | delivered | failed | cancelled
    attempts: int = 0
    sent_at: Optional[datetime] = _when()
    error: Optional[str] = Field(default=None, sa_column=Column(Text))


class AckLink(SQLModel, table=True):
    """The acknowledgement link of one page, for its paged person; used once."""

    page_id: int = Field(primary_key=True, foreign_key="page.id")
    user: str
    nonce: str
    used_at: Optional[datetime] = _when()


class BotSecret(SQLModel, table=True):
    """Random keys the bot makes for itself once and every process shares (link signatures)."""

    name: str = Field(primary_key=True)
    value: str
class CalendarFeed(SQLModel, table=True):
    """A person's secret calendar feed: the feed's address is derived from `nonce` with a key
    of the installation, and only its SHA-256 is kept, to find the person by it."""

    user_id: str = Field(primary_key=True)
    nonce: str
    secret_hash: str = Field(index=True, unique=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
