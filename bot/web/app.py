"""The WSGI application: Slack's endpoint plus health and the non-Slack routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from flask import Flask, jsonify, request
from slack_bolt import App
from slack_bolt.adapter.flask.handler import to_bolt_request, to_flask_response
from werkzeug.exceptions import HTTPException

from bot.slack.malformed import well_formed

if TYPE_CHECKING:
    from bot.runtime import Runtime

# Other modules add their routes here (iCal, alerts, postmortems, metrics): (runtime, flask) -> None
ROUTE_INSTALLERS: list[Callable[["Runtime", Flask], None]] = []


def create_web_app(runtime: "Runtime", bolt_app: App) -> Flask:
    """Flask serving /slack/events through Bolt, /healthz, and the installed extra routes."""
    web = Flask("oncall-bot")

    @web.post("/slack/events")
    def slack_events():  # type: ignore[no-untyped-def]
        if runtime.foreground is None:
            return answer_slack()
        with runtime.foreground.answering():  # the clock's outbox waits while requests queue
            return answer_slack()

    def answer_slack():  # type: ignore[no-untyped-def]
        # Bolt reads the body (JSON, a form's payload, its team and user...) before verifying the
        # signature, and everywhere assumes Slack's shapes: anything else is refused here.
        try:
            bolt_request = to_bolt_request(request)
            problem = None if well_formed(bolt_request.body) else "unexpected shape"
        except Exception as exc:  # noqa: BLE001  (any failure to read it means a malformed body)
            problem = type(exc).__name__
        if problem is not None:
            web.logger.info("malformed body on /slack/events refused (%s)", problem)
            return jsonify({"ok": False, "error": "malformed request body"}), 400
        return to_flask_response(bolt_app.dispatch(bolt_request))

    @web.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        database = runtime.storage.ping()
        scheduler = {"stopped": "elsewhere"}.get(runtime.scheduler.state, runtime.scheduler.state)
        body = {"ok": database, "database": "ok" if database else "unreachable", "scheduler": scheduler}
        return jsonify(body), 200 if database else 503

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
    return web
