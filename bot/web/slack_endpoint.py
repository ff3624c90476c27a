"""Slack's endpoint, POST /slack/events, answered in front of Flask.

Flask's handling of a request around Bolt's Flask adapter (contexts, routing, hooks, its
request and response objects) costs CPU that every queued request waits for under load, so
Slack's requests go to Bolt through Bolt's own WSGI request and response classes, and
everything else on to Flask (docs/design.md has the figure). The Flask hooks a Slack request used
are done here: its request ID, its HTTP metrics and the count of requests in flight (RequestsInFlight).

What a sender can get wrong is answered here with one log line, never a traceback: a body over
1 MiB 413 (read no further), a missing, stale or malformed signature 401 (checked before
anything parses the body), a body that is not Slack's 400.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse
from slack_bolt.request import BoltRequest
from werkzeug.exceptions import ClientDisconnected

from bot.observability.logs import bind_request_id, request_id_from, request_id_var
from bot.slack.malformed import problem
from bot.slack.signing import signature_problem
from bot.web.limits import MAX_BODY, TOO_LARGE, BodyTooLarge, read_body

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
SLACK_EVENTS = "/slack/events"
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _json(status: int, error: str, **headers: str) -> WsgiHttpResponse:
    body = json.dumps({"ok": False, "error": error})
    return WsgiHttpResponse(status, {"content-type": ["application/json"], **{k: [v] for k, v in headers.items()}}, body)


class SlackEndpoint:
    """WSGI middleware: POST /slack/events to Bolt, any other method there 405, every other
    path to the wrapped app (Flask's wsgi_app)."""

    def __init__(self, runtime: Runtime, bolt_app: App, wrapped: WsgiApp) -> None:
        self.runtime, self.bolt, self.wrapped = runtime, bolt_app, wrapped
        self.signing_secret = runtime.settings.slack_signing_secret

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != SLACK_EVENTS:
            return self.wrapped(environ, start_response)
        started = time.perf_counter()
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        token = bind_request_id(request_id)
        try:
            status, response = self._respond(environ)
        except Exception:  # Slack gets a plain 500, the log the traceback
            log.exception("unhandled error on %s", SLACK_EVENTS)
            status, response = 500, _json(500, "internal error")
        finally:
            request_id_var.reset(token)
        headers = [*response.get_headers(), ("X-Request-Id", request_id)]
        self.runtime.metrics.http_response(
            route=SLACK_EVENTS, method=environ.get("REQUEST_METHOD", ""), status=status,
            seconds=time.perf_counter() - started,
        )
        start_response(response.status, headers)
        return response.get_body()

    def _respond(self, environ: dict[str, Any]) -> tuple[int, WsgiHttpResponse]:
        request = WsgiHttpRequest(environ)
        if request.method != "POST":
            return 405, _json(405, "method not allowed: Slack posts", allow="POST")
        try:
            body = read_body(environ)
        except BodyTooLarge:
            log.info("body over %d bytes on %s refused", MAX_BODY, SLACK_EVENTS)
            return 413, _json(413, TOO_LARGE)
        except ClientDisconnected:
            return 400, _json(400, "the body ended before its Content-Length")
        if self.signing_secret is not None:
            unsigned = signature_problem(self.signing_secret, environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
                                         environ.get("HTTP_X_SLACK_SIGNATURE"), body)
            if unsigned is not None:
                log.info("unsigned request on %s refused: %s", SLACK_EVENTS, unsigned)
                return 401, _json(401, "invalid request signature")
        in_flight = self.runtime.in_flight
        if in_flight is None:
            return self._dispatch(request, body)
        with in_flight.answering():  # the clock's outbox waits while requests queue
            return self._dispatch(request, body)

    def _dispatch(self, request: WsgiHttpRequest, body: bytes) -> tuple[int, WsgiHttpResponse]:
        # Bolt reads the body (JSON, a form's payload, its team and user...) before its own
        # signature check, and everywhere assumes Slack's shapes: anything else is refused here.
        try:
            bolt_request = BoltRequest(body=body.decode("utf-8"), query=request.query_string,
                                       headers=request.get_headers())
            malformed = problem(bolt_request.body)
        except Exception as exc:  # noqa: BLE001  (any failure to read it means a malformed body)
            malformed = f"unreadable ({type(exc).__name__})"
        if malformed is not None:
            log.info("malformed body on %s refused: %s", SLACK_EVENTS, malformed)
            return 400, _json(400, "malformed request body")
        answer = self.bolt.dispatch(bolt_request)
        return answer.status, WsgiHttpResponse(status=answer.status, headers=answer.headers, body=answer.body)
