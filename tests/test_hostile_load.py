"""Hostile load against the real `oncall-bot serve`, on both databases: slow and idle connections
that would hold the server's threads, and alert storms that would hold its write lock. While
they last, signed commands and /healthz must still be answered: within 1 s while sockets
trickle, and declarations within Slack's 3 s (/healthz 1 s) through ten notifications of
10,000 alerts at once."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Self

import pytest

from tests.conftest import ALERT_AUTH, sign
from tests.serving import healthz_seconds, post, served_bot, signed

SLOW_AND_IDLE = 50
ATTACK_SECONDS = 12.0  # past the 5 s a request has to arrive in, so dropped sockets come back


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    yield from served_bot(request, tmp_path_factory)


class Attacker:
    """SLOW_AND_IDLE sockets kept open against the server: half send nothing, half send a
    request head one byte a second; a socket the server drops is opened again, and the seconds
    each one lived are kept."""

    HEAD = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 200

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.lifetimes: list[tuple[str, float]] = []
        self.threads = [threading.Thread(target=self._hold, args=("idle" if i % 2 else "slow",), daemon=True)
                        for i in range(SLOW_AND_IDLE)]

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)

    def _hold(self, kind: str) -> None:
        while not self.stop.is_set():
            opened = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
                    connection.settimeout(1.0)
                    for i in range(10_000):
                        if self.stop.is_set():
                            return
                        if kind == "slow":
                            connection.sendall(self.HEAD[i % len(self.HEAD):][:1])
                        try:
                            if connection.recv(4096) == b"":
                                break  # the server closed it
                        except TimeoutError:
                            pass  # still open: one more byte (or one more second of nothing)
            except OSError:
                pass  # reset or refused: what a dropped socket looks like too
            self.lifetimes.append((kind, time.monotonic() - opened))


def command_seconds(served, text: str, request_id: str) -> float:
    body = urllib.parse.urlencode({
        "command": "/incident", "text": text, "user_id": "U0ALICE", "channel_id": "C0GENERAL", "team_id": "T0STANDIN",
        "trigger_id": "t", "response_url": served.slack.response_url(),
    })
    started = time.monotonic()
    status, reply = signed(served, body, request_id)
    assert status == 200, reply
    return time.monotonic() - started


def test_slow_and_idle_connections_never_hold_the_server(served):
    acks: list[float] = []
    health: list[float] = []
    with Attacker(served.port) as attack:
        time.sleep(0.5)  # every socket open
        deadline = time.monotonic() + ATTACK_SECONDS
        n = 0
        while time.monotonic() < deadline:
            n += 1
            acks.append(command_seconds(served, f"declare sev3 Under attack {n} {time.monotonic_ns()}", f"attack-{n}"))
            health.append(healthz_seconds(served))
            time.sleep(0.2)
    assert max(acks) < 1.0 and max(health) < 1.0, (max(acks), max(health))
    dropped = [seconds for kind, seconds in attack.lifetimes if kind == "slow"]
    assert dropped and max(dropped) < 8, attack.lifetimes  # a request not whole within 5 s is dropped
    assert "Traceback" not in served.output()


def test_a_request_head_or_body_that_trickles_in_is_dropped_after_5_seconds(served):
    body = b'{"type": "url_verification", "challenge": "x"}'
    head = (b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + b"".join(f"{k}: {v}\r\n".encode() for k, v in sign(body).items())
            + f"Content-Length: {len(body)}\r\n\r\n".encode())
    for request in (head[:-2], head + body[:-1]):  # all but the end of the head; all but the last byte
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as connection:
            started = time.monotonic()
            connection.sendall(request)
            answer = connection.recv(4096)
            assert time.monotonic() - started < 7
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer


def storm_notification(group: str) -> bytes:
    alerts = [{"status": "firing", "labels": {"alertname": "DiskFull", "severity": "critical", "disk": str(i)}}
              for i in range(10_000)]
    return json.dumps({"version": "4", "groupKey": group, "status": "firing", "receiver": "bot", "alerts": alerts},
                      separators=(",", ":")).encode()


def test_ten_parallel_notifications_of_10000_alerts_leave_declarations_answered(served):
    bodies = [storm_notification(f"storm-{time.monotonic_ns()}-{i}") for i in range(10)]
    answers: list[dict] = []
    acks: list[float] = []
    health: list[float] = []

    def alert_storm() -> None:
        with ThreadPoolExecutor(10) as pool:
            for _ in ("new", "repeated"):
                for status, text in pool.map(lambda body: post(served, "/alerts/alertmanager", body,
                                                                {"Content-Type": "application/json", **ALERT_AUTH},
                                                                timeout=30), bodies):
                    assert status == 200, text
                    answers.append(json.loads(text))

    storm = threading.Thread(target=alert_storm)
    storm.start()
    n = 0
    while storm.is_alive() or n < 10:
        n += 1
        acks.append(command_seconds(served, f"declare sev3 During the storm {n} {time.monotonic_ns()}", f"storm-{n}"))
        health.append(healthz_seconds(served))
        time.sleep(0.1)
    storm.join()
    assert max(acks) < 3.0 and max(health) < 1.0, (max(acks), max(health))
    assert [a["action"] for a in answers] == ["declared"] * 10 + ["duplicate"] * 10
    assert "Traceback" not in served.output()
