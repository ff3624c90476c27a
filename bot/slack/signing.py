"""Slack's v0 request signature: `signed_headers` for whatever posts to the bot as Slack would
(tests, benchmarks, the console), `signature_problem` to check a request before anything
parses its body (Bolt checks it again, the same way, with slack_sdk's SignatureVerifier)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

MAX_AGE_SECONDS = 5 * 60  # Slack's advice, and what Bolt refuses beyond
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature of the raw body bytes: what slack_sdk's SignatureVerifier (and so
    Bolt) computes for a UTF-8 body, without decoding it first."""
    digest = hmac.new(signing_secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + digest.hexdigest()


def signed_headers(signing_secret: str, body: str | bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The X-Slack-Request-Timestamp and X-Slack-Signature headers for a body (a str is sent
    as UTF-8), timestamped now unless a timestamp is given."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    raw = body.encode() if isinstance(body, str) else body
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature(signing_secret, ts, raw)}


def signature_problem(signing_secret: str, timestamp: str | None, presented: str | None, body: bytes,
                      *, now: float | None = None) -> str | None:
    """Why the request is not signed by Slack (missing, malformed or stale headers, or a wrong
    signature), or None when it is. Never raises, whatever the headers hold."""
    if not timestamp or not presented:
        return "no X-Slack-Request-Timestamp or X-Slack-Signature header"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "X-Slack-Request-Timestamp is not a number of seconds"
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE_SECONDS:
        return "X-Slack-Request-Timestamp is more than 5 minutes away from now"
    if not _SIGNATURE.fullmatch(presented):
        return "X-Slack-Signature is not a v0 signature"
    if not hmac.compare_digest(signature(signing_secret, timestamp, body), presented):
        return "X-Slack-Signature does not match the body"
    return None
