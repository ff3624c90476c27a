"""Builds the running bot from settings: storage, Slack client, flows, and the outbox tasks
and jobs every process registers. Only the entry points and test fixtures import this."""

from __future__ import annotations

import logging
from pathlib import Path

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import github
from bot.alerts.service import AlertFlows, AlertPolicy
from bot.clock import Clock
from bot.config import ConfigError, Settings
from bot.in_flight import RequestsInFlight
from bot.incidents import flows as incident_flows
from bot.incidents import followups, paging
from bot.incidents.flows import IncidentFlows
from bot.incidents.paging import PagingFlows
from bot.jobs import handoffs
from bot.jobs.scheduler import JobScheduler
from bot.notify import flows as notify_flows
from bot.notify.contacts import Contacts
from bot.notify.flows import Notifications
from bot.observability.metrics import BotMetrics
from bot.observability.slack_client import MeteredWebClient
from bot.outbox import Outbox
from bot.postmortem import flows as postmortem_flows
from bot.postmortem.flows import PostmortemFlows
from bot.runtime import Runtime
from bot.schedule import Rotation, read_rotations
from bot.schedule.people import Person, read_people, with_time_off, zones_by_user
from bot.slack import effects
from bot.slack.blocks import web_link
from bot.slack.event_handlers import TimelineCapture
from bot.slack.pacing import Pacer
from bot.slack.people import People
from bot.slack.postmortem_upload import PostmortemUpload
from bot.storage import Storage, database_problem

log = logging.getLogger(__name__)


def build_runtime(
    settings: Settings, *, client: WebClient, clock: Clock | None = None, manual: bool = False,
    outbox_base_delay: float = 1.0, background: bool = False,
) -> Runtime:
    """Storage migrated, rotations and the people file loaded, outbox and scheduler wired with
    their handlers (not started: the caller decides which process runs them). background: a
    process whose writes can wait for the acknowledgements' (the clock); its outbox also waits
    for a quiet moment in the web process before each task (RequestsInFlight)."""
    clock = clock or Clock()
    rotations, people_file = load_rotation_folder(settings.rotations_dir)
    storage = open_storage(settings.database_url)
    outbox = Outbox(storage, clock, base_delay=outbox_base_delay, lease_seconds=settings.outbox_lease_seconds)
    notify_outbox = Outbox(storage, clock, base_delay=outbox_base_delay, lease_seconds=settings.outbox_lease_seconds)
    scheduler = JobScheduler(storage, clock, manual=manual)
    in_flight = RequestsInFlight.of(settings.database_url)
    if background and in_flight is not None:
        outbox.yield_to = notify_outbox.yield_to = scheduler.yield_to = in_flight.wait_until_quiet
    people = People(storage, client, clock, zones=zones_by_user(people_file))

    def wake() -> None:
        outbox.notify()
        notify_outbox.notify()
        scheduler.notify()

    def is_channel_member(channel_id: str, user_id: str) -> bool:
        try:
            return user_id in client.conversations_members(channel=channel_id, limit=1000)["members"]
        except SlackApiError:
            return False

    notifications = Notifications(
        storage=storage, clock=clock, contacts=Contacts(people_file, people.resolve), public_url=settings.base_url,
        name_of=lambda user_id: people.profile(user_id).name, wake=wake,
    )
    pager = PagingFlows(storage=storage, clock=clock, rotations=rotations, people=people, wake=wake,
                        notifier=notifications)
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
        alert_policy=AlertPolicy.from_settings(settings.alert_severities), in_flight=in_flight,
        people_file=people_file, notifications=notifications, notify_outbox=notify_outbox,
        # on the bot's clock, as the outbox's retry times are (a console or test clock moves by hand)
        pacer=Pacer(storage, enabled=settings.slack_pacing, now=lambda: clock.now().timestamp()),
    )
    register_work(runtime)
    postmortems.check_templates()
    return runtime


def open_storage(database_url: str) -> Storage:
    """The database reached, its schema up to date, and writable; ConfigError naming
    DATABASE_URL in one line otherwise."""
    try:
        storage = Storage(database_url)
    except Exception as exc:  # noqa: BLE001  (a URL SQLAlchemy or its driver cannot use)
        raise ConfigError(f"DATABASE_URL cannot be used: {database_problem(exc)}") from None
    try:
        storage.migrate()
        problem = storage.write_problem()
    except Exception as exc:  # noqa: BLE001  (unreachable, refused, or a schema it cannot bring up to date)
        problem = database_problem(exc)
    if problem is not None:
        storage.dispose()
        raise ConfigError(f"DATABASE_URL: the database cannot be used: {problem}")
    return storage


def load_rotation_folder(folder: Path) -> tuple[dict[str, Rotation], dict[str, Person]]:
    """The rotations of ROTATIONS_DIR, carrying the people file's time off, and the people
    file; ConfigError in one line when the folder is missing or a file has errors (`oncall-bot
    check` lists them all). A folder without rotations is only warned about: such a bot pages
    nobody automatically."""
    if not folder.is_dir():
        raise ConfigError(f"ROTATIONS_DIR {str(folder)!r} is not a folder: point it at the rotation files")
    rotations, problems = read_rotations(folder)
    people, people_problems = read_people(folder)
    problems += people_problems
    if problems:
        more = f" (and {len(problems) - 1} more; `oncall-bot check {folder}` lists them)" if len(problems) > 1 else ""
        raise ConfigError(f"ROTATIONS_DIR has a file with errors: {' '.join(str(problems[0]).split())}{more}")
    if not rotations:
        log.warning("ROTATIONS_DIR %r holds no rotation files: nobody is paged until one is added", str(folder))
    return {name: with_time_off(rotation, people) for name, rotation in rotations.items()}, people


def register_work(runtime: Runtime) -> None:
    """Outbox tasks and jobs: every process needs them, `clock` included."""
    outbox, scheduler = runtime.outbox, runtime.scheduler
    effects.install(runtime)
    outbox.register(incident_flows.DECLARE, runtime.incidents.record_declaration)
    outbox.register("timeline.capture", TimelineCapture(runtime).fetch_and_record, service=effects.SLACK)
    outbox.register(postmortem_flows.UPLOAD, PostmortemUpload(
        storage=runtime.storage, client=runtime.client, clock=runtime.clock, people=runtime.people,
        wake=runtime.after_commit,
        web_page=lambda number: web_link(runtime.settings, f"/postmortems/{number}"),
    ), service=effects.SLACK)
    scheduler.register(incident_flows.REMINDER, runtime.incidents.remind)
    scheduler.register(followups.REMIND, runtime.incidents.remind_action)
    github.install(runtime.outbox, runtime.storage, runtime.settings)
    scheduler.register(paging.ESCALATE, runtime.paging.escalate_on_timeout)
    scheduler.register(postmortem_flows.REMINDER, runtime.postmortems.remind)
    handoffs.install(runtime)
    assert runtime.notify_outbox is not None and runtime.notifications is not None
    runtime.notify_outbox.register(notify_flows.SEND, runtime.notifications.send)
    scheduler.register(notify_flows.DUE, runtime.notifications.due)
    scheduler.after_job = runtime.after_commit
