"""The Bolt app factory: everything it needs comes in as arguments."""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.middleware import Middleware

from bot.jobs.scheduler import claim
from bot.observability.slack_requests import describe, observe_requests
from bot.slack import event_handlers, incident_handlers, oncall_handlers, paging_handlers
from bot.slack.after_ack import AfterAck
from bot.slack.malformed import MalformedRequest

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(
    runtime: "Runtime", *, signing_secret: str | None, token_verification: bool = False,
    listener_executor: Executor | None = None,
) -> App:
    """A Bolt App bound to the runtime's storage, client and clock, with every listener.

    Listeners run in the request's own thread (Bolt's process_before_response), so a reply
    leaves the moment its listener returns rather than at Bolt's next 10 ms look at the
    acknowledgement; listener_executor runs what they hand to AfterAck."""
    executor = listener_executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="after-ack")
    app = App(
        listener_executor=executor,
        client=runtime.client,
        signing_secret=signing_secret,
        request_verification_enabled=signing_secret is not None,
        token_verification_enabled=token_verification,
        process_before_response=True,
        raise_error_for_unhandled_request=True,  # one line in _log_errors, not Bolt's multi-line advice
    )
    after_ack = AfterAck(executor)
    app.middleware(_DedupeEvents(runtime))
    app.error(_log_errors)
    for handlers in (incident_handlers, oncall_handlers, event_handlers, paging_handlers):
        handlers.register(app, runtime, after_ack)
    observe_requests(app, runtime.storage, runtime.metrics)  # metrics and log context of every request; after app.error
    return app


class _DedupeEvents(Middleware):
    """Slack re-delivers events (X-Slack-Retry-Num, same event_id): act on each event_id once.

    A Middleware subclass rather than a function: Bolt calls a function middleware through
    its keyword-argument builder, every payload shape converted, on every request."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        body = req.body
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id:
            with self.runtime.storage.session() as session:
                first = claim(session, f"event:{event_id}", self.runtime.clock.now())
            if not first:
                log.info("duplicate delivery of event %s ignored", event_id)
                return BoltResponse(status=200, body="")
        return next()


def _log_errors(error: Exception, body: dict[str, Any]) -> BoltResponse | None:
    """A sender's mistake is one log line and a 4xx; anything else is a bug, with its traceback."""
    if isinstance(error, BoltUnhandledRequestError):
        log.info("no listener for this Slack request (%s %s)", *describe(body))
        return BoltResponse(status=404, body={"ok": False, "error": "unhandled request"})
    if isinstance(error, MalformedRequest):
        log.info("malformed Slack request refused: %s", error)
        return BoltResponse(status=400, body={"ok": False, "error": "malformed request body"})
    log.exception("unhandled error in a Slack listener (type=%s)", body.get("type"), exc_info=error)
    return None
