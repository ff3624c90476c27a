"""POST /alerts/alertmanager (Alertmanager's webhook, version 4) and POST /alerts/webhook (a
small JSON body for any other monitoring system; see docs/alerts.md).

Both want `Authorization: Bearer <ALERTMANAGER_TOKEN>` (401 otherwise); without that setting
they answer 404, so nobody anonymous can page a person. A body we cannot use gets 400 with the reason, never 500: Alertmanager retries
only 5xx answers, and a malformed payload would fail the same way forever. An alert the
database cannot take now (unreachable, read-only, the write refused) gets 503, never 429 or
500, so Alertmanager sends it again; its repeats page once (bot/alerts/service.py).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, abort, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from bot.alerts.alertmanager import (
    Notification,
    PayloadError,
    parse_alertmanager,
    parse_webhook,
)
from bot.storage import database_problem
from bot.web.app import ROUTE_INSTALLERS
from bot.web.limits import TOO_LARGE, BodyTooLarge, read_body

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 10  # a hint: Alertmanager retries 5xx on its own backoff


def authorized(expected: str, header: str | None) -> bool:
    """True when the header carries the expected token as a bearer token."""
    scheme, _, token = (header or "").strip().partition(" ")
    presented = token.strip().encode("utf-8", "replace")
    # compare_digest takes as long for a wrong token as for a right one
    return hmac.compare_digest(presented, expected.encode("utf-8")) and scheme.lower() == "bearer"


def refusal(status: int, error: str, realm: str = "alerts") -> tuple[Response, int]:
    response = jsonify({"ok": False, "error": error})
    if status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer realm="{realm}"'
    return response, status


def install(runtime: Runtime, web: Flask) -> None:
    def receive(parse: Callable[[bytes], Notification]) -> Any:
        token = runtime.settings.alertmanager_token
        if not token:
            abort(404)
        if not authorized(token, request.headers.get("Authorization")):
            return refusal(401, "missing or wrong bearer token (Authorization: Bearer <ALERTMANAGER_TOKEN>)")
        try:
            body = read_body(request.environ)
        except BodyTooLarge:
            return refusal(413, TOO_LARGE)
        try:
            notification = parse(body)
        except PayloadError as exc:
            log.info("alert payload refused on %s: %s", request.path, exc)
            return refusal(400, str(exc))
        try:
            outcome = runtime.alerts.receive(notification, runtime.alert_policy)
        except SQLAlchemyError as exc:  # not recorded: 503 is the one answer Alertmanager retries
            log.warning("alert on %s not recorded, answered 503: %s", request.path, database_problem(exc))
            response, status = refusal(503, "the alert could not be recorded now; send it again")
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response, status
        return jsonify(outcome.as_json())

    @web.post("/alerts/alertmanager")
    def alertmanager_webhook():  # type: ignore[no-untyped-def]
        return receive(parse_alertmanager)

    @web.post("/alerts/webhook")
    def generic_webhook():  # type: ignore[no-untyped-def]
        return receive(parse_webhook)


ROUTE_INSTALLERS.append(install)
