"""Acknowledgement links: `PUBLIC_URL/ack/<token>`, one per page, for its paged person.

A token is `<page id>.<random nonce>.<signature>`: the nonce is stored with the page, and the
signature (HMAC-SHA256 under a key the bot makes once and keeps in the database) binds page,
nonce and person, so a token cannot be guessed or altered. The form on the link's page
carries a CSRF value derived from the token under the same key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.models import AckLink, BotSecret, Incident, Page

KEY_NAME = "ack-links"


def _key(session: Session) -> bytes:
    """The signing key, made on first use; every process reads the same row."""
    row = session.get(BotSecret, KEY_NAME)
    if row is None:
        try:
            with session.begin_nested():
                session.add(BotSecret(name=KEY_NAME, value=secrets.token_hex(32)))
                session.flush()
        except IntegrityError:  # another process made it first
            pass
        row = session.get(BotSecret, KEY_NAME)
        assert row is not None
    return bytes.fromhex(row.value)


def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_for(session: Session, page: Page) -> str:
    """The page's link token, made on first use."""
    assert page.id is not None
    link = session.get(AckLink, page.id)
    if link is None:
        link = AckLink(page_id=page.id, user=page.user, nonce=secrets.token_urlsafe(18))
        session.add(link)
        session.flush()
    return f"{page.id}.{link.nonce}.{_mac(_key(session), f'{page.id}.{link.nonce}.{link.user}')}"


def find(session: Session, token: str) -> AckLink | None:
    """The link a token names when its signature holds; None for an unknown or forged one."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit() or len(parts[0]) > 9 or len(token) > 200:
        return None
    link = session.get(AckLink, int(parts[0]))
    if link is None or not hmac.compare_digest(link.nonce, parts[1]):
        return None
    expected = _mac(_key(session), f"{link.page_id}.{link.nonce}.{link.user}")
    return link if hmac.compare_digest(expected, parts[2]) else None


def csrf_for(session: Session, token: str) -> str:
    """The value the link page's form must send back."""
    return _mac(_key(session), f"csrf:{token}")


def csrf_holds(session: Session, token: str, value: str) -> bool:
    return hmac.compare_digest(csrf_for(session, token), value or "")


def page_is_open(session: Session, page: Page) -> bool:
    """True while the page waits for its answer: not acknowledged, escalated or resolved, and
    its incident (if any) not resolved."""
    if page.acknowledged_at is not None or page.escalated_at is not None or page.resolved_at is not None:
        return False
    if page.incident_id is not None:
        incident = session.get(Incident, page.incident_id)
        if incident is None or incident.status == "resolved":
            return False
    return True
