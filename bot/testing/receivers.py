"""Servers on 127.0.0.1 that receive what Apprise sends, for the tests and benchmarks: an HTTP
receiver (Apprise's `json://` and `ntfy://` post to it) and an SMTP server (`mailto://`,
aiosmtpd, a test dependency)."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    """One HTTP request: its path, body (parsed when JSON) and when it arrived (perf_counter)."""

    path: str
    body: Any
    at: float = field(default_factory=time.perf_counter)

    @property
    def text(self) -> str:
        """The notification's words, whatever the service's JSON calls them."""
        if isinstance(self.body, dict):
            return f"{self.body.get('title', '')}\n{self.body.get('message', '')}"
        return str(self.body)


class HttpReceiver:
    """Answers every POST with `status_for.get(path, 200)` and keeps what it received."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status_for: dict[str, int] = {}
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                with receiver._cond:
                    receiver.received.append(Received(self.path, body))
                    receiver._cond.notify_all()
                status = receiver.status_for.get(self.path, 200)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def at(self, path: str) -> list[Received]:
        with self._cond:
            return [r for r in self.received if r.path == path]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """True once `count` requests have arrived in all."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= count, timeout)


class SmtpReceiver:
    """An SMTP server without TLS or authentication that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = _free_port()
        self._controller: Any = None

    def start(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                receiver.messages.append(message)  # type: ignore[arg-type]
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m.get("To", ""))]


def text_of(message: EmailMessage) -> str:
    """A mail's subject and plain-text body, quoted-printable undone."""
    part = message.get_body(preferencelist=("plain",))
    body = part.get_content() if part is not None else ""
    return f"{message.get('Subject', '')}\n{body}"
