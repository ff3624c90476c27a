"""Recovery in seconds: outbox leases renewed while their task runs and free soon after its
process dies; a bot killed mid-storm picks up the dead process's work at once and repeats no
visible step; PostgreSQL restarted under a run of declarations loses none of them."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot.clock import Clock
from bot.incidents.flows import NOT_SAVED
from bot.models import Incident, OutboxTask, Page
from bot.outbox import TASKS, Outbox, enqueue
from bot.storage import Storage
from bot.testing import crash_drill
from bot.testing.postgres import PostgresServer, PostgresUnavailable
from tests.conftest import eventually, not_installed, slash_command
from tests.serving import Served, bot_environment

LEASE = 0.6  # seconds: short, so the unit tests see several renewals


def _outbox(storage: Storage, ran: list[str], name: str, gate: threading.Event | None = None,
            started: threading.Event | None = None) -> Outbox:
    def slow(payload: dict[str, Any]) -> None:
        ran.append(name)
        if started is not None:
            started.set()
        if gate is not None:
            assert gate.wait(30), "the test never let the task finish"

    return Outbox(storage, Clock(), {"slow": slow}, lease_seconds=LEASE)


def _lease_of(storage: Storage) -> datetime | None:
    with storage.read() as session:
        return session.exec(select(OutboxTask.lease_until)).one()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def test_a_task_running_longer_than_its_lease_is_not_taken_by_a_second_worker(database_url):
    storage = Storage(database_url)
    storage.migrate()
    ran: list[str] = []
    gate, started = threading.Event(), threading.Event()
    first = _outbox(storage, ran, "first", gate, started)
    second = _outbox(storage, ran, "second")  # another process's worker, as far as the table goes
    with storage.session() as session:
        enqueue(session, "slow", {}, now=Clock().now())
    first.start()
    try:
        assert started.wait(10)
        claimed_until = _aware(_lease_of(storage))

        def renewed_well_past_the_first_lease() -> bool:
            assert second.run_due() == 0, "a second worker took a task whose lease is being renewed"
            lease = _lease_of(storage)
            return lease is not None and _aware(lease) > claimed_until + timedelta(seconds=3 * LEASE)

        eventually(renewed_well_past_the_first_lease, timeout=10, message="the lease to be renewed")
        gate.set()
        eventually(lambda: second.run_due() == 0 and first.wait_idle(0.1), timeout=10, message="the task to finish")
        with storage.read() as session:
            task = session.exec(select(OutboxTask)).one()
        assert (task.status, task.lease_until, ran) == ("done", None, ["first"])
    finally:
        gate.set()
        first.stop()
        storage.dispose()


def test_the_task_of_a_worker_that_died_is_run_by_another_once_its_lease_runs_out(database_url):
    storage = Storage(database_url)
    storage.migrate()
    ran: list[str] = []
    second = _outbox(storage, ran, "second")
    now = Clock().now()
    with storage.session() as session:
        enqueue(session, "slow", {}, now=now)
    with storage.transaction() as connection:  # claimed by a process killed right after: never renewed
        connection.execute(update(TASKS).values(lease_until=now + timedelta(seconds=LEASE), attempts=1))
    try:
        assert second.run_due() == 0
        eventually(lambda: second.run_due() == 1, timeout=LEASE + 5, message="the dead worker's task to run")
        with storage.read() as session:
            task = session.exec(select(OutboxTask)).one()
        assert (task.status, task.attempts, ran) == ("done", 2, ["second"])
    finally:
        storage.dispose()


def _descendants(pid: int) -> list[int]:
    """The process IDs of a process's children, theirs, and so on (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def _declare(served: Served, title: str) -> int | None:
    """A signed `/incident declare` to the served bot: the number acknowledged, else None."""
    assert served.slack is not None
    reply = slash_command(served.url, served.slack, f"declare sev2 {title}", timeout=5)
    match = re.search(r"Declared incident #(\d+)", reply)
    return int(match.group(1)) if match else None


@pytest.mark.timeout(400)
def test_a_bot_killed_mid_storm_resumes_its_tasks_within_seconds_and_repeats_nothing(tmp_path, standin, postgres):
    standin.set_failure_rate(crash_drill.FAILURE_RATE, statuses=crash_drill.FAILURE_STATUSES, seed=27, retry_after=0)
    database = postgres.create_database()
    env = bot_environment(standin, database)  # OUTBOX_LEASE_SECONDS: the default
    storage = Storage(database)
    bots = [Served(env, tmp_path / "first.log", standin=standin, database_url=database)]

    def send(sig: signal.Signals) -> None:  # the whole process: gunicorn's master and its worker running the outbox
        process = bots[-1].process
        for pid in [process.pid, *_descendants(process.pid)]:
            os.kill(pid, sig)

    def kill() -> None:
        send(signal.SIGKILL)
        bots[-1].process.wait(10)

    def restart() -> None:
        bots.append(Served(env, tmp_path / "second.log", standin=standin, database_url=database))

    def freeze(frozen: bool) -> None:  # no task can end between seeing it held and the kill
        send(signal.SIGSTOP if frozen else signal.SIGCONT)

    try:
        drill = crash_drill.run(lambda title: _declare(bots[-1], title), kill, restart, storage, freeze=freeze)
        assert len(drill.acknowledged) >= 10 and drill.held, drill
        try:
            eventually(lambda: crash_drill.drained(storage) and all(
                crash_drill.set_up(standin, storage, n) for n in drill.acknowledged), timeout=180)
        except AssertionError:
            raise AssertionError(f"not set up: {crash_drill.progress(standin, storage, drill)}") from None
        for number, title in drill.acknowledged.items():
            with storage.read() as session:
                assert session.get(Incident, number).title == title
        late = {task: drill.started.get(task) for task in drill.held if drill.started.get(task, 99) > 15}
        assert not late, f"tasks the killed process held, not run again within 15 s of the restart: {late}"
        channels = crash_drill.channel_started(standin, storage, drill)
        assert all(seconds is not None and seconds <= 15 for seconds in channels.values()), channels
        assert crash_drill.duplicates(standin, storage) == {
            "channels": [], "summaries": [], "broadcasts": [], "page DMs": []}
        with storage.read() as session:  # every incident saved is one the bot took a number for
            stored = session.exec(select(Incident.id)).all()
        assert set(drill.acknowledged) <= set(stored)
    finally:
        bots[-1].stop()
        storage.dispose()


def _health(served: Served) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        connection.close()


@pytest.mark.timeout(300)
def test_postgresql_restarted_mid_storm_loses_no_acknowledged_declaration(tmp_path, standin):
    try:
        server = PostgresServer().start()
    except PostgresUnavailable:
        pytest.skip(not_installed("PostgreSQL"))
    database = server.create_database()
    storage = Storage(database)
    standin.set_limits(False)  # about the database going away, not Slack's tiers: ~60 channels in a minute
    served = Served(bot_environment(standin, database, SLACK_PACING="off"), tmp_path / "serve.log", standin=standin,
                    database_url=database)
    replies: list[tuple[str, str]] = []  # (title, reply) of every declaration sent
    done = threading.Event()
    sent = iter(range(1, 10_000))

    def sender() -> None:
        while not done.is_set():
            title = f"Restart storm {next(sent)}"
            try:
                replies.append((title, slash_command(served.url, standin, f"declare sev2 {title}", timeout=3)))
            except OSError as exc:  # no answer within Slack's 3 s: the person would see only an error
                replies.append((title, f"no reply: {exc}"))
            done.wait(0.1)

    def acknowledged() -> int:
        return sum("Declared incident #" in reply for _, reply in replies)

    senders = [threading.Thread(target=sender) for _ in range(2)]
    try:
        for thread in senders:
            thread.start()
        eventually(lambda: acknowledged() >= 5, timeout=30, message="declarations before the restart")
        server.pause()
        down = eventually(lambda: (h := _health(served))[0] == 503 and h, timeout=30, message="/healthz to say 503")
        assert down[1]["database"] == "unavailable" and down[1]["error"], down
        before = len(replies)
        eventually(lambda: len(replies) >= before + 4, timeout=30, message="declarations while the database is away")
        server.resume()
        eventually(lambda: _health(served)[0] == 200, timeout=30, message="/healthz to say 200 again")
        after = acknowledged()
        eventually(lambda: acknowledged() >= after + 5, timeout=30, message="declarations after the restart")
    finally:
        done.set()
        for thread in senders:
            thread.join(30)
    try:
        told = {int(m[1]): title for title, reply in replies if (m := re.search(r"Declared incident #(\d+)", reply))}
        refused = [title for title, reply in replies if reply == NOT_SAVED]
        others = [(title, reply) for title, reply in replies if "Declared incident #" not in reply and reply != NOT_SAVED]
        assert not others, f"a declaration neither acknowledged nor refused as not saved: {others}"
        assert refused, "no declaration was sent while the database was away"

        def every_acknowledged_one_has_its_channel() -> bool:
            with storage.read() as session:
                stored = {i.id: i for i in session.exec(select(Incident)).all()}
            return all(n in stored and stored[n].title == title and stored[n].channel_id for n, title in told.items())

        eventually(every_acknowledged_one_has_its_channel, timeout=120, message="every acknowledged incident's channel")
        with storage.read() as session:
            titles = [i.title for i in session.exec(select(Incident)).all()]
        assert not set(refused) & set(titles), "a declaration the person was told was not saved was saved"
    finally:
        assert served.stop() == 0, served.output()[-3000:]
        storage.dispose()
        server.stop()


def test_a_step_repeated_after_a_crash_finds_its_message_instead_of_posting_again(bot, standin):
    """Each posting task is put back as a crash right after its Slack call leaves it: the call
    made, its result not saved, the task claimed once already. Run again, it posts nothing."""
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
    bot.command("U0ALICE", "/incident", "note Looking at the load balancer", channel=bot.channel_of(1))
    storage = bot.rt.storage
    with storage.read() as session:
        page = session.exec(select(Page)).one()
        tasks = session.exec(select(OutboxTask).where(col(OutboxTask.kind).in_(
            ["incident.open", "incident.setup", "page.send", "incident.broadcast", "incident.post"]))).all()
    assert {t.kind for t in tasks} == {"incident.open", "incident.setup", "page.send", "incident.broadcast", "incident.post"}
    with storage.transaction() as connection:
        connection.execute(update(TASKS).where(TASKS.c.id.in_([t.id for t in tasks]))
                           .values(status="pending", attempts=1))
        connection.execute(update(Incident.__table__).values(summary_ts=None, broadcast_ts=None))
        connection.execute(update(Page.__table__).values(dm_ts=None))
    messages = {where: len(standin.messages(where)) for where in (bot.channel_of(1), "C0INCIDENTS")}
    dms = len(standin.dms(page.user))
    bot.settle()
    assert {where: len(standin.messages(where)) for where in messages} == messages
    assert len(standin.dms(page.user)) == dms
    with storage.read() as session:
        incident, page = session.get(Incident, 1), session.get(Page, page.id)
        assert all(t.status == "done" for t in session.exec(select(OutboxTask)).all())
    assert incident.summary_ts and incident.broadcast_ts and page.dm_ts
    assert len(standin.pins(bot.channel_of(1))) == 1


def test_a_channel_setup_repeated_after_a_crash_pins_its_summary_instead_of_posting_another(bot, standin):
    """incident.open put back as a crash after it queued the rest of the setup, and that rest as
    a crash right after its summary was posted: run again, one setup task runs and it pins the
    summary it finds in the channel."""
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
    channel, storage = bot.channel_of(1), bot.rt.storage
    with storage.read() as session:
        summary = session.get(Incident, 1).summary_ts
    with storage.transaction() as connection:
        for kind, payload in (("incident.open", {"incident_id": 1}), ("incident.setup", {"incident_id": 1, "fresh": True})):
            connection.execute(update(TASKS).where(TASKS.c.kind == kind)
                               .values(status="pending", attempts=1, payload=json.dumps(payload)))
        connection.execute(update(Incident.__table__).values(summary_ts=None))
    posted = len(standin.messages(channel))
    bot.settle()
    assert len(standin.messages(channel)) == posted
    with storage.read() as session:
        assert session.get(Incident, 1).summary_ts == summary
        setups = session.exec(select(OutboxTask).where(OutboxTask.kind == "incident.setup")).all()
    assert [t.status for t in setups] == ["done"]
    assert [m["ts"] for m in standin.pins(channel)] == [summary]
