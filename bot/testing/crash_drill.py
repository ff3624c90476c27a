"""The crash drill of tests/test_crash_recovery.py and bench/crash_recovery.py: declarations
while Slack answers 30% of calls with 429 and 10% with 500; the process running the outbox
killed with SIGKILL once about half are acknowledged and started again at once. Then: what
the dead process held, how soon after the restart each of those tasks ran again, whether every
acknowledged declaration got its channel, and whether any visible step was done twice."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import func
from sqlmodel import col, select

from bot.models import Incident, OutboxTask, Page
from bot.standin import SlackStandIn
from bot.storage import Storage

# 40% of calls fail, three in four of them with 429: 30% 429 and 10% 500.
FAILURE_RATE, FAILURE_STATUSES = 0.4, (429, 429, 429, 500)
CHANNEL = re.compile(r"inc-(\d+)(?:-.*)?")


@dataclass
class Drill:
    acknowledged: dict[int, str] = field(default_factory=dict)  # number told -> title
    held: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # task id -> (kind, payload)
    restarted: float = 0.0  # time.time() when the new process was launched
    started: dict[int, float] = field(default_factory=dict)  # held task -> seconds after the restart
    finished: dict[int, float] = field(default_factory=dict)


def run(declare: Callable[[str], int | None], kill: Callable[[], None], restart: Callable[[], None],
        storage: Storage, *, count: int = 20, kill_after: int = 10, senders: int = 4,
        title: str = "Crash drill", freeze: Callable[[bool], None] = lambda frozen: None) -> Drill:
    """`count` declarations from `senders` threads; kill() once `kill_after` are acknowledged
    and the outbox is running a task (freeze(True) stops the bot's processes while that is
    checked, freeze(False) lets them go on), then restart() at once. A declaration refused for
    want of a listener is sent again once the bot is back, as a person would. Returns once
    every sender is done."""
    drill = Drill()
    told = threading.Condition()
    back = threading.Event()
    titles = iter(range(1, count + 1))

    def sender() -> None:
        for n in titles:
            text = f"{title} {n}"
            try:
                number = declare(text)
            except OSError:  # the process is dead: once it is back, the person tries again
                if not back.wait(120):
                    return
                try:
                    number = declare(text)
                except OSError:
                    number = None
            if number is not None:
                with told:
                    drill.acknowledged[number] = text
                    told.notify_all()

    threads = [threading.Thread(target=sender, name=f"declare-{k}") for k in range(senders)]
    for thread in threads:
        thread.start()
    with told:
        if not told.wait_for(lambda: len(drill.acknowledged) >= kill_after, timeout=120):
            raise AssertionError(f"only {len(drill.acknowledged)} declarations acknowledged")
    deadline = time.monotonic() + 30
    while True:  # the kill lands mid-task: the bot is frozen (when it can be) while its leases are read
        freeze(True)
        drill.held = held_tasks(storage)
        if drill.held or time.monotonic() > deadline:
            break
        freeze(False)
        time.sleep(0.01)
    kill()
    drill.restarted = time.time()
    watch = threading.Thread(target=_watch, args=(storage, drill), daemon=True)
    watch.start()
    restart()
    back.set()
    for thread in threads:
        thread.join(180)
    watch.join(120)
    return drill


def held_tasks(storage: Storage) -> dict[int, tuple[str, dict[str, Any]]]:
    """The pending tasks whose lease has not run out: those the dead process was running."""
    import json

    with storage.read() as session:
        rows = session.exec(select(OutboxTask).where(
            OutboxTask.status == "pending", col(OutboxTask.lease_until) > datetime.now(timezone.utc))).all()
    return {row.id: (row.kind, json.loads(row.payload)) for row in rows if row.id is not None}


def _watch(storage: Storage, drill: Drill) -> None:
    """Note when each held task was claimed again (its row changed) and when it was done."""
    ids = list(drill.held)
    if not ids:
        return
    with storage.read() as session:
        first = {t.id: (t.status, t.attempts, t.lease_until) for t in session.exec(
            select(OutboxTask).where(col(OutboxTask.id).in_(ids))).all()}
    deadline = time.monotonic() + 120
    while len(drill.finished) < len(ids) and time.monotonic() < deadline:
        try:
            with storage.read() as session:
                rows = session.exec(select(OutboxTask).where(col(OutboxTask.id).in_(ids))).all()
        except Exception:  # noqa: BLE001  (the database busy for a moment: look again)
            rows = []
        seconds = time.time() - drill.restarted
        for task in rows:
            if task.id not in drill.started and (task.status, task.attempts, task.lease_until) != first[task.id]:
                drill.started[task.id] = seconds
            if task.status != "pending" and task.id not in drill.finished:
                drill.started.setdefault(task.id, seconds)
                drill.finished[task.id] = seconds
        time.sleep(0.05)


def channel_started(standin: SlackStandIn, storage: Storage, drill: Drill) -> dict[int, float | None]:
    """For each incident whose declaration or channel task the dead process held: seconds
    from the restart to the stand-in's first call on its channel (creation included)."""
    numbers = set()
    for kind, payload in drill.held.values():
        if kind == "incident.declare":
            numbers.add(int(payload["number"]))
        elif kind in ("incident.open", "incident.setup"):
            numbers.add(int(payload["incident_id"]))
    with storage.read() as session:
        channels = {n: (i.channel_id if i else None) for n in numbers for i in [session.get(Incident, n)]}
    calls = [c for c in standin.calls if c.at >= drill.restarted]
    found: dict[int, float | None] = {}
    for number, channel_id in channels.items():
        on_it = [c.at for c in calls if (channel_id and channel_id in (c.args.get("channel"), c.args.get("channel_id")))
                 or (c.method == "conversations.create" and _number(c.args.get("name")) == number)]
        found[number] = min(on_it) - drill.restarted if on_it else None
    return found


def _number(name: Any) -> int | None:
    match = CHANNEL.fullmatch(str(name or ""))
    return int(match.group(1)) if match else None


def _step(message: dict[str, Any]) -> Any:
    return ((message.get("metadata") or {}).get("event_payload") or {}).get("step")


def _incident_of(message: dict[str, Any]) -> Any:
    return ((message.get("metadata") or {}).get("event_payload") or {}).get("incident_id")


def set_up(standin: SlackStandIn, storage: Storage, number: int) -> bool:
    """The incident is stored with its channel, topic, pinned summary, page DMs sent, and its
    declaration broadcast (INCIDENTS_CHANNEL C0INCIDENTS)."""
    with storage.read() as session:
        incident = session.get(Incident, number)
        pages = session.exec(select(Page).where(Page.incident_id == number)).all()
    if incident is None or incident.channel_id is None or incident.summary_ts is None:
        return False
    broadcast = any(_incident_of(m) == number for m in standin.messages("C0INCIDENTS"))
    return (bool(standin.topic(incident.channel_id)) and bool(standin.pins(incident.channel_id)) and broadcast
            and all(page.dm_ts for page in pages))


def drained(storage: Storage) -> bool:
    """No outbox task is pending."""
    with storage.read() as session:
        return session.exec(select(func.count()).select_from(OutboxTask).where(OutboxTask.status == "pending")).one() == 0


def duplicates(standin: SlackStandIn, storage: Storage) -> dict[str, list[int]]:
    """What was done more than once: channels per incident number, summaries per incident,
    declaration broadcasts per incident, page DMs per page."""
    channels = Counter(n for c in standin.channel_list() if (n := _number(c["name"])) is not None)
    with storage.read() as session:
        incidents = session.exec(select(Incident)).all()
        pages = session.exec(select(Page).where(col(Page.incident_id).is_not(None))).all()
    summaries = Counter(i.id for i in incidents if i.channel_id
                        for m in standin.messages(i.channel_id) if _step(m) == "summary")
    broadcasts = Counter(_incident_of(m) for m in standin.messages("C0INCIDENTS")
                         if _incident_of(m) is not None and "declared" in str(m.get("text", "")))
    page_dms = Counter(p.id for p in pages for m in standin.dms(p.user) if _step(m) == f"page-{p.id}")
    return {what: sorted(k for k, n in counted.items() if n > 1) for what, counted in
            (("channels", channels), ("summaries", summaries), ("broadcasts", broadcasts), ("page DMs", page_dms))}


def progress(standin: SlackStandIn, storage: Storage, drill: Drill) -> dict[str, Any]:
    """What is still missing: acknowledged incidents not set up, and the tasks still pending."""
    with storage.read() as session:
        pending = [(t.id, t.kind, t.payload, t.attempts, t.last_error) for t in session.exec(
            select(OutboxTask).where(OutboxTask.status != "done")).all()]
    return {"not set up": [n for n in drill.acknowledged if not set_up(standin, storage, n)], "tasks": pending}
