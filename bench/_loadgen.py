"""The benchmarks' HTTP client, in a process of its own so that its threads never share an
interpreter lock with the Slack stand-in or the server they measure: this file run as a
script (``python bench/_loadgen.py``) reads a JSON job on standard input and writes the
results as JSON on standard output; ``run_load`` does both ends."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from _common import ROOT, SIGNING_SECRET, sign


@dataclass
class Result:
    """One request as the load generator saw it; latency is None when it failed."""

    index: int
    started: float  # seconds since the run began
    latency: float | None
    status: int
    body: str


@dataclass
class Load:
    results: list[Result]
    wall: float  # first request sent to last answer received
    began: float = 0.0  # time.time() when the load generator started its clock

    @property
    def latencies(self) -> list[float]:
        return [r.latency for r in self.results if r.latency is not None and r.status == 200]

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r.latency is None or r.status != 200)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall > 0 else float("nan")


def run_load(
    host: str,
    bodies: list[str],
    *,
    concurrency: int,
    interval: float | None = None,
    timeout: float = 120.0,
) -> Load:
    """POST signed bodies to /slack/events from a separate process.

    Closed loop (interval None): `concurrency` clients send back to back. Open loop: request i
    leaves at i * interval seconds, from a pool of `concurrency` clients.
    """
    job = {
        "host": host,
        "bodies": bodies,
        "concurrency": concurrency,
        "interval": interval,
        "timeout": timeout,
        "secret": SIGNING_SECRET,
    }
    done = subprocess.run(
        [sys.executable, __file__],
        check=False,
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-2000:]}")
    data = json.loads(done.stdout)
    return Load([Result(*r) for r in data["results"]], data["wall"], data["began"])


def _loadgen(job: dict[str, Any]) -> dict[str, Any]:
    host, port = job["host"].rsplit(":", 1)
    bodies: list[str] = job["bodies"]
    interval = job["interval"]
    results: list[list[Any]] = []
    lock = threading.Lock()
    next_index = [0]
    began, began_epoch = time.perf_counter(), time.time()
    deadline = began + job["timeout"]

    def send(index: int) -> None:
        body = bodies[index]
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, job["secret"])}
        started = time.perf_counter()
        status, text, latency = 0, "", None
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                conn.request("POST", "/slack/events", body=body.encode(), headers=headers)
                reply = conn.getresponse()
                text = reply.read().decode(errors="replace")
                latency, status = time.perf_counter() - started, reply.status
            finally:
                conn.close()
        except OSError as exc:
            text = f"{type(exc).__name__}: {exc}"
        with lock:
            results.append([index, started - began, latency, status, text[:300]])

    def client() -> None:
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= len(bodies) or time.perf_counter() > deadline:
                return
            if interval is not None:
                delay = began + index * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            send(index)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(job["concurrency"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()) + 15)
    with lock:
        finished = sorted(results)
    ends = [r[1] + (r[2] or 0) for r in finished]
    firsts = [r[1] for r in finished]
    wall = (max(ends) - min(firsts)) if finished else 0.0
    return {"results": finished, "wall": wall, "began": began_epoch}


if __name__ == "__main__":
    print(json.dumps(_loadgen(json.load(sys.stdin))))
