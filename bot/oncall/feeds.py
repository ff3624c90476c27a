"""Personal calendar feeds: each person's secret address `PUBLIC_URL/ical/<secret>.ics`.

The secret is an HMAC of a random nonce kept per person, under a key of the installation
(derived from its Slack secrets), so the database alone does not give the addresses away; only
the secret's SHA-256 is stored, to find the person a request belongs to. Resetting draws a new
nonce: the old address stops working at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime

from sqlmodel import Session, select

from bot.models import CalendarFeed

SECRET = re.compile(r"[A-Za-z0-9_-]{32}")


def _secret(key: bytes, user_id: str, nonce: str) -> str:
    digest = hmac.new(key, f"calendar-feed:{user_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def feed_secret(*, db_session: Session, key: bytes, user_id: str, now: datetime, reset: bool = False) -> str:
    """The person's feed secret, made on first use; with `reset`, a new one (the old one stops)."""
    feed = db_session.get(CalendarFeed, user_id)
    if feed is not None and not reset:
        return _secret(key, user_id, feed.nonce)
    nonce = secrets.token_urlsafe(16)
    secret = _secret(key, user_id, nonce)
    if feed is None:
        feed = CalendarFeed(user_id=user_id, nonce=nonce, secret_hash=_hash(secret), created_at=now)
    else:
        feed.nonce, feed.secret_hash, feed.created_at = nonce, _hash(secret), now
    db_session.add(feed)
    return secret


def feed_owner(*, db_session: Session, key: bytes, secret: str) -> str | None:
    """Whose feed this secret opens; None for an unknown, malformed or replaced one."""
    if not SECRET.fullmatch(secret):
        return None
    feed = db_session.exec(select(CalendarFeed).where(CalendarFeed.secret_hash == _hash(secret))).first()
    if feed is None or not hmac.compare_digest(_secret(key, feed.user_id, feed.nonce), secret):
        return None
    return feed.user_id
