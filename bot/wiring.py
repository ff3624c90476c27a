"""Builds the running bot from settings: storage, Slack client, flows, and the outbox tasks
and jobs every process registers. Only the entry points and test fixtures import this."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.alerts.service import AlertFlows, AlertPolicy
from bot.clock import Clock
from bot.config import Settings
from bot.foreground import Foreground
from bot.incidents import flows as incident_flows
from bot.incidents import paging
from bot.incidents.flows import IncidentFlows
from bot.incidents.paging import PagingFlows
from bot.jobs import handoffs
from bot.jobs.scheduler import JobScheduler
from bot.observability.metrics import BotMetrics
from bot.observability.slack_client import MeteredWebClient
from bot.outbox import Outbox
from bot.postmortem import flows as postmortem_flows
from bot.postmortem.flows import PostmortemFlows
from bot.runtime import Runtime
from bot.schedule import load_rotations
from bot.schedule.people import load_people, with_time_off, zones_by_user
from bot.slack import effects
from bot.slack.event_handlers import TimelineCapture
from bot.slack.people import People
from bot.slack.postmortem_upload import PostmortemUpload
from bot.storage import Storage


def build_runtime(
    settings: Settings, *, client: WebClient, clock: Clock | None = None, manual: bool = False,
    outbox_base_delay: float = 1.0, background: bool = False,
) -> Runtime:
    """Storage migrated, rotations and the people file loaded, outbox and scheduler wired with
    their handlers (not started: the caller decides which process runs them). background: a
    process whose writes can wait for the acknowledgements' (the clock); its outbox also waits
    for a quiet moment in the web process before each task (Foreground)."""
    clock = clock or Clock()
    people_file = load_people(settings.rotations_dir)  # a bad file stops the start before the database
    storage = Storage(settings.database_url, background=background)
    storage.migrate()
    rotations = load_rotations(settings.rotations_dir) if settings.rotations_dir.is_dir() else {}
    rotations = {name: with_time_off(rotation, people_file) for name, rotation in rotations.items()}
    outbox = Outbox(storage, clock, base_delay=outbox_base_delay, lease_seconds=settings.outbox_lease_seconds)
    scheduler = JobScheduler(storage, clock, manual=manual)
    foreground = Foreground.of(settings.database_url)
    if background and foreground is not None:
        outbox.yield_to = foreground.wait_until_quiet
    people = People(storage, client, clock, zones=zones_by_user(people_file))

    def wake() -> None:
        outbox.notify()
        scheduler.notify()

    def is_channel_member(channel_id: str, user_id: str) -> bool:
        try:
            return user_id in client.conversations_members(channel=channel_id, limit=1000)["members"]
        except SlackApiError:
            return False

    pager = PagingFlows(storage=storage, clock=clock, rotations=rotations, people=people, wake=wake)
    postmortems = PostmortemFlows(clock=clock, settings=settings)
    incidents = IncidentFlows(
        storage=storage, clock=clock, settings=settings, rotations=rotations, people=people, paging=pager,
        postmortems=postmortems, wake=wake, is_channel_member=is_channel_member,
    )
    alerts = AlertFlows(
        storage=storage, clock=clock, rotations=rotations, people=people, incidents=incidents, paging=pager,
        incidents_channel=settings.incidents_channel, wake=wake,
    )
    metrics = BotMetrics.for_bot(storage, clock)
    if isinstance(client, MeteredWebClient):  # what make_client returns: count its calls
        client.metrics = metrics
    runtime = Runtime(
        settings=settings, storage=storage, client=client, clock=clock, outbox=outbox, scheduler=scheduler,
        rotations=rotations, people=people, metrics=metrics,
        incidents=incidents, paging=pager, postmortems=postmortems, alerts=alerts,
        alert_policy=AlertPolicy.from_settings(settings.alert_severities), foreground=foreground,
        people_file=people_file,
    )
    register_work(runtime)
    postmortems.check_templates()
    return runtime


def register_work(runtime: Runtime) -> None:
    """Outbox tasks and jobs: every process needs them, `clock` included."""
    outbox, scheduler = runtime.outbox, runtime.scheduler
    effects.install(runtime)
    outbox.register(incident_flows.DECLARE, runtime.incidents.record_declaration)
    outbox.register("timeline.capture", TimelineCapture(runtime).fetch_and_record)
    outbox.register(postmortem_flows.UPLOAD, PostmortemUpload(
        storage=runtime.storage, client=runtime.client, clock=runtime.clock, people=runtime.people,
        wake=runtime.after_commit,
    ))
    scheduler.register(incident_flows.REMINDER, runtime.incidents.remind)
    scheduler.register(paging.ESCALATE, runtime.paging.escalate_on_timeout)
    scheduler.register(postmortem_flows.REMINDER, runtime.postmortems.remind)
    handoffs.install(runtime)
    scheduler.after_job = outbox.notify
