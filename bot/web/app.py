"""The WSGI application: Slack's endpoint plus health and the non-Slack routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from flask import Flask, jsonify, request
from slack_bolt import App
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from bot.web.headers import SecurityHeaders
from bot.web.health import HealthState
from bot.web.limits import MAX_BODY, TOO_LARGE, announced_too_large
from bot.web.slack_endpoint import SlackEndpoint

if TYPE_CHECKING:
    from bot.runtime import Runtime

# Other modules add their routes here (iCal, alerts, metrics, sign-in, pages): (runtime, flask) -> None
ROUTE_INSTALLERS: list[Callable[["Runtime", Flask], None]] = []


def create_web_app(runtime: "Runtime", bolt_app: App) -> Flask:
    """Flask serving /healthz and the installed extra routes, with /slack/events answered in
    front of it by Bolt (SlackEndpoint)."""
    web = Flask("oncall-bot")
    health = web.config["health"] = HealthState(runtime)  # serve starts its refresh thread

    @web.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        body, status = health.answer()
        return jsonify(body), status

    @web.errorhandler(404)
    def not_found(_error):  # type: ignore[no-untyped-def]
        return jsonify({"ok": False, "error": "not found"}), 404

    @web.errorhandler(Exception)
    def unexpected(error):  # type: ignore[no-untyped-def]
        if isinstance(error, HTTPException):
            return jsonify({"ok": False, "error": error.description}), error.code
        web.logger.exception("unhandled error on %s", request.path)
        return jsonify({"ok": False, "error": "internal error"}), 500

    for install in ROUTE_INSTALLERS:
        install(runtime, web)
    web.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # a body streamed without a length, cut where read

    @web.before_request  # after the installed hooks, so the refusal gets a request ID and is counted
    def refuse_large_bodies() -> None:
        if announced_too_large(request.environ):
            raise RequestEntityTooLarge(TOO_LARGE)

    web.wsgi_app = SecurityHeaders(SlackEndpoint(runtime, bolt_app, web.wsgi_app))  # type: ignore[method-assign]
    return web
