"""The clock's outbox lets the web process answer Slack first while requests queue there."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import ExitStack

from conftest import BOT_TOKEN, START

from bot.clock import ManualClock
from bot.config import load_settings
from bot.in_flight import _SLOT, RequestsInFlight
from bot.slack.client import make_client
from bot.wiring import build_runtime


def test_the_clock_waits_while_two_requests_are_in_flight_and_never_longer_than_its_bound(tmp_path):
    web, clock = RequestsInFlight(tmp_path / "note"), RequestsInFlight(tmp_path / "note")  # two processes
    assert clock.wait_until_quiet() < 0.01
    with web.answering():
        assert not clock.busy()  # one request at a time: declarations one by one wait for nothing
        with web.answering():
            assert clock.busy()
            waited = clock.wait_until_quiet()
            assert RequestsInFlight.MAX_WAIT_SECONDS <= waited < RequestsInFlight.MAX_WAIT_SECONDS + 0.5
    assert not clock.busy()
    with ExitStack() as requests:
        for _ in range(3):
            requests.enter_context(web.answering())
        assert clock.busy()
        time.sleep(RequestsInFlight.STALE_NS / 1e9 + 0.01)  # quiet past STALE_NS, as a web process that died
        assert not clock.busy()  # a web process that stopped mid-request holds nothing back


def test_requests_in_flight_are_counted_over_every_web_process(tmp_path):
    """gunicorn with two workers: one request in each is two in flight. A worker forked from a
    process that already noted (gunicorn's preload) takes a slot of its own."""
    web, clock = RequestsInFlight(tmp_path / "note"), RequestsInFlight(tmp_path / "note")
    with web.answering():
        assert clock.in_flight() == 1
    ready_read, ready_write = os.pipe()
    done_read, done_write = os.pipe()
    child = os.fork()
    if child == 0:  # the second worker
        try:
            with web.answering():
                os.write(ready_write, b"1")
                os.read(done_read, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_read, 1) == b"1"
        assert clock.in_flight() == 1 and not clock.busy()
        with web.answering():
            assert clock.in_flight() == 2 and clock.busy()
    finally:
        os.write(done_write, b"1")
        os.waitpid(child, 0)
    assert clock.in_flight() == 0 and not clock.busy()


def test_a_web_process_beyond_the_slots_goes_unnoted_until_a_slot_goes_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(RequestsInFlight, "SLOTS", 2)
    monkeypatch.setattr(RequestsInFlight, "STALE_NS", 200_000_000)
    first, second, third = (RequestsInFlight(tmp_path / "note") for _ in range(3))  # three processes
    clock = RequestsInFlight(tmp_path / "note")
    with first.answering(), second.answering(), third.answering():
        assert clock.in_flight() == 2  # the third found no slot: it answers all the same
    time.sleep(0.25)  # first and second went quiet long enough for their notes to go stale
    with third.answering():
        assert clock.in_flight() == 1
        with second.answering(), first.answering():  # second kept its slot; first finds none now
            assert clock.in_flight() == 2


def test_a_web_process_with_a_slot_notes_its_requests_while_another_takes_the_file_lock(tmp_path):
    """Only taking a slot needs the file lock: a worker that has one notes each request without
    it (no system call on the way of an acknowledgement), so a worker busy taking a slot never
    holds the others' requests up."""
    web, clock = RequestsInFlight(tmp_path / "note"), RequestsInFlight(tmp_path / "note")
    with web.answering():
        pass  # the first request takes the slot, under the lock
    other = os.open(tmp_path / "note", os.O_RDWR)  # another worker, in the middle of taking one
    fcntl.flock(other, fcntl.LOCK_EX)
    seen = []

    def answer() -> None:
        with web.answering():
            seen.append(clock.in_flight())

    try:
        request = threading.Thread(target=answer, daemon=True)
        request.start()
        request.join(2)
        assert seen == [1]
        newcomer = RequestsInFlight(tmp_path / "note")  # one without a slot waits for the lock...
        entered = newcomer.answering()  # kept, so it stays entered
        late = threading.Thread(target=entered.__enter__, daemon=True)
        late.start()
        late.join(0.2)
        assert late.is_alive() and clock.in_flight() == 0
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    late.join(2)
    assert clock.in_flight() == 1  # ...and takes its slot once the lock is free


def test_the_note_is_shared_by_the_processes_of_one_installation_only(tmp_path):
    sqlite = RequestsInFlight.of(f"sqlite:///{tmp_path / 'bot.db'}")
    assert sqlite is not None and sqlite.path == tmp_path / "bot.db-in-flight"
    assert RequestsInFlight.of("sqlite://") is None and RequestsInFlight.of("sqlite:///:memory:") is None
    one = RequestsInFlight.of("postgresql://bot:secret@db.example/oncall")
    same = RequestsInFlight.of("postgresql://bot:other-secret@db.example/oncall")
    other = RequestsInFlight.of("postgresql://bot:secret@db.example/staging")
    assert one is not None and same is not None and other is not None
    assert one.path == same.path != other.path and "secret" not in str(one.path)


def test_the_clock_outbox_holds_back_while_acknowledgements_queue_and_then_does_the_work(bot, settings_env, standin):
    """Web and clock as the Procfile runs them: the web app notes each signed request it
    answers, and the clock's outbox (background) waits while two or more are in flight."""
    settings = load_settings(settings_env)
    client = make_client(token=BOT_TOKEN, base_url=standin.api_url, retries=3)
    clock = build_runtime(settings, client=client, clock=ManualClock(START), manual=True,
                          outbox_base_delay=0, background=True)
    try:
        assert bot.rt.outbox.yield_to is None  # the web process's own outbox never waits
        assert clock.in_flight is not None and clock.outbox.yield_to == clock.in_flight.wait_until_quiet
        noted_before = time.monotonic_ns()
        reply = bot.command("U0ALICE", "/incident", "declare sev2 Checkout is down", settle=False)
        assert reply.status == 200 and "Declared incident #1" in reply.text
        bot.executor.wait_idle()
        web_note = bot.rt.in_flight
        assert web_note is not None and web_note.path == clock.in_flight.path
        assert web_note._in_flight == 0 and not clock.in_flight.busy()
        assert noted_before <= _noted_at(clock.in_flight) <= time.monotonic_ns()

        with web_note.answering(), web_note.answering():  # acknowledgements queuing in web
            ran = clock.outbox.run_due()
        assert ran >= 1 and clock.outbox.yielded_seconds >= ran * RequestsInFlight.MAX_WAIT_SECONDS * 0.9
        clock.outbox.drain()
        assert bot.channel_of(1) in {channel["id"] for channel in standin.channel_list()}
    finally:
        clock.storage.dispose()


def _noted_at(note: RequestsInFlight) -> int:
    """When a web process last took or finished a request (the latest note in a taken slot)."""
    return max(noted_at for token, noted_at, _ in _SLOT.iter_unpack(note._shared) if token)
