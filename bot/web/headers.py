"""Security headers on every response of the web app, Slack's endpoint included."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

# No scripts, frames or outside resources; forms post only here; nothing leaks in a Referer.
HEADERS = (
    ("Content-Security-Policy",
     "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
_NAMES = frozenset(name.lower() for name, _ in HEADERS)


class SecurityHeaders:
    """WSGI middleware: adds HEADERS to every response that does not set them itself."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            if not _NAMES <= present:
                headers = [*headers, *((n, v) for n, v in HEADERS if n.lower() not in present)]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, start)
