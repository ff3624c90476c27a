"""The stand-in's HTTP request handler: routes ``/api``, ``/respond``, ``/upload`` and ``/files``
requests, decodes their query, form, JSON or multipart bodies and the bearer token, and hands
them to :class:`~bot.standin.server.SlackStandIn`'s entrypoints."""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)


def _multipart(body: bytes, content_type: str) -> list[tuple[str | None, str | None, bytes]]:
    """(field name, filename, bytes) of each part of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        return []
    return [
        (p.get_param("name", header="content-disposition"), p.get_filename(), p.get_payload(decode=True) or b"")
        for p in msg.iter_parts()
    ]  # fmt: skip


class Entrypoints(Protocol):
    """What the handler calls on the stand-in (bot.standin.server.SlackStandIn)."""

    def handle_api(self, method: str, args: dict, token: str | None) -> tuple[int, dict, dict]: ...

    def respond(self, rid: str, payload: dict) -> tuple[int, str]: ...

    def upload(self, file_id: str, content: bytes) -> tuple[int, str]: ...

    def download(self, file_id: str, token: str | None) -> bytes | None: ...

    def handle_oidc(self, method: str, args: dict, token: str | None, basic: str | None) -> dict: ...

    def discovery(self) -> dict: ...

    def jwks(self) -> dict: ...

    def authorize(self, query: str) -> tuple[int, dict[str, str], str]: ...


class RequestHandler(BaseHTTPRequestHandler):
    server_version = "SlackStandIn/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        try:
            self._dispatch()
        except (BrokenPipeError, ConnectionResetError):  # the caller timed out and went away
            log.debug("caller left before the answer to %s %s", self.command, self.path)
        except Exception:  # a stand-in bug: answer like Slack's 500 and keep serving
            log.exception("stand-in failed on %s %s", self.command, self.path)
            body = json.dumps({"ok": False, "error": "internal_error"}).encode()
            self._send(500, body, "application/json; charset=utf-8")

    def _dispatch(self) -> None:
        standin: Entrypoints = self.server.standin  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        auth = self.headers.get("Authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if parts[0] == "api" and len(parts) == 2 and parts[1].startswith("openid.connect."):
            args = dict(parse_qsl(url.query, keep_blank_values=True))
            args.update(self._fields(body, ctype))
            basic = auth[6:].strip() if auth.lower().startswith("basic ") else None
            resp = standin.handle_oidc(parts[1], args, bearer or args.get("token"), basic)
            self._send(200, json.dumps(resp).encode(), "application/json; charset=utf-8")
        elif url.path == "/.well-known/openid-configuration":
            self._send(200, json.dumps(standin.discovery()).encode(), "application/json")
        elif url.path == "/openid/connect/keys":
            self._send(200, json.dumps(standin.jwks()).encode(), "application/json")
        elif url.path == "/openid/connect/authorize":
            status, headers, page = standin.authorize(url.query)
            self._send(status, page.encode(), "text/html; charset=utf-8", headers)
        elif parts[0] == "api" and len(parts) == 2:
            args: dict[str, Any] = dict(parse_qsl(url.query, keep_blank_values=True))
            args.update(self._fields(body, ctype))
            status, headers, resp = standin.handle_api(parts[1], args, bearer or args.get("token"))
            self._send(
                status, json.dumps(resp).encode(), "application/json; charset=utf-8", headers
            )
        elif parts[0] == "respond" and len(parts) == 2:
            payload = self._fields(body, ctype)
            if isinstance(payload.get("payload"), str):  # form-encoded JSON payload
                payload = json.loads(payload["payload"])
            status, text = standin.respond(parts[1], payload)
            self._send(status, text.encode(), "text/plain; charset=utf-8")
        elif parts[0] == "upload" and len(parts) == 2:
            if ctype.startswith("multipart/form-data"):
                pieces = _multipart(body, ctype)
                picked = next((p for p in pieces if p[1] is not None), None) or next(
                    iter(pieces), (None, None, b"")
                )
                body = picked[2]
            status, text = standin.upload(parts[1], body)
            self._send(status, text.encode(), "text/plain; charset=utf-8")
        elif parts[0] == "files" and len(parts) >= 2:
            data = standin.download(parts[1], bearer)
            if data is None:
                self._send(404, b"not found", "text/plain")
            else:
                self._send(200, data, "application/octet-stream")
        else:
            self._send(404, b"not found", "text/plain")

    @staticmethod
    def _fields(body: bytes, ctype: str) -> dict[str, Any]:
        if not body:
            return {}
        if ctype.startswith("application/json"):
            try:
                data = json.loads(body)
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}
        if ctype.startswith("multipart/form-data"):
            return {
                name: (data if filename else data.decode("utf-8", "replace"))
                for name, filename, data in _multipart(body, ctype)
                if name
            }
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
