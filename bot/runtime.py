"""Everything a running bot holds, passed down explicitly. `bot.wiring` builds it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from slack_sdk import WebClient

from bot.alerts.service import AlertFlows, AlertPolicy
from bot.clock import Clock, ManualClock
from bot.config import Settings
from bot.incidents.flows import IncidentFlows
from bot.incidents.paging import PagingFlows
from bot.jobs.scheduler import JobScheduler
from bot.observability.metrics import BotMetrics
from bot.outbox import Outbox
from bot.postmortem.flows import PostmortemFlows
from bot.schedule import Rotation
from bot.schedule.people import Person
from bot.slack.people import People
from bot.storage import Storage

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
    # The people file (people.toml in the rotations folder) by user as written; {} without one.
    people_file: dict[str, Person] = field(default_factory=dict)

    def after_commit(self) -> None:
        """Wake the workers: an outbox task or a job request was just committed."""
        self.outbox.notify()
        self.scheduler.notify()

    def settle(self, wait: Callable[[], None] = lambda: None) -> None:
        """Manual mode: run queued side effects and due jobs until nothing is left to run.
        `wait` blocks until in-flight requests are done (tests pass Bolt's listener pool)."""
        for _ in range(50):
            wait()
            self.scheduler.sync()
            if not (self.outbox.run_due() or self.scheduler.run_due()):
                wait()
                if not self.outbox.run_due():
                    return

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
