"""The Bolt app factory: everything it needs comes in as arguments."""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Callable

from slack_bolt import App, BoltResponse

from bot.jobs.scheduler import claim
from bot.observability.slack_requests import observe_requests
from bot.slack import (
    event_handlers,
    incident_handlers,
    oncall_handlers,
    paging_handlers,
    postmortem_handlers,
)
from bot.slack.people import People

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(
    runtime: "Runtime", *, signing_secret: str | None, token_verification: bool = False,
    listener_executor: Executor | None = None, process_before_response: bool = False,
) -> App:
    """A Bolt App bound to the runtime's storage, client and clock, with every listener."""
    app = App(
        listener_executor=listener_executor,
        client=runtime.client,
        signing_secret=signing_secret,
        request_verification_enabled=signing_secret is not None,
        token_verification_enabled=token_verification,
        process_before_response=process_before_response,
    )
    people: People = runtime.extras["people"]
    app.middleware(_dedupe_events(runtime))
    app.error(_log_errors)
    incident_handlers.register(app, runtime, people)
    oncall_handlers.register(app, runtime, people)
    event_handlers.register(app, runtime, people)
    paging_handlers.register(app, runtime, people)
    postmortem_handlers.register(app, runtime, people)
    observe_requests(app, runtime)  # metrics and log context of every request; after app.error
    return app


def _dedupe_events(runtime: "Runtime") -> Callable[..., Any]:
    """Slack re-delivers events (X-Slack-Retry-Num, same event_id): act on each event_id once."""

    def dedupe(body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:  # noqa: A002
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id:
            with runtime.storage.session() as session:
                first = claim(session, f"event:{event_id}", runtime.clock.now())
            if not first:
                log.info("duplicate delivery of event %s ignored", event_id)
                return BoltResponse(status=200, body="")
        next()
        return None

    return dedupe


def _log_errors(error: Exception, body: dict[str, Any]) -> None:
    log.exception("unhandled error in a Slack listener (type=%s)", body.get("type"), exc_info=error)
