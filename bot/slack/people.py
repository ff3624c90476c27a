"""Who people are: names and time zones from users.info, cached for a day in the database
(shared by every process) and in memory (so a request does not read it again); a time zone
in the people file wins over Slack's."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.clock import Clock
from bot.models import UserProfile
from bot.storage import Storage

log = logging.getLogger(__name__)
FRESH_FOR = timedelta(days=1)


class NotCached(Exception):
    """Inside People.offline(): the answer needs someone's profile from Slack."""


class People:
    def __init__(self, storage: Storage, client: WebClient, clock: Clock, zones: Mapping[str, str] | None = None) -> None:
        """zones: time zones that win over Slack's profiles (the people file's), by user ID or
        by lower-case e-mail address."""
        self.storage = storage
        self.client = client
        self.clock = clock
        self.zones = dict(zones or {})
        self._memory: dict[str, UserProfile] = {}
        self._offline = threading.local()

    @contextmanager
    def offline(self) -> Iterator[None]:
        """Within the block, a profile that would have to come from Slack raises NotCached
        (so a listener can answer in its acknowledgement only when nothing is slow)."""
        self._offline.on = True
        try:
            yield
        finally:
            self._offline.on = False

    def _must_stay_offline(self, what: str) -> None:
        if getattr(self._offline, "on", False):
            raise NotCached(what)

    def profile(self, user_id: str) -> UserProfile:
        """The cached profile, refreshed from Slack when older than a day; UTC when unknown."""
        now = self.clock.now()
        cached = self._memory.get(user_id)
        if cached is None or now - cached.fetched_at >= FRESH_FOR:
            with self.storage.read() as session:
                cached = session.get(UserProfile, user_id)
        if cached is not None and now - cached.fetched_at < FRESH_FOR:
            self._memory[user_id] = cached
            return cached
        self._must_stay_offline(user_id)
        try:
            user = self.client.users_info(user=user_id)["user"]
        except SlackApiError as exc:
            log.warning("users.info %s failed: %s", user_id, exc.response.get("error"))
            return cached or UserProfile(user_id=user_id, name=user_id, tz="UTC", fetched_at=now)
        except OSError as exc:  # Slack out of reach (timeout, refused): pages outside Slack go on
            log.warning("users.info %s failed: %s", user_id, exc)
            return cached or UserProfile(user_id=user_id, name=user_id, tz="UTC", fetched_at=now)
        profile = UserProfile(
            user_id=user_id,
            name=user.get("name") or user.get("real_name") or user_id,
            tz=user.get("tz") or "UTC",
            email=(user.get("profile") or {}).get("email"),
            fetched_at=now,
        )
        if not self.storage.in_transaction():  # called from inside a write: skip the cache
            try:
                with self.storage.session() as session:
                    session.merge(profile)
            except IntegrityError:  # another request or process saved it a moment ago: it stands
                log.info("profile of %s was saved meanwhile by another request", user_id)
            self._memory[user_id] = profile
        return profile

    def tz(self, user_id: str) -> str:
        """The person's time zone: the people file's when it gives one, else Slack's profile's."""
        if user_id in self.zones:
            return self.zones[user_id]
        profile = self.profile(user_id)
        return self.zones.get((profile.email or "").lower()) or profile.tz

    def lookup_email(self, email: str) -> str | None:
        """A member given by email in a rotation file, resolved to a Slack user ID."""
        with self.storage.read() as session:
            cached = session.exec(select(UserProfile).where(UserProfile.email == email)).first()
        if cached is not None:
            return cached.user_id
        self._must_stay_offline(email)
        try:
            user = self.client.users_lookupByEmail(email=email)["user"]
        except SlackApiError:
            return None
        self.profile(user["id"])
        return str(user["id"])

    def resolve(self, member: str) -> str:
        """A rotation member (user ID or email) as a user ID; emails not found stay as given."""
        if "@" in member:
            return self.lookup_email(member) or member
        return member
