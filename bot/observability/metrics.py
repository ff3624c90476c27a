"""Every Prometheus metric the bot exports, in one place.

Each runtime owns a ``CollectorRegistry`` (never prometheus-client's global one), so tests that
run several bots in one process keep their numbers apart.

Two kinds of numbers:

- Per-process counters and histograms (Slack requests handled, acknowledgement and handling
  latency, Slack Web API calls and errors, HTTP responses). Under gunicorn with several workers
  each worker counts only its own requests: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty,
  writable folder (wiped before every start) in the environment of ``oncall-bot serve``, and
  ``GET /metrics`` then sums every worker's files (``prometheus_client.multiprocess``).
- Figures read from the database at scrape time (``DatabaseCollector``): open incidents by
  severity, incidents declared, pages and escalations, outbox backlog. They are the same
  whichever process answers the scrape, so they need no multiprocess setup.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from sqlalchemy import func
from sqlmodel import col, select

from bot.incidents.commands import OPEN, SEVERITIES
from bot.models import Counter as NumberCounter
from bot.models import Incident, Notification, OutboxTask, Page

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.storage import Storage

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "usage_error", "refused", "error")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # others count as "other"
# Slack's 3-second acknowledgement limit sits between the 2.5 and 5 second buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0, 30.0)
_LABEL = re.compile(r"[A-Za-z0-9_./:@ -]{1,64}")


def label(value: object, fallback: str = "other") -> str:
    """A label value safe to export: short, plain characters, else ``fallback``.
    Keeps text that callers control from creating unbounded time series."""
    text = str(value) if value is not None else ""
    return text if _LABEL.fullmatch(text) else fallback


class BotMetrics:
    """The per-process metrics of one running bot, registered in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "oncall_slack_requests",
            "Slack requests handled (commands, actions, events, views) by name and outcome",
            ["kind", "name", "outcome"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "oncall_slack_ack_seconds",
            "Time from a Slack request's arrival to its acknowledgement",
            ["kind", "name"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.handling_seconds = Histogram(
            "oncall_slack_handling_seconds",
            "Time from a Slack request's arrival until its listener finished",
            ["kind", "name"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.api_calls = Counter(
            "oncall_slack_api_calls",
            "Slack Web API calls (retries included in one call) by method",
            ["method"],
            registry=r,
        )
        self.api_errors = Counter(
            "oncall_slack_api_errors",
            "Slack Web API calls that failed, by method and Slack error code",
            ["method", "error"],
            registry=r,
        )
        self.api_seconds = Histogram(
            "oncall_slack_api_call_seconds",
            "Duration of Slack Web API calls, retries and waits included",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_responses = Counter(
            "oncall_http_responses",
            "HTTP responses of the web app by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "oncall_http_request_seconds",
            "HTTP request duration by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    @classmethod
    def for_bot(cls, storage: Storage, clock: Clock) -> BotMetrics:
        """Metrics for a running bot, its database figures collected at scrape time."""
        metrics = cls()
        metrics.database = DatabaseCollector(storage, clock)
        metrics.registry.register(metrics.database)
        return metrics

    database: DatabaseCollector | None = None

    # What the instrumentation calls -----------------------------------------------------

    def request_handled(self, *, kind: str, name: str, outcome: str, seconds: float) -> None:
        self.requests.labels(kind, name, outcome).inc()
        self.handling_seconds.labels(kind, name).observe(seconds)

    def request_acknowledged(self, *, kind: str, name: str, seconds: float) -> None:
        self.ack_seconds.labels(kind, name).observe(seconds)

    def slack_call(self, *, method: str, seconds: float, error: str | None) -> None:
        method = label(method)
        self.api_calls.labels(method).inc()
        self.api_seconds.labels(method).observe(seconds)
        if error is not None:
            self.api_errors.labels(method, label(error)).inc()

    def http_response(self, *, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in HTTP_METHODS else "other"
        self.http_responses.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route).observe(seconds)

    # Exposition -------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format of everything this process (or, in multiprocess mode,
        every worker sharing ``PROMETHEUS_MULTIPROC_DIR``) knows."""
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not folder:
            return bytes(generate_latest(self.registry))
        if not os.path.isdir(folder):  # a scrape must answer; say why the numbers are partial
            log.warning(
                "PROMETHEUS_MULTIPROC_DIR=%s is not a folder: serving this process only", folder
            )
            return bytes(generate_latest(self.registry))
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        if self.database is not None:
            combined.register(self.database)
        return bytes(generate_latest(combined))


class DatabaseCollector:
    """Figures read from the database at scrape time; the same from every process."""

    def __init__(self, storage: Storage, clock: Clock) -> None:
        self.storage = storage
        self.clock = clock

    def describe(self) -> list[Metric]:
        # Names only: registering must not touch the database.
        return [family for family, _ in self._families()]

    def _families(self) -> list[tuple[Metric, str]]:
        return [
            (
                GaugeMetricFamily(
                    "oncall_database_up", "1 when the database answered the last scrape"
                ),
                "up",
            ),
            (
                GaugeMetricFamily(
                    "oncall_incidents_open",
                    "Incidents not yet resolved, by severity",
                    labels=["severity"],
                ),
                "open",
            ),
            (
                CounterMetricFamily("oncall_incidents_declared", "Incidents ever declared"),
                "declared",
            ),
            (
                CounterMetricFamily(
                    "oncall_pages", "People paged (one per Page row, escalation steps included)"
                ),
                "pages",
            ),
            (
                CounterMetricFamily(
                    "oncall_page_escalations",
                    "Pages escalated, by the timer or the Escalate button",
                ),
                "escalations",
            ),
            (
                GaugeMetricFamily(
                    "oncall_pages_unanswered", "Pages neither acknowledged nor escalated (nor resolved by their alert)"
                ),
                "unanswered",
            ),
            (
                CounterMetricFamily(
                    "oncall_notifications",
                    "Pages sent to people: kind slack (the DM) or a contact's URL scheme; outcome delivered, "
                    "failed, cancelled (answered first) or pending",
                    labels=["kind", "outcome"],
                ),
                "notifications",
            ),
            (
                SummaryMetricFamily(
                    "oncall_time_to_acknowledge_seconds",
                    "From an incident's declaration to its first acknowledged page, over acknowledged incidents",
                ),
                "acknowledge",
            ),
            (
                GaugeMetricFamily(
                    "oncall_outbox_tasks",
                    "Slack side effects not done yet, by status",
                    labels=["status"],
                ),
                "outbox",
            ),
            (
                GaugeMetricFamily(
                    "oncall_outbox_oldest_pending_seconds",
                    "Age of the oldest pending outbox task (0 when none)",
                ),
                "oldest",
            ),
        ]

    def collect(self) -> Iterator[Metric]:
        families = {key: family for family, key in self._families()}
        try:
            figures = self._read()
        except Exception:  # a scrape must still answer, saying the database is down
            log.exception("metrics: the database could not be read")
            families["up"].add_metric([], 0)
            yield families["up"]
            return
        families["up"].add_metric([], 1)
        for severity in SEVERITIES:
            families["open"].add_metric([f"sev{severity}"], figures["open"].get(severity, 0))
        families["declared"].add_metric([], figures["declared"])
        families["pages"].add_metric([], figures["pages"])
        families["escalations"].add_metric([], figures["escalations"])
        families["unanswered"].add_metric([], figures["unanswered"])
        for (kind, outcome), count in sorted(figures["notifications"].items()):  # type: ignore[attr-defined]
            families["notifications"].add_metric([kind, outcome], count)
        count, total = figures["acknowledge"]  # type: ignore[misc]
        families["acknowledge"].add_metric([], count_value=count, sum_value=total)
        for status in ("pending", "failed"):
            families["outbox"].add_metric([status], figures["outbox"].get(status, 0))
        families["oldest"].add_metric([], figures["oldest"])
        yield from families.values()

    def _read(self) -> dict[str, object]:
        now = self.clock.now()
        with self.storage.read() as session:
            open_rows = session.exec(
                select(Incident.severity, func.count())
                .where(col(Incident.status).in_(OPEN))  # the status index; != would scan
                .group_by(Incident.severity)
            ).all()
            # Numbers are gap-free, so the counter is the count without counting.
            declared = session.exec(select(NumberCounter.value).where(NumberCounter.name == "incident")).first() or 0
            pages = session.exec(select(func.count()).select_from(Page)).one()
            escalations = session.exec(
                select(func.count()).select_from(Page).where(col(Page.escalated_at).is_not(None))
            ).one()
            unanswered = session.exec(
                select(func.count())
                .select_from(Page)
                .where(col(Page.escalated_at).is_(None), col(Page.acknowledged_at).is_(None))
                .where(col(Page.resolved_at).is_(None))
            ).one()
            notified = session.exec(
                select(Notification.kind, Notification.status, func.count()).group_by(Notification.kind, Notification.status)
            ).all()
            dms = session.exec(select(func.count()).select_from(Page).where(col(Page.dm_ts).is_not(None))).one()
            acknowledged = session.exec(
                select(Incident.declared_at, Incident.acknowledged_at).where(col(Incident.acknowledged_at).is_not(None))
            ).all()
            outbox_rows = session.exec(
                select(OutboxTask.status, func.count())
                .where(col(OutboxTask.status).in_(("pending", "failed")))
                .group_by(OutboxTask.status)
            ).all()
            oldest = session.exec(  # not func.min: that would bypass the UTC column type
                select(OutboxTask.created_at)
                .where(OutboxTask.status == "pending")
                .order_by(col(OutboxTask.created_at))
                .limit(1)
            ).first()
        notifications: dict[tuple[str, str], int] = {("slack", "delivered"): int(dms)}
        for kind, status, n in notified:
            outcome = "pending" if status in ("scheduled", "sending") else status
            key = (label(kind), outcome)
            notifications[key] = notifications.get(key, 0) + int(n)
        waits = [(ack - declared).total_seconds() for declared, ack in acknowledged]
        return {
            "notifications": notifications,
            "acknowledge": (len(waits), sum(waits)),
            "open": {int(sev): int(n) for sev, n in open_rows},
            "declared": int(declared),
            "pages": int(pages),
            "escalations": int(escalations),
            "unanswered": int(unanswered),
            "outbox": {str(status): int(n) for status, n in outbox_rows},
            "oldest": max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
        }
