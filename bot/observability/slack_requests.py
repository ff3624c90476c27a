"""Observing every Slack request a Bolt app handles: its name, outcome, acknowledgement and
handling latency, a request ID in the logs of its listener, and the incident it concerns.

A Bolt global middleware only sees a request *before* its listener runs (``next()`` just lets
Bolt carry on), so the measurement is taken at the points Bolt offers:

- the global middleware stamps the request (kind, name, arrival time, request ID) and gives
  the listener a metered ``ack`` and a metered Web API ``client``;
- Bolt's listener start and completion handlers (run in the listener's own thread, around the
  listener) bind the log context there and record the outcome and the handling time;
- the listener error handler ``app.error`` installed is wrapped so an exception counts as
  ``error`` (and is still logged by it).

A listener that hands the rest of its work to another thread once it has acknowledged
(``hand_off``: Slack calls that must not hold up the reply) is measured until that rest ends,
in the request's log context, and an exception there counts as ``error`` too.

Outcomes: ``ok``; ``usage_error`` (slash-command text the parser refuses, or a form sent back
with field errors); ``refused`` (a listener said so with ``mark_outcome("refused")``: not
allowed, already done..., or a payload Slack would never send: MalformedRequest); ``error``
(the listener raised).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_bolt.listener.listener_completion_handler import ListenerCompletionHandler
from slack_bolt.listener.listener_error_handler import ListenerErrorHandler
from slack_bolt.listener.listener_start_handler import ListenerStartHandler
from slack_bolt.middleware import Middleware
from sqlmodel import select

from bot.models import Incident
from bot.observability.logs import (
    bind_incident_id,
    bind_request_id,
    incident_id_var,
    new_request_id,
    request_id_var,
)
from bot.observability.metrics import OUTCOMES, BotMetrics, label
from bot.observability.slack_client import MeteredWebClient
from bot.slack import commands, contact_commands
from bot.slack.malformed import MalformedRequest

if TYPE_CHECKING:
    from bot.storage import Storage

log = logging.getLogger(__name__)
CONTEXT_KEY = "observation"
# Commands that never act on the channel they are typed in: no incident to look up.
CHANNEL_FREE = ("/oncall", "/incident declare", "/incident list", "/incident help")
_current = threading.local()  # the observation of the listener running on this thread


@dataclass
class Observation:
    kind: str
    name: str
    started: float
    request_id: str
    outcome: str | None = None
    acknowledged: bool = False
    finished: bool = False
    handed_off: bool = False  # the rest runs in another thread, which finishes the observation
    metrics: BotMetrics | None = None
    tokens: list[Any] = field(default_factory=list)


def mark_outcome(outcome: str) -> None:
    """Called from inside a listener to say how the request ended when it was not ``ok``:
    ``refused`` (not allowed, nothing to do) or ``usage_error`` (found wrong past the parser)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; one of {OUTCOMES}")
    observation: Observation | None = getattr(_current, "observation", None)
    if observation is not None and observation.outcome is None:
        observation.outcome = outcome


def command_name(command: str, text: str) -> str:
    """``/incident declare``, ``/oncall next``, ``/oncall ROTATION``: a bounded set of names."""
    verb = (text or "").strip().split(" ", 1)[0].lower()
    if command == "/incident":
        return (
            f"/incident {verb or 'help'}"
            if verb in commands.INCIDENT_VERBS or not verb
            else "/incident (unknown)"
        )
    if command == "/oncall":
        if not verb or verb in commands.ONCALL_VERBS:
            return f"/oncall {verb}".rstrip()
        return "/oncall ROTATION" if commands.ROTATION_NAME.match(verb) else "/oncall (unknown)"
    return label(command)


def _dict(value: Any) -> dict[str, Any]:
    """A body part that should be an object; anything else reads as empty (bodies are input)."""
    return value if isinstance(value, dict) else {}


def describe(body: dict[str, Any]) -> tuple[str, str]:
    """(kind, name) of a Slack request body."""
    body = _dict(body)
    if "command" in body:
        return "command", command_name(str(body.get("command")), str(body.get("text") or ""))
    kind = body.get("type")
    if kind == "event_callback":
        return "event", label(_dict(body.get("event")).get("type"))
    if kind in ("block_actions", "interactive_message"):
        actions = body.get("actions")
        first = _dict(actions[0]) if isinstance(actions, list) and actions else {}
        return "action", label(first.get("action_id") or first.get("name"))
    if kind in ("view_submission", "view_closed"):
        return "view", label(_dict(body.get("view")).get("callback_id"))
    if kind in ("shortcut", "message_action"):
        return "shortcut", label(body.get("callback_id"))
    if kind == "block_suggestion":
        return "options", label(body.get("action_id"))
    return "other", label(kind, "unknown")


def _usage_error(body: dict[str, Any]) -> bool:
    """True when a slash command's text is refused by its parser (the reply shows the form)."""
    parse: Callable[[str], Any] | None = {
        "/incident": commands.parse_incident,
        "/oncall": contact_commands.parse_oncall,
    }.get(str(body.get("command")))
    if parse is None:
        return False
    try:
        parse(str(body.get("text") or ""))
    except commands.UsageError:
        return True
    except Exception:  # noqa: BLE001  (a parser bug shows up as the listener's own error)
        return False
    return False


def _channel_of(body: dict[str, Any]) -> str | None:
    body = _dict(body)
    event = _dict(body.get("event"))
    for candidate in (
        body.get("channel_id"),
        _dict(body.get("channel")).get("id"),
        event.get("channel"),
        _dict(event.get("item")).get("channel"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


class MeteredAck(Ack):
    """``ack`` that records when the request was acknowledged, and form errors as usage errors."""

    def __init__(self, metrics: BotMetrics | None, observation: Observation) -> None:
        super().__init__()
        self._metrics = metrics
        self._observation = observation

    def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = super().__call__(*args, **kwargs)
        obs = self._observation
        if kwargs.get("response_action") == "errors" and obs.outcome is None:
            obs.outcome = "usage_error"
        if not obs.acknowledged:
            obs.acknowledged = True
            if self._metrics is not None:
                self._metrics.request_acknowledged(
                    kind=obs.kind, name=obs.name, seconds=time.perf_counter() - obs.started
                )
        return response


class _Start(ListenerStartHandler):
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._incidents: dict[str, int] = {}  # channel -> incident: fixed once the channel is saved

    def handle(self, request: BoltRequest, response: BoltResponse | None) -> None:
        obs: Observation | None = request.context.get(CONTEXT_KEY)
        if obs is None:
            return
        _current.observation = obs
        obs.tokens = [(request_id_var, bind_request_id(obs.request_id))]
        incident = None if obs.name.startswith(CHANNEL_FREE) else self._incident_of(request.body)
        if incident is not None:
            obs.tokens.append((incident_id_var, bind_incident_id(incident)))

    def _incident_of(self, body: dict[str, Any]) -> int | None:
        channel = _channel_of(body)
        if channel is None:
            return None
        if channel in self._incidents:
            return self._incidents[channel]
        try:
            with self.storage.read() as session:
                incident = session.exec(
                    select(Incident.id).where(Incident.channel_id == channel)
                ).first()
        except Exception:  # the log context is a nicety; the listener reports real trouble
            log.debug("could not look up the incident of channel %s", channel, exc_info=True)
            return None
        if incident is not None:
            self._incidents[channel] = incident
        return incident


class _Completion(ListenerCompletionHandler):
    def handle(self, request: BoltRequest, response: BoltResponse | None) -> None:
        obs: Observation | None = request.context.get(CONTEXT_KEY)
        _current.observation = None
        if obs is None:
            return
        if not obs.handed_off:
            _finish(obs)  # its log line still inside the request's log context
        for var, token in reversed(obs.tokens):
            try:
                var.reset(token)
            except ValueError:  # bound in another thread's context (should not happen)
                var.set(None)
        obs.tokens = []


def _finish(obs: Observation) -> None:
    """Record a request once: its outcome and handling time, in the logs and the metrics."""
    if obs.finished:
        return
    obs.finished = True
    seconds, outcome = time.perf_counter() - obs.started, obs.outcome or "ok"
    # One line per Slack request, like an access log, inside the request's log context.
    log.info("slack %s %s: %s in %.0f ms", obs.kind, obs.name, outcome, seconds * 1000)
    if obs.metrics is not None:
        obs.metrics.request_handled(kind=obs.kind, name=obs.name, outcome=outcome, seconds=seconds)


def hand_off(work: Callable[[], object]) -> Callable[[], None]:
    """The rest of the running listener's request, to be called in another thread: there it
    runs in the request's log context and outcome, an exception is logged and counted as
    ``error``, and the request is measured as handled when it ends."""
    obs: Observation | None = getattr(_current, "observation", None)
    context = contextvars.copy_context()  # the request ID and incident bound for the listener
    if obs is not None:
        obs.handed_off = True

    def rest() -> None:
        _current.observation = obs
        try:
            context.run(work)
        except Exception:  # noqa: BLE001  (a bug in the listener: logged and counted, as Bolt would)
            if obs is not None:
                obs.outcome = "error"
            context.run(log.exception, "unhandled error in a Slack listener after its acknowledgement")
        finally:
            _current.observation = None
            if obs is not None:
                context.run(_finish, obs)

    return rest


class _ErrorSpy(ListenerErrorHandler):
    """Marks the request as an error, then lets the app's own error handler do its work."""

    def __init__(self, inner: ListenerErrorHandler) -> None:
        self.inner = inner

    def handle(self, error: Exception, request: BoltRequest, response: BoltResponse | None) -> None:
        obs: Observation | None = request.context.get(CONTEXT_KEY)
        if obs is not None:  # a request Slack would never send is refused, not a bug of ours
            obs.outcome = "refused" if isinstance(error, MalformedRequest) else "error"
        self.inner.handle(error=error, request=request, response=response)


def observe_requests(app: App, storage: Storage, metrics: BotMetrics | None) -> None:
    """Instrument a Bolt app: metrics (when given) and log
    context for every request. Call it after ``app.error(...)``; later calls of ``app.error``
    are picked up on the next request too."""
    runner = app.listener_runner
    runner.listener_start_handler = _Start(storage)
    runner.listener_completion_handler = _Completion()

    def spy_on_errors() -> None:
        if not isinstance(runner.listener_error_handler, _ErrorSpy):
            runner.listener_error_handler = _ErrorSpy(runner.listener_error_handler)

    spy_on_errors()
    app.middleware(_Observe(metrics, spy_on_errors))


class _Observe(Middleware):
    """The global middleware: stamps each request and meters its ``ack`` and ``client``. A
    Middleware subclass, as a function middleware costs Bolt's keyword-argument builder (every
    payload shape converted) on every request."""

    def __init__(self, metrics: BotMetrics | None, spy_on_errors: Callable[[], None]) -> None:
        self.metrics = metrics
        self.spy_on_errors = spy_on_errors

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        self.spy_on_errors()
        context, body, metrics = req.context, req.body, self.metrics
        kind, name = describe(body)
        obs = Observation(
            kind=kind,
            name=name,
            started=time.perf_counter(),
            request_id=request_id_var.get() or new_request_id(),
            metrics=metrics,
        )
        if kind == "command" and _usage_error(body):
            obs.outcome = "usage_error"
        context[CONTEXT_KEY] = obs
        context["request_id"] = obs.request_id
        context["ack"] = MeteredAck(metrics, obs)
        if (
            metrics is not None
            and not isinstance(context.get("client"), MeteredWebClient)
            and context.get("client")
        ):
            context["client"] = MeteredWebClient.like(context["client"], metrics)
        return next()
