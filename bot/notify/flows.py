"""Notifying a page outside Slack: each contact at its delay, as a job at a UTC instant, then
an outbox task that sends through Apprise, retried with backoff; a contact that keeps failing
is said in the incident channel. Nothing is sent once the page is answered or its incident
resolved."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.clock import Clock
from bot.incidents.commands import severity_label
from bot.jobs.scheduler import cancel_job, request_job
from bot.models import Incident, Notification, Page
from bot.notify import links
from bot.notify.contacts import Contact, Contacts
from bot.outbox import enqueue
from bot.storage import Storage

log = logging.getLogger(__name__)
# Their debug lines carry contact URLs (hosts, paths, addresses), which hold secrets.
logging.getLogger("apprise").setLevel(logging.WARNING)
logging.getLogger("urllib3").setLevel(logging.INFO)

DUE = "page.notify"  # job: a contact's delay is over
SEND = "notify.send"  # outbox task: send one notification
MAX_ATTEMPTS = 4  # then the incident channel is told


class DeliveryFailed(Exception):
    """The service did not take the notification; the message never holds the URL."""


@dataclass(frozen=True)
class Message:
    """What a notification says: a title, and a body that ends with the link."""

    title: str
    body: str
    link: str


Sender = Callable[[str, Contact, Message], None]  # (user, contact, message); raises DeliveryFailed


def send_with_apprise(user: str, contact: Contact, message: Message) -> None:
    """Send through Apprise, the only client of outside services the bot has."""
    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(contact.url):
        raise DeliveryFailed("the URL is not one Apprise can use")
    if not notifier.notify(title=message.title, body=message.body, body_format=apprise.NotifyFormat.TEXT):
        raise DeliveryFailed("the service did not accept the notification")


def plain(text: str) -> str:
    """Slack's escaped text as plain text (e-mail and push bodies are not Slack)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class Notifications:
    """Plans, sends and cancels the notifications of pages."""

    def __init__(self, *, storage: Storage, clock: Clock, contacts: Contacts, public_url: str,
                 name_of: Callable[[str], str], wake: Callable[[], None], sender: Sender = send_with_apprise) -> None:
        self.storage = storage
        self.clock = clock
        self.contacts = contacts
        self.public_url = public_url.rstrip("/")
        self.name_of = name_of
        self.wake = wake
        self.sender = sender
        self.after_send: Callable[[str, Contact, Message], None] | None = None

    def plan(self, session: Session, *, page: Page, now: datetime) -> None:
        """In the page's transaction: one notification per contact, due at its delay."""
        assert page.id is not None
        contacts = self.contacts.of(session, page.user)
        if not contacts:
            return
        links.token_for(session, page)
        for contact in contacts:
            due = now + timedelta(minutes=contact.minutes)
            notification = Notification(page_id=page.id, user=page.user, contact=contact.name, kind=contact.kind,
                                        due_at=due, status="sending" if contact.minutes == 0 else "scheduled")
            session.add(notification)
            session.flush()
            if contact.minutes == 0:
                enqueue(session, SEND, {"notification_id": notification.id}, now=now)
            else:
                request_job(session, kind=DUE, key=f"notify:{page.id}:{notification.id}", run_at=due,
                            payload={"notification_id": notification.id})

    def plan_command(self, session: Session, *, incident: Incident, person: str, now: datetime) -> None:
        """In the offer's transaction: nobody took command after a shift ended, so the on-call
        person's contacts are told too, each at its delay, while they are not the commander."""
        for contact in self.contacts.of(session, person):
            notification = Notification(incident_id=incident.id, user=person, contact=contact.name, kind=contact.kind,
                                        due_at=now + timedelta(minutes=contact.minutes), status="scheduled")
            session.add(notification)
            session.flush()
            request_job(session, kind=DUE, key=f"notify-command:{incident.id}:{notification.id}",
                        run_at=notification.due_at, payload={"notification_id": notification.id})

    def _wanted(self, session: Session, notification: Notification) -> bool:
        """A page's notification while the page waits for an answer; an offer of command while
        the incident is open and the person has not taken command."""
        if notification.page_id is None:
            incident = session.get(Incident, notification.incident_id)
            return incident is not None and incident.status != "resolved" and incident.commander != notification.user
        page = session.get(Page, notification.page_id)
        return page is not None and links.page_is_open(session, page)

    def _offer_message(self, incident: Incident) -> Message:
        """Names the incident and where to take command; no acknowledgement link (not a page)."""
        link = f"https://slack.com/app_redirect?channel={incident.channel_id}" if incident.channel_id else ""
        title = f"Take command: incident #{incident.id} ({severity_label(incident.severity)}): {plain(incident.title)}"
        body = (f"Nobody has taken command of incident #{incident.id} ({severity_label(incident.severity)}): "
                f"{plain(incident.title)} since {self.name_of(incident.commander)}'s shift ended. You are on call: "
                f"please take command in Slack." + (f"\n{link}" if link else ""))
        return Message(title=title, body=body, link=link)

    def cancel(self, session: Session, *, page: Page) -> None:
        """In the transaction that answers the page: drop its notifications not yet sent."""
        cancel_job(session, key=f"notify:{page.id}:", prefix=True)
        for notification in session.exec(select(Notification).where(
                Notification.page_id == page.id, col(Notification.status).in_(("scheduled", "sending")))).all():
            notification.status = "cancelled"
            session.add(notification)

    def due(self, session: Session, payload: dict[str, Any]) -> None:
        """Job: a contact's delay is over; queue the sending unless the page was answered."""
        notification = session.get(Notification, payload["notification_id"])
        if notification is None or notification.status != "scheduled":
            return
        if not self._wanted(session, notification):
            notification.status = "cancelled"
        else:
            notification.status = "sending"
            enqueue(session, SEND, {"notification_id": notification.id}, now=self.clock.now())
        session.add(notification)

    def message(self, session: Session, page: Page, token: str) -> Message:
        """Names the incident (number, severity, title, who paged) and carries the link."""
        link = f"{self.public_url}/ack/{token}"
        who = self.name_of(page.paged_by) if page.paged_by.startswith(("U", "W")) else page.paged_by
        incident = session.get(Incident, page.incident_id) if page.incident_id else None
        if incident is not None:
            title = f"Incident #{incident.id} ({severity_label(incident.severity)}): {plain(incident.title)}"
            what = f"{who} paged you for incident #{incident.id} ({severity_label(incident.severity)}): " \
                   f"{plain(incident.title)}"
        else:
            title = f"Alert: {plain(page.reason or 'a page')}"
            what = f"{who} paged you: {plain(page.reason or 'a page')}"
        step = f" (escalation step {page.level})" if page.level else ""
        return Message(title=title, body=f"{what}{step}.\nAcknowledge: {link}", link=link)

    def send(self, payload: dict[str, Any]) -> None:
        """Outbox task: send one notification now; raising makes the outbox try again later."""
        now = self.clock.now()
        with self.storage.session() as session:
            notification = session.get(Notification, payload["notification_id"])
            if notification is None or notification.status != "sending":
                return
            contact = next((c for c in self.contacts.of(session, notification.user) if c.name == notification.contact), None)
            if contact is None or not self._wanted(session, notification):
                notification.status = "cancelled"
                session.add(notification)
                return
            page = session.get(Page, notification.page_id) if notification.page_id is not None else None
            if page is not None:
                message = self.message(session, page, links.token_for(session, page))
            else:
                incident = session.get(Incident, notification.incident_id)
                assert incident is not None
                message = self._offer_message(incident)
        try:
            self.sender(notification.user, contact, message)
        except Exception as exc:  # noqa: BLE001  (any failure of the service: retried, then reported)
            error = str(exc) if isinstance(exc, DeliveryFailed) else type(exc).__name__
            if self._failed(notification.id, error, contact, now):
                raise DeliveryFailed(f"notification {notification.id} ({contact.kind}): {error}") from None
            return
        with self.storage.session() as session:
            stored = session.get(Notification, notification.id)
            assert stored is not None
            stored.status, stored.sent_at, stored.error = "delivered", now, None
            stored.attempts += 1
            session.add(stored)
        if self.after_send is not None:
            self.after_send(notification.user, contact, message)

    def _failed(self, notification_id: int | None, error: str, contact: Contact, now: datetime) -> bool:
        """Count a failed attempt; True when another follows, False once the channel was told."""
        with self.storage.session() as session:
            stored = session.get(Notification, notification_id)
            assert stored is not None
            stored.attempts += 1
            stored.error = error
            again = stored.attempts < MAX_ATTEMPTS
            if not again:
                stored.status = "failed"
                page = session.get(Page, stored.page_id) if stored.page_id is not None else None
                incident_id = page.incident_id if page is not None else stored.incident_id
                text = (f":warning: I could not reach <@{stored.user}> on their contact `{stored.contact}` "
                        f"({contact.label}) after {stored.attempts} tries: {error}.")
                if incident_id is not None:
                    enqueue(session, "incident.post", {"incident_id": incident_id, "text": text}, now=now)
                else:
                    enqueue(session, "slack.post", {"channel": stored.user, "text": text}, now=now)
            session.add(stored)
        if not again:
            self.wake()
        return again

    def test(self, session_factory: Callable[[], Any], user_id: str) -> list[tuple[Contact, str | None]]:
        """Send a test to each of the person's contacts now; (contact, error or None) each."""
        with session_factory() as session:
            contacts = self.contacts.of(session, user_id)
        results: list[tuple[Contact, str | None]] = []
        for contact in contacts:
            message = Message(title="Test from the on-call bot",
                              body="This is a test of your contact. Pages reach you here too.", link="")
            try:
                self.sender(user_id, contact, message)
                results.append((contact, None))
            except Exception as exc:  # noqa: BLE001  (said to the person; never the URL)
                results.append((contact, str(exc) if isinstance(exc, DeliveryFailed) else type(exc).__name__))
        return results
