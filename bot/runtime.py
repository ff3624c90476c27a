"""Everything a running bot holds, built once from settings and passed down explicitly."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from slack_sdk import WebClient

from bot.clock import Clock, ManualClock
from bot.config import Settings
from bot.foreground import Foreground
from bot.jobs.scheduler import JobScheduler
from bot.observability.metrics import BotMetrics
from bot.outbox import Outbox
from bot.schedule import Rotation, load_rotations
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
    extras: dict[str, Any] = field(default_factory=dict)
    # How many Slack requests the web process is answering, shared with the clock (None: not shared).
    foreground: Foreground | None = None

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


def build_runtime(
    settings: Settings, *, client: WebClient, clock: Clock | None = None, manual: bool = False,
    outbox_base_delay: float = 1.0, background: bool = False,
) -> Runtime:
    """Storage migrated, rotations loaded, outbox and scheduler wired with their handlers
    (not started: the caller decides which process runs them). background: a process whose
    writes can wait for the acknowledgements' (the clock); its outbox also waits for a quiet
    moment in the web process before each task (Foreground)."""
    from bot.jobs import handlers as job_handlers
    from bot.slack import effects

    clock = clock or Clock()
    storage = Storage(settings.database_url, background=background)
    storage.migrate()
    rotations = load_rotations(settings.rotations_dir) if settings.rotations_dir.is_dir() else {}
    outbox = Outbox(storage, clock, base_delay=outbox_base_delay, lease_seconds=settings.outbox_lease_seconds)
    scheduler = JobScheduler(storage, clock, manual=manual)
    foreground = Foreground.of(settings.database_url)
    if background and foreground is not None:
        outbox.yield_to = foreground.wait_until_quiet
    runtime = Runtime(
        settings=settings, storage=storage, client=client, clock=clock, outbox=outbox,
        scheduler=scheduler, rotations=rotations, foreground=foreground,
    )
    from bot.slack.people import People

    runtime.extras["metrics"] = BotMetrics.for_runtime(runtime)
    runtime.extras["people"] = People(storage, client, clock)
    # Outbox tasks, job handlers and flows: every process needs them, `clock` included.
    from bot.slack import event_handlers, incident_handlers, oncall_handlers, paging_handlers, postmortem_handlers

    effects.install(runtime)
    for module in (incident_handlers, paging_handlers, oncall_handlers, event_handlers, postmortem_handlers):
        module.install(runtime)
    job_handlers.install(runtime)
    scheduler.after_job = outbox.notify
    return runtime
