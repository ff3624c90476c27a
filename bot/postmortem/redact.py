"""Redaction lives in ``bot.redaction`` (text is masked once, when it is stored); the names
are kept here for the postmortem package and its callers."""

from bot.redaction import (
    RULES,
    ZWSP,
    Rule,
    defuse_mentions,
    hinted,
    mask_secrets,
    redact,
    safe_text,
)

__all__ = ["RULES", "ZWSP", "Rule", "defuse_mentions", "hinted", "mask_secrets", "redact", "safe_text"]
