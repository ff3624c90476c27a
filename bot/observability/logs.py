"""Logging: one JSON object per line (or readable text), request and incident IDs from
context variables, and secrets masked in every record before any handler writes it.

``LOG_FORMAT=json`` turns JSON on; the default is text for people at a terminal.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import queue
import random
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from bot.postmortem.redact import redact

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
incident_id_var: ContextVar[int | None] = ContextVar("incident_id", default=None)

# Environment variables whose values are secrets, masked wherever they show up in a log line.
SECRET_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "ALERTMANAGER_TOKEN",
    "GITHUB_TOKEN",
)
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# write_behind's thread writes the lines logged meanwhile this often (a line waits at most this)
WRITE_EVERY_SECONDS = 0.05


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
        return redact(text)

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


class _Handed(logging.handlers.QueueHandler):
    """Hands a record to the writing thread as its SecretFilter left it: message merged and
    masked, IDs stamped, traceback kept as masked text (QueueHandler's own prepare would fold
    the traceback into the message and lose JSON's "exception")."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = logging.makeLogRecord(record.__dict__)  # other handlers keep theirs whole
        if record.exc_info and not record.exc_text:  # a logger without the SecretFilter
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # its text is in exc_text; a traceback holds every frame's locals
        return record


class _Batches(logging.handlers.QueueListener):
    """A QueueListener that looks at its queue every `interval` seconds instead of waking for
    each record, and writes what it found to each stream handler in one write. A request
    thread's record thus wakes no thread, and a batch costs one system call per stream."""

    def __init__(self, records: queue.SimpleQueue[Any], writers: list[logging.Handler], interval: float) -> None:
        super().__init__(records, *writers, respect_handler_level=True)
        self.interval = interval
        self._stopping = threading.Event()

    def enqueue_sentinel(self) -> None:
        super().enqueue_sentinel()
        self._stopping.set()  # stop(): no waiting out the interval

    def _monitor(self) -> None:
        records: queue.SimpleQueue[Any] = self.queue  # type: ignore[assignment]
        stopping = False
        while not stopping:
            self._stopping.wait(self.interval)
            batch: list[logging.LogRecord] = []
            while True:
                try:
                    record = records.get_nowait()
                except queue.Empty:
                    break
                if record is self._sentinel:  # stop(): write what came before it, then end
                    stopping = True
                    break
                batch.append(record)
            if batch:
                self._write(batch)

    def _write(self, batch: list[logging.LogRecord]) -> None:
        for writer in self.handlers:
            stream = getattr(writer, "stream", None) if type(writer) is logging.StreamHandler else None
            collected = io.StringIO()
            if stream is not None:
                writer.setStream(collected)  # type: ignore[attr-defined]
            try:
                for record in batch:
                    if record.levelno >= writer.level:
                        writer.handle(record)
            finally:
                if stream is not None:
                    writer.setStream(stream)  # type: ignore[attr-defined]
                    text = collected.getvalue()
                    if text:
                        try:
                            stream.write(text)
                            stream.flush()
                        except Exception:  # noqa: BLE001  (as StreamHandler.emit: report, go on)
                            writer.handleError(batch[-1])


def write_behind(logger: logging.Logger | None = None, *, interval: float = WRITE_EVERY_SECONDS) -> Callable[[], None]:
    """From now on, the records of logger (the root by default) are formatted and written by
    a thread of their own, every `interval` seconds in one write per stream: the thread that
    logs only has configure_logging's filter mask the record and stamp its IDs, and queues it.
    Each write to stderr lets go of the interpreter lock, and under load getting it back from
    the other request threads took milliseconds of an acknowledgement; so did waking a writer
    for each line. Returns a stop that writes what is queued and puts the handlers back; call
    it before the process exits (lines still queued when it is killed are lost)."""
    logger = logger if logger is not None else logging.getLogger()
    writers = list(logger.handlers)
    if not writers:
        return lambda: None
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    front = _Handed(records)
    for writer in writers:
        if getattr(writer, "_oncall_bot", False):  # its SecretFilter reads this thread's IDs
            front._oncall_bot = True  # type: ignore[attr-defined]
            for kept in writer.filters:
                front.addFilter(kept)
    listener = _Batches(records, writers, interval)
    listener.start()
    logger.handlers = [front]  # one assignment: a record goes to the old handlers or the new

    def stop() -> None:
        if logger.handlers == [front]:
            logger.handlers = writers
            listener.stop()  # writes everything queued before it returns

    return stop
