"""`/oncall contact …` and `/oncall notify …`: a person's own contacts outside Slack.

A contact URL holds secrets, so no reply shows more of one than its scheme and host."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.notify.contacts import MAX_MINUTES, Contact, ContactError
from bot.slack import commands
from bot.slack.commands import UsageError
from bot.text import excerpt

if TYPE_CHECKING:
    from bot.runtime import Runtime

FORMS = {
    "contact": "`/oncall contact NAME URL` (an Apprise URL), `/oncall contact remove NAME`, `/oncall contact test` "
               "or `/oncall contact`",
    "notify": f"`/oncall notify NAME MINUTES` (0 to {MAX_MINUTES} minutes after a page)",
}
HELP = (
    "`/oncall contact NAME URL` — reach me outside Slack too (an Apprise URL: ntfy, e-mail, SMS, Pushover…) · "
    "`/oncall contact remove NAME` · `/oncall contact test` · `/oncall contact` — my contacts\n"
    "`/oncall notify NAME MINUTES` — when after a page that contact is used (default 2)"
)


@dataclass(frozen=True)
class ListContacts:
    pass


@dataclass(frozen=True)
class SetContact:
    name: str
    url: str


@dataclass(frozen=True)
class RemoveContact:
    name: str


@dataclass(frozen=True)
class TestContacts:
    pass


@dataclass(frozen=True)
class SetMinutes:
    name: str
    minutes: int


ContactCommand = ListContacts | SetContact | RemoveContact | TestContacts | SetMinutes


def _fail(problem: str, verb: str) -> UsageError:
    return UsageError(f"{problem}. Use {FORMS[verb]}.")


_LINKED = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def slack_url(token: str) -> str:
    """A URL as typed, from Slack's text: links Slack made (`<url>`, `<url|label>`, and the
    `<mailto:a@b|a@b>` it makes of addresses inside a URL) unwrapped, escapes undone."""
    token = _LINKED.sub(lambda m: m.group(2) if m.group(1).startswith("mailto:") and m.group(2) else m.group(1), token)
    return token.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse(text: str) -> ContactCommand | None:
    """The contact command in the text after `/oncall`, or None when it is another command."""
    words = text.split()
    if not words or words[0].lower() not in FORMS:
        return None
    verb, rest = words[0].lower(), words[1:]
    if verb == "notify":
        if len(rest) != 2:
            raise _fail("Name one contact and a number of minutes", verb)
        minutes = rest[1]
        if not minutes.isascii() or not minutes.isdigit() or len(minutes) > 5 or int(minutes) > MAX_MINUTES:
            raise UsageError(f"`{excerpt(minutes)}` is not a number of minutes from 0 to {MAX_MINUTES}; nothing was saved.")
        return SetMinutes(rest[0], int(minutes))
    if not rest:
        return ListContacts()
    if len(rest) == 1 and rest[0].lower() == "test":
        return TestContacts()
    if len(rest) == 2 and rest[0].lower() == "remove":
        return RemoveContact(rest[1])
    if len(rest) == 2:
        return SetContact(rest[0], slack_url(rest[1]))
    raise _fail("That is not a contact command I know", verb)


def parse_oncall(text: str) -> object:
    """Any /oncall command: a contact command, else what commands.parse_oncall reads."""
    own = parse(text)
    return own if own is not None else commands.parse_oncall(text)


def describe(contact: Contact) -> str:
    """`phone` · ntfys://ntfy.sh · 2 min after a page."""
    return f"`{contact.name}` · {contact.label} · {contact.minutes} min after a page"


class ContactReplies:
    """Carries out a contact command for the asker and says what happened (one line on refusal)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        assert runtime.notifications is not None
        self.notifications = runtime.notifications
        self.contacts = runtime.notifications.contacts

    def reply(self, command: ContactCommand, asker: str) -> str:
        try:
            return self.answer(command, asker)
        except ContactError as exc:
            return str(exc)

    def answer(self, command: ContactCommand, asker: str) -> str:
        now = self.rt.clock.now()
        if isinstance(command, SetContact):
            with self.rt.storage.session() as session:
                contact = self.contacts.set_contact(session, user_id=asker, name=command.name, url=command.url, now=now)
            return (f"Contact saved: {describe(contact)}. Try it with `/oncall contact test`; change when with "
                    f"`/oncall notify {contact.name} MINUTES`.")
        if isinstance(command, RemoveContact):
            with self.rt.storage.session() as session:
                self.contacts.remove_contact(session, user_id=asker, name=command.name, now=now)
            return f"Contact `{command.name}` removed: pages no longer go there."
        if isinstance(command, SetMinutes):
            with self.rt.storage.session() as session:
                contact = self.contacts.set_minutes(session, user_id=asker, name=command.name,
                                                    minutes=command.minutes, now=now)
            return f"Saved: {describe(contact)}."
        if isinstance(command, TestContacts):
            results = self.notifications.test(self.rt.storage.read, asker)
            if not results:
                return "You have no contacts outside Slack yet. Add one with `/oncall contact NAME URL`."
            parts = [f"`{c.name}` ({c.label}) worked" if error is None else f"`{c.name}` ({c.label}) failed: {error}"
                     for c, error in results]
            return "Test sent: " + "; ".join(parts) + "."
        return self.listing(asker)

    def listing(self, asker: str) -> str:
        with self.rt.storage.read() as session:
            contacts = self.contacts.of(session, asker)
        if not contacts:
            return "You have no contacts outside Slack: pages reach you in Slack only. Add one with " \
                   "`/oncall contact NAME URL`."
        lines = ["*Your contacts* (Slack at once, then each at its minutes after a page)"]
        lines += [describe(c) + (" (people file)" if c.source == "file" else "") for c in contacts]
        return "\n".join(lines)
