"""The serve worker's request buffering: where a request ends, found as its bytes arrive in any
pieces, and what it refuses without reading further. (tests/test_hostile_load.py drives the
worker itself with slow and idle sockets.)"""

from __future__ import annotations

import pytest

from bot.web.limits import MAX_BODY
from bot.web.worker import MAX_HEAD, Arrival, Refused

HEAD = b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"


def arrive(*pieces: bytes) -> list[bool]:
    """Whether the request is whole after each piece."""
    arrival = Arrival(deadline=0)
    return [arrival.feed(piece) for piece in pieces]


def one_byte_at_a_time(request: bytes) -> int:
    """How many bytes it took until the request was whole."""
    arrival = Arrival(deadline=0)
    return next(i + 1 for i in range(len(request)) if arrival.feed(request[i:i + 1]))


def test_a_request_without_a_body_is_whole_at_the_end_of_its_head():
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    assert one_byte_at_a_time(request) == len(request)


def test_a_body_with_a_content_length_is_whole_at_its_last_byte():
    request = HEAD + b"Content-Length: 11\r\n\r\nhello world"
    assert one_byte_at_a_time(request) == len(request)
    assert arrive(HEAD + b"Content-Length: 11\r\n\r\nhello", b" world") == [False, True]


def test_a_chunked_body_is_whole_after_its_last_chunk_and_trailers():
    request = HEAD + b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    assert one_byte_at_a_time(request) == len(request)
    assert arrive(HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\n", b"\r\n") == [False, True]


def test_a_framing_only_gunicorn_can_judge_is_handed_over_with_its_head():
    for headers in (b"Content-Length: 5\r\nContent-Length: 6\r\n", b"Content-Length: -1\r\n",
                    b"Transfer-Encoding: gzip\r\n", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"):
        assert arrive(HEAD + headers + b"\r\n") == [True]


@pytest.mark.parametrize("request_bytes, status", [
    (HEAD + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode(), "413"),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + f"{MAX_BODY:x}\r\n".encode() + b"x" * MAX_BODY + b"\r\n1\r\n", "413"),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\nfive\r\n", "400"),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 2000, "400"),
    (HEAD + b"X-Padding: " + b"a" * MAX_HEAD, "431"),
])
def test_what_is_over_the_limits_is_refused_before_the_rest_arrives(request_bytes, status):
    with pytest.raises(Refused) as refused:
        Arrival(deadline=0).feed(request_bytes)
    assert refused.value.status.startswith(status)


def test_a_client_that_expects_100_continue_is_told_to_go_on_once_its_head_is_whole():
    arrival = Arrival(deadline=0)
    assert arrival.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n") is False
    assert arrival.wants_continue
    without_body = Arrival(deadline=0)
    without_body.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
    assert not without_body.wants_continue
