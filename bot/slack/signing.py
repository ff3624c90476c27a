"""Slack's v0 request signature, made by slack_sdk's SignatureVerifier: the one that Bolt checks
requests with. For whatever posts to the bot as Slack would (tests, benchmarks, the console)."""

from __future__ import annotations

import time

from slack_sdk.signature import SignatureVerifier


def signed_headers(signing_secret: str, body: str | bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The X-Slack-Request-Timestamp and X-Slack-Signature headers for a body (bytes must be
    UTF-8, as slack_sdk reads them), timestamped now unless a timestamp is given."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None  # None only for a missing timestamp
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}
