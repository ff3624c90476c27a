"""Logging: one JSON object per line (or readable text), request and incident IDs from
context variables, and secrets masked in every record before any handler writes it.

``LOG_FORMAT=json`` turns JSON on; the default is text for people at a terminal.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import random
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from bot.redaction import redact

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
incident_id_var: ContextVar[int | None] = ContextVar("incident_id", default=None)

# Environment variables whose values are secrets, masked wherever they show up in a log line.
SECRET_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "ALERTMANAGER_TOKEN",
    "METRICS_TOKEN",
    "SLACK_CLIENT_SECRET",
    "SESSION_SECRET",
    "GITHUB_TOKEN",
)
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def new_request_id() -> str:
    """16 hex digits for a request that came without an ID. From the random module's generator
    rather than uuid4's os.urandom: that system call lets go of the interpreter lock, which
    under load took milliseconds to get back. random reseeds in every forked worker."""
    return f"{random.getrandbits(64):016x}"


_REQUEST_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def request_id_from(header: str | None) -> str:
    """A caller's X-Request-Id when it is short and plain (it ends up in logs), else a new one."""
    if header and len(header) <= 64 and set(header) <= _REQUEST_ID_CHARS:
        return header
    return new_request_id()


def bind_request_id(request_id: str | None) -> Token[str | None]:
    return request_id_var.set(request_id)


def bind_incident_id(incident_id: int | None) -> Token[int | None]:
    return incident_id_var.set(incident_id)


@contextmanager
def log_context(*, request_id: str | None = None, incident_id: int | None = None) -> Iterator[None]:
    """Inside the block, log records carry these IDs (those given; the others are kept)."""
    tokens: list[tuple[ContextVar[Any], Token[Any]]] = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if incident_id is not None:
        tokens.append((incident_id_var, incident_id_var.set(incident_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def secrets_from_env(environ: Mapping[str, str]) -> list[str]:
    """The secret values configured in the environment: tokens, signing secret, the password
    of DATABASE_URL."""
    values = [environ.get(name, "").strip() for name in SECRET_VARIABLES]
    url = environ.get("DATABASE_URL", "")
    _, _, rest = url.partition("://")
    credentials, at, _ = rest.rpartition("@")
    if at and ":" in credentials:
        values.append(credentials.split(":", 1)[1])
    return [value for value in values if value]


# Secrets that travel in URLs: a calendar feed's address, Sign in with Slack's code and state.
_URL_SECRETS = (
    (re.compile(r"/ical/[^/?#\s\"]+\.ics"), "/ical/[REDACTED].ics"),
    (re.compile(r"([?&](?:code|state|csrf)=)[^&#\s\"]+"), r"\g<1>[REDACTED]"),
)


def mask_urls(text: str) -> str:
    """Text with the secrets that URLs carry masked (see _URL_SECRETS)."""
    if "/ical/" in text or "=" in text:
        for pattern, replacement in _URL_SECRETS:
            text = pattern.sub(replacement, text)
    return text


class AccessLineFilter(logging.Filter):
    """For gunicorn's access log, whose lines do not pass the bot's handler: URLs' secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (never lose the line)
            return True
        masked = mask_urls(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class SecretFilter(logging.Filter):
    """Masks secrets in a record's message (arguments merged in), exception and stack text:
    the configured secret values exactly, and whatever ``redact`` recognises (Slack tokens,
    bearer tokens, passwords in URLs, ...). Also stamps the record with the current
    request and incident IDs. Never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted(
            {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "[REDACTED:secret]")
        return redact(mask_urls(text))

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_secrets_masked", False):  # a second handler sees the same record
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (bad %-arguments: keep what there is, never lose the line)
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = self.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "incident_id"):
            record.incident_id = incident_id_var.get()
        record._secrets_masked = True
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id and
    incident_id when set, exception when any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        incident_id = getattr(record, "incident_id", None) or incident_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if incident_id is not None:
            entry["incident_id"] = incident_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic one-line format, with the request and incident IDs appended when set."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [
            f"{key}={value}"
            for key in ("request_id", "incident_id")
            if (value := getattr(record, key, None)) is not None
        ]
        if not tags:
            return line
        head, newline, tail = line.partition("\n")  # tags on the first line, before a traceback
        return f"{head} [{' '.join(tags)}]{newline}{tail}"


def configure_logging(
    *,
    json: bool = False,
    secrets: Iterable[str] = (),
    level: int | str = logging.INFO,
    stream: Any = None,
) -> logging.Handler:
    """Send every log record to stderr (or ``stream``) through one handler: secrets masked,
    JSON lines or text. Replaces an earlier call's handler and ``basicConfig``'s."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(SecretFilter(secrets))
    handler._oncall_bot = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):
        # Ours from an earlier call, and basicConfig's plain one, which would print secrets.
        if getattr(old, "_oncall_bot", False) or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def configure_logging_from_env(
    environ: Mapping[str, str] | None = None, *, level: int = logging.INFO
) -> logging.Handler:
    """``LOG_FORMAT=json`` for JSON lines (default text), ``LOG_LEVEL`` (a name such as DEBUG)
    over ``level``; every secret configured in the environment masked."""
    env = os.environ if environ is None else environ
    as_json = env.get("LOG_FORMAT", "text").strip().lower() == "json"
    named = env.get("LOG_LEVEL", "").strip().upper()
    chosen = named if isinstance(logging.getLevelName(named), int) else level
    return configure_logging(json=as_json, secrets=secrets_from_env(env), level=chosen)
