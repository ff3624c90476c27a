"""How much a request may carry, on every route: a body over MAX_BODY gets 413. Slack's
payloads are a few KiB and Alertmanager's notifications tens of KiB, well inside it."""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_content_length, get_input_stream

MAX_BODY = 1024 * 1024  # bytes
TOO_LARGE = f"the body is larger than {MAX_BODY} bytes (1 MiB)"


class BodyTooLarge(Exception):
    """The request body is larger than MAX_BODY."""


def announced_too_large(environ: dict[str, Any]) -> bool:
    """True when the request's Content-Length is over MAX_BODY (nothing of it read)."""
    return (get_content_length(environ) or 0) > MAX_BODY


def read_body(environ: dict[str, Any]) -> bytes:
    """The whole request body, reading no more than MAX_BODY + 1 bytes of it. BodyTooLarge
    past MAX_BODY; werkzeug's ClientDisconnected when it ends before its Content-Length."""
    if announced_too_large(environ):
        raise BodyTooLarge
    try:
        body = get_input_stream(environ, max_content_length=MAX_BODY + 1).read()
    except RequestEntityTooLarge:
        raise BodyTooLarge from None
    if len(body) > MAX_BODY:
        raise BodyTooLarge
    return body
