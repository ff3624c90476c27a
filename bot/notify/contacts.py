"""A person's contacts and notify delays: the people file's, with what they set in Slack on
top (`/oncall contact`, `/oncall notify`), which wins.

A contact URL holds secrets (tokens, passwords, topics): nothing here shows more of one than
`Contact.label`, and a URL is never put in a log line or an error message."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from bot.models import ContactSetting
from bot.schedule.people import SLACK, Person, contact_label

DEFAULT_MINUTES = 2  # a contact without a notify entry: 2 minutes after the page (SPEC)
MAX_MINUTES = 1440
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


class ContactError(Exception):
    """Something a person asked of their contacts that cannot be done; said to them as is."""


@dataclass(frozen=True)
class Contact:
    """One way to reach a person outside Slack, and when after a page it is used."""

    name: str
    url: str = field(repr=False)
    minutes: int = DEFAULT_MINUTES
    source: str = "file"  # "file" (people.toml) or "slack" (set with /oncall contact)

    @property
    def label(self) -> str:
        """The URL as safe to show: its scheme and host at most."""
        return contact_label(self.url)

    @property
    def kind(self) -> str:
        """The URL's scheme (mailto, ntfys, json...)."""
        return self.url.partition("://")[0].lower() or "other"


def url_usable(url: str) -> bool:
    """True when Apprise can build a notification service from the URL."""
    import apprise

    return apprise.Apprise().add(url)


class Contacts:
    """Contacts by Slack user ID, from the people file and the settings stored from Slack."""

    def __init__(self, people_file: Mapping[str, Person], resolve: Callable[[str], str]) -> None:
        self.people_file = people_file
        self.resolve = resolve  # an e-mail in the people file to its Slack user ID
        self._by_user: dict[str, Person | None] = {}
        self._lock = threading.Lock()

    def file_person(self, user_id: str) -> Person | None:
        """The people file's entry for a Slack user (written as the ID or as their e-mail)."""
        with self._lock:
            if user_id in self._by_user:
                return self._by_user[user_id]
        found = self.people_file.get(user_id)
        if found is None:
            for person in self.people_file.values():
                if "@" in person.user:
                    try:
                        if self.resolve(person.user) == user_id:
                            found = person
                            break
                    except Exception:  # noqa: BLE001  (Slack unreachable: try again next time)
                        return None
        with self._lock:
            self._by_user[user_id] = found
        return found

    def of(self, session: Session, user_id: str) -> list[Contact]:
        """The person's contacts, by name: the file's, then Slack's settings over them."""
        person = self.file_person(user_id)
        found: dict[str, Contact] = {}
        file_minutes: dict[str, int] = dict(person.notify) if person else {}
        if person is not None:
            for name, address in person.contacts.items():
                found[name] = Contact(name, address, file_minutes.get(name, DEFAULT_MINUTES), "file")
        for setting in session.exec(select(ContactSetting).where(ContactSetting.user == user_id)).all():
            if setting.removed:
                found.pop(setting.name, None)
                continue
            url: str | None = setting.url or (found[setting.name].url if setting.name in found else None)
            if url is None:
                continue
            minutes = setting.notify_minutes
            if minutes is None:
                minutes = file_minutes.get(setting.name, DEFAULT_MINUTES)
            found[setting.name] = Contact(setting.name, url, minutes, "slack" if setting.url else "file")
        return [found[name] for name in sorted(found)]

    def _setting(self, session: Session, user_id: str, name: str, now: datetime) -> ContactSetting:
        setting = session.get(ContactSetting, (user_id, name))
        if setting is None:
            setting = ContactSetting(user=user_id, name=name, updated_at=now)
        setting.updated_at = now
        return setting

    def set_contact(self, session: Session, *, user_id: str, name: str, url: str, now: datetime) -> Contact:
        """Add or replace a contact; ContactError for a bad name or a URL Apprise cannot use."""
        if not NAME.match(name) or name.lower() == SLACK:
            raise ContactError(
                f"`{name[:32]}` cannot name a contact: use letters, digits, '-', '_' or '.' (at most 32), "
                f"not `{SLACK}`; nothing was saved."
            )
        if not url_usable(url):
            raise ContactError(
                f"That is not a contact URL I can use ({contact_label(url)}): give an Apprise URL such as "
                "`ntfys://ntfy.sh/TOPIC` or `mailtos://…?to=you@example.com`; nothing was saved."
            )
        setting = self._setting(session, user_id, name, now)
        setting.url, setting.removed = url, False
        session.add(setting)
        return next(c for c in self.of(session, user_id) if c.name == name)

    def remove_contact(self, session: Session, *, user_id: str, name: str, now: datetime) -> None:
        """Remove one of the person's contacts, the people file's included (the file keeps it)."""
        self._known(session, user_id, name)
        setting = self._setting(session, user_id, name, now)
        setting.url, setting.removed, setting.notify_minutes = None, True, None
        session.add(setting)

    def set_minutes(self, session: Session, *, user_id: str, name: str, minutes: int, now: datetime) -> Contact:
        """When after a page the contact is used."""
        if not 0 <= minutes <= MAX_MINUTES:
            raise ContactError(f"Minutes go from 0 to {MAX_MINUTES}; nothing was saved.")
        self._known(session, user_id, name)
        setting = self._setting(session, user_id, name, now)
        setting.notify_minutes = minutes
        session.add(setting)
        return next(c for c in self.of(session, user_id) if c.name == name)

    def _known(self, session: Session, user_id: str, name: str) -> Contact:
        for contact in self.of(session, user_id):
            if contact.name == name:
                return contact
        names = ", ".join(f"`{c.name}`" for c in self.of(session, user_id)) or "none yet"
        raise ContactError(f"You have no contact named `{name[:32]}` (yours: {names}); nothing was saved.")
