"""Everything a running bot holds, passed down explicitly. `bot.wiring` builds it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.alerts.service import AlertFlows, AlertPolicy
from bot.clock import Clock, ManualClock
from bot.config import Settings
from bot.in_flight import RequestsInFlight
from bot.incidents.flows import IncidentFlows
from bot.incidents.paging import PagingFlows
from bot.jobs.scheduler import JobScheduler
from bot.notify.flows import Notifications
from bot.observability.metrics import BotMetrics
from bot.outbox import Outbox
from bot.postmortem.flows import PostmortemFlows
from bot.schedule import Rotation
from bot.schedule.people import Person
from bot.slack.people import People
from bot.storage import Storage

if TYPE_CHECKING:
    from bot.slack.pacing import Pacer

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    storage: Storage
    client: WebClient
    clock: Clock
    outbox: Outbox
    scheduler: JobScheduler
    rotations: dict[str, Rotation]
    people: People
    metrics: BotMetrics
    incidents: IncidentFlows
    paging: PagingFlows
    postmortems: PostmortemFlows
    alerts: AlertFlows
    alert_policy: AlertPolicy
    # How many Slack requests the web process is answering, shared with the clock (None: not shared).
    in_flight: RequestsInFlight | None = None
    # The people file (people.toml in the rotations folder) by user as written; {} without one.
    people_file: dict[str, Person] = field(default_factory=dict)
    # Pages sent outside Slack (Apprise), and the outbox of their sending: a worker of its own,
    # so a slow mail server never holds up Slack's side effects, nor the other way round.
    notifications: Notifications | None = None
    notify_outbox: Outbox | None = None
    # Slack's rate-limit budgets the outbox's Slack calls take slots from (None: not paced).
    pacer: Pacer | None = None

    def outboxes(self) -> list[Outbox]:
        return [self.outbox] + ([self.notify_outbox] if self.notify_outbox is not None else [])

    def after_commit(self) -> None:
        """Wake the workers: an outbox task or a job request was just committed."""
        for outbox in self.outboxes():
            outbox.notify()
        self.scheduler.notify()

    def settle(self, wait: Callable[[], None] = lambda: None) -> None:
        """Manual mode: run queued side effects and due jobs until nothing is left to run.
        `wait` blocks until in-flight requests are done (tests pass Bolt's listener pool)."""
        for _ in range(50):
            wait()
            self.scheduler.sync()
            if not (self._run_outboxes() or self.scheduler.run_due()):
                wait()
                if not self._run_outboxes():
                    return

    def _run_outboxes(self) -> int:
        return sum([outbox.run_due() for outbox in self.outboxes()])

    def advance_to(self, target: datetime, *, on_step: Callable[[datetime], None] = lambda _: None,
                   wait: Callable[[], None] = lambda: None) -> None:
        """Manual mode: move a ManualClock to `target`, firing each due job at its own instant."""
        clock = self.clock
        assert isinstance(clock, ManualClock), "advance_to needs a ManualClock"
        while True:
            self.settle(wait)
            due = [at for _, at in self.scheduler.pending() if at <= target]
            if not due:
                break
            clock.set(max(due[0], clock.now()))
            on_step(clock.now())
            self.scheduler.run_due()
        clock.set(target)
        self.settle(wait)
