"""Everything a running bot holds, built once from settings and passed down explicitly."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient

from bot.clock import Clock
from bot.config import Settings
from bot.jobs.scheduler import JobScheduler
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

    def after_commit(self) -> None:
        """Wake the workers: an outbox task or a job request was just committed."""
        self.outbox.notify()
        self.scheduler.notify()


def build_runtime(
    settings: Settings, *, client: WebClient, clock: Clock | None = None, manual: bool = False,
    outbox_base_delay: float = 1.0,
) -> Runtime:
    """Storage migrated, rotations loaded, outbox and scheduler wired with their handlers
    (not started: the caller decides which process runs them)."""
    from bot.jobs import handlers as job_handlers
    from bot.slack import effects

    clock = clock or Clock()
    storage = Storage(settings.database_url)
    storage.migrate()
    rotations = load_rotations(settings.rotations_dir) if settings.rotations_dir.is_dir() else {}
    outbox = Outbox(storage, clock, base_delay=outbox_base_delay, lease_seconds=settings.outbox_lease_seconds)
    scheduler = JobScheduler(storage, clock, manual=manual)
    runtime = Runtime(
        settings=settings, storage=storage, client=client, clock=clock, outbox=outbox,
        scheduler=scheduler, rotations=rotations,
    )
    from bot.slack.people import People

    runtime.extras["people"] = People(storage, client, clock)
    # Outbox tasks, job handlers and flows: every process needs them, `clock` included.
    from bot.slack import event_handlers, incident_handlers, oncall_handlers, paging_handlers, postmortem_handlers

    effects.install(runtime)
    for module in (incident_handlers, paging_handlers, oncall_handlers, event_handlers, postmortem_handlers):
        module.install(runtime)
    job_handlers.install(runtime)
    scheduler.after_job = outbox.notify
    return runtime
