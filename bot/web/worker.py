"""The gunicorn worker `serve` runs: gthread with request buffering.

gunicorn's gthread worker gives a connection to one of its threads as soon as it is accepted,
and the thread then reads the request: eight sockets sending a header byte a second (or fifty
sending nothing, each waited on for 5 s) hold all eight threads, and /slack/events and
/healthz stop answering. Here the worker's event loop receives each request whole first (head,
then body by Content-Length or chunk by chunk), without a thread, as a buffering proxy such as
nginx does; only a whole request goes to a thread, which then never waits on the client. A
request not whole REQUEST_SECONDS after its connection started waiting for it is dropped (408
when part of it came), and one over the size limits is answered 413 or 431 without reading
further. Everything else is gthread's own: threads, keep-alive, graceful stop.
"""

from __future__ import annotations

import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from bot.web.limits import MAX_BODY, TOO_LARGE

REQUEST_SECONDS = 5.0  # to send a whole request: Slack's arrive at once, and must be answered in 3 s
MAX_HEAD = 64 * 1024  # request line and headers; gunicorn refuses a line over 4 KiB on its own
MAX_CHUNK_LINE = 1024
REPORT_EVERY_SECONDS = 10.0


class Refused(Exception):
    """The request cannot be taken; the answer's status line and error."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


class Arrival:
    """The bytes of one request as they arrive, and whether they make a whole request yet.
    Only framing is read (where the head ends, Content-Length, chunk sizes); gunicorn parses
    the request itself, so anything this cannot frame is handed over as soon as its head is
    whole, for gunicorn to refuse."""

    def __init__(self, deadline: float, held: bytes = b"") -> None:
        self.deadline = deadline
        self.data = bytearray(held)
        self.wants_continue = False  # Expect: 100-continue, body still to come
        self._end: int | None = None  # where the request ends, once known
        self._head_end: int | None = None
        self._chunks_at: int | None = None  # next chunk-size line, for a chunked body
        self._chunked_body = 0
        self._trailers = False

    def feed(self, data: bytes) -> bool:
        """Add bytes; True once the request is whole. Refused past the limits."""
        self.data += data
        if self._head_end is None and not self._read_head():
            return False
        if self._chunks_at is not None:
            return self._scan_chunks()
        return self._end is not None and len(self.data) >= self._end

    def _read_head(self) -> bool:
        at = self.data.find(b"\r\n\r\n")
        if at < 0:
            if len(self.data) > MAX_HEAD:
                raise Refused("431 Request Header Fields Too Large", f"the request head is over {MAX_HEAD} bytes")
            return False
        self._head_end = at + 4
        headers: dict[bytes, list[bytes]] = {}
        for line in bytes(self.data[:at]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        lengths, encodings = headers.get(b"content-length", []), headers.get(b"transfer-encoding", [])
        if encodings:
            if lengths or [e.lower() for e in encodings] != [b"chunked"]:
                self._end = self._head_end  # a framing gunicorn refuses from the head alone
            else:
                self._chunks_at = self._head_end
        elif len(lengths) == 1 and lengths[0].isdigit():
            if int(lengths[0]) > MAX_BODY:
                raise Refused("413 Content Too Large", TOO_LARGE)
            self._end = self._head_end + int(lengths[0])
        else:
            self._end = self._head_end  # no body, or a Content-Length gunicorn refuses
        body_due = self._chunks_at is not None or (self._end or 0) > len(self.data)
        self.wants_continue = body_due and headers.get(b"expect", [b""])[0].lower() == b"100-continue"
        return True

    def _scan_chunks(self) -> bool:
        """Walk the chunks received so far, from where the last look stopped; after the last
        chunk, its trailer lines up to the empty line that ends the request."""
        assert self._chunks_at is not None
        while True:
            line_end = self.data.find(b"\r\n", self._chunks_at)
            if line_end < 0:
                if len(self.data) - self._chunks_at > MAX_CHUNK_LINE:
                    raise Refused("400 Bad Request", "a chunk line is too long")
                return False
            if self._trailers:
                if line_end == self._chunks_at:
                    self._end = line_end + 2
                    return True
                self._chunks_at = line_end + 2
                continue
            size_text = bytes(self.data[self._chunks_at:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise Refused("400 Bad Request", "a chunk size is not a hexadecimal number") from None
            if self._chunked_body + size > MAX_BODY:
                raise Refused("413 Content Too Large", TOO_LARGE)
            if size == 0:
                self._trailers = True
                self._chunks_at = line_end + 2
                continue
            if len(self.data) < line_end + 2 + size + 2:
                return False
            self._chunked_body += size
            self._chunks_at = line_end + 2 + size + 2


def answer(status: str, error: str) -> bytes:
    """A complete HTTP response that closes the connection."""
    body = b'{"ok": false, "error": "' + error.encode() + b'"}'
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


class RequestBufferingWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, with each request received whole by the event loop before a thread takes it."""

    def init_process(self) -> None:
        self._arrivals: dict[Any, Arrival] = {}  # in deadline order: each waits REQUEST_SECONDS
        self._whole: dict[Any, bytes] = {}  # received requests, for the thread that takes each
        self._dropped, self._reported = 0, time.monotonic()
        super().init_process()

    def enqueue_req(self, conn: Any) -> None:
        """gthread calls this for a new connection and for a kept-alive one with bytes to read:
        wait for its request on the event loop."""
        if self.cfg.is_ssl or conn.is_http2:  # not what serve runs; gthread's own way
            super().enqueue_req(conn)
            return
        held = conn.parser.unreader.take_buffered() if conn.parser is not None else b""  # read ahead
        arrival = Arrival(time.monotonic() + REQUEST_SECONDS)
        conn.sock.setblocking(False)
        self._receive(conn, arrival, held, waiting=False)  # a request is often there already

    def _readable(self, conn: Any, _sock: Any) -> None:
        self._receive(conn, self._arrivals[conn], b"", waiting=True)

    def _receive(self, conn: Any, arrival: Arrival, data: bytes, *, waiting: bool) -> None:
        """Take what the socket holds; hand the request over once whole, else wait on the
        event loop for more (waiting: it already does)."""
        try:
            while not (data and self._fed(conn, arrival, data)):
                try:
                    data = conn.sock.recv(65536)
                except BlockingIOError:
                    if not waiting:
                        self._arrivals[conn] = arrival
                        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))
                    return
                except OSError:
                    data = b""
                if not data:  # the client went away
                    self._forget(conn)
                    return
        except Refused as refusal:
            self._forget(conn, refusal)
            return
        if waiting:
            self.poller.unregister(conn.sock)
            del self._arrivals[conn]
        self._hand_over(conn, arrival)

    def _fed(self, conn: Any, arrival: Arrival, data: bytes) -> bool:
        whole = arrival.feed(data)
        if arrival.wants_continue:  # the client waits for this before it sends the body
            arrival.wants_continue = False
            self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
        return whole

    def _hand_over(self, conn: Any, arrival: Arrival) -> None:
        self._whole[conn] = bytes(arrival.data)
        conn.data_ready = True  # gthread's handle() must not wait for data again
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        received = self._whole.pop(conn, None)
        if received is not None:
            conn.sock.setblocking(True)
            conn.init()  # the parser of a new connection (a kept-alive one keeps its own)
            conn.parser.unreader.unread(received)
        return super().handle(conn)

    def murder_pending(self) -> None:
        """Each turn of the event loop: drop the requests whose time is up."""
        super().murder_pending()
        now = time.monotonic()
        while self._arrivals:
            conn, arrival = next(iter(self._arrivals.items()))
            if arrival.deadline > now:
                break
            self._dropped += 1
            self._forget(conn, Refused("408 Request Timeout", "the request did not arrive whole in time")
                         if arrival.data else None)
        if self._dropped and now - self._reported > REPORT_EVERY_SECONDS:
            self.log.info("dropped %d connection(s) whose request did not arrive whole within %.0f s",
                          self._dropped, REQUEST_SECONDS)
            self._dropped, self._reported = 0, now

    def _forget(self, conn: Any, refusal: Refused | None = None) -> None:
        """Stop waiting for the connection's request and close it, with a refusal if given."""
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self._arrivals.pop(conn, None)
        self._refuse(conn, refusal)

    def _refuse(self, conn: Any, refusal: Refused | None) -> None:
        if refusal is not None:
            self._send(conn, answer(refusal.status, refusal.error))
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.nr_conns -= 1
        conn.close()

    @staticmethod
    def _send(conn: Any, data: bytes) -> None:
        """Best effort, never blocking the event loop: a small answer fits the socket buffer."""
        try:
            conn.sock.setblocking(False)
            conn.sock.send(data)
        except OSError:
            pass


WORKER_CLASS = f"{__name__}.{RequestBufferingWorker.__name__}"  # as gunicorn's worker_class names it
