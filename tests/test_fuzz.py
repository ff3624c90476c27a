"""Hostile input, generated: every command parser, signed slash commands, raw bodies on the Slack
endpoint, and random paths and methods. Never a 5xx, never a traceback to the user, and a
command the parser refuses writes nothing."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import select

from bot.models import AwayRecord, Incident, OverrideRecord, TimelineEntry
from bot.slack.commands import UsageError, parse_incident, parse_oncall
from bot.slack.signing import signed_headers
from tests.conftest import SIGNING_SECRET

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE = st.sampled_from(
    [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "@here",
        "<!subteam^S0PAYONCALL>",
        "{{ 7*7 }}",
        "{% for x in y %}",
        "{{ ''.__class__.__mro__ }}",
        "%00",
        "\x00",
        "\x07",
        "\x1b[2J",
        "\u202e",
        "\ufeff",
        "\u200b",
        "'; DROP TABLE incident; --",
        "<@U0BOB|bob>",
        "<@U0NOBODY>",
        "<@>",
        "<@U0BOB",
        "<#C0GENERAL|general>",
        "<https://x.test|x>",
        "sev",
        "sev0",
        "sev-1",
        "sev2",
        "SEV 1",
        "²",
        "٣",
        "9" * 5000,
        "1" * 12,
        "-1",
        "0",
        "2026-11-24T09:00",
        "2026-13-45T99:99",
        "2026-11-24T09:00+25:00",
        "9999-12-31T23:59+14:00",
        "0001-01-01T00:00-12:00",
        "payments",
        "../../etc/passwd",
        "remove",
        "\r\n",
        "\t",
        "🔥",
        "é",
        "日本語",
        "&amp;",
        "&lt;script&gt;",
        "\\",
        '"',
        "'",
    ]
)
INCIDENT_VERBS = [
    "declare",
    "sev",
    "status",
    "note",
    "commander",
    "page",
    "action",
    "timeline",
    "resolve",
    "postmortem",
    "list",
    "help",
    "DECLARE",
    "declare sev1",
    "declare sev9",
]
ONCALL_VERBS = [
    "",
    "me",
    "help",
    "next",
    "schedule",
    "override",
    "override remove",
    "swap",
    "away",
    "away remove",
    "payments",
    "payments-secondary",
    "nope",
]

_controls = st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=5)
_word = st.one_of(HOSTILE, _controls, st.text(max_size=30))
_words = st.lists(_word, max_size=6).map(" ".join)
_huge = st.builds(
    lambda piece, times: (piece * times)[:10_000],
    st.text(min_size=1, max_size=20),
    st.integers(100, 2000),
)


def _after(verbs: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=200),
        _words,
        st.builds(
            lambda verb, rest: f"{verb} {rest}",
            st.sampled_from(verbs),
            st.one_of(_words, _huge, st.text(max_size=80)),
        ),
        _huge,
    )


INCIDENT_TEXT = _after(INCIDENT_VERBS)
ONCALL_TEXT = _after(ONCALL_VERBS)


@FUZZ
@given(INCIDENT_TEXT)
@example("sev ²")  # str.isdigit says yes, int() says no
@example("sev 1" + "0" * 5000)  # int() refuses over 4300 digits
def test_the_incident_parser_returns_a_command_or_a_usage_error(text):
    try:
        parse_incident(text)
    except UsageError as exc:
        assert str(exc)


@FUZZ
@given(ONCALL_TEXT)
@example("schedule payments ³")
@example("override remove " + "9" * 5000)
@example("away 0001-01-01 9999-12-31T23:59+23:59")  # beyond what UTC conversion can hold
def test_the_oncall_parser_returns_a_command_or_a_usage_error(text):
    try:
        parse_oncall(text)
    except UsageError as exc:
        assert str(exc)


def refused_by_parser(command: str, text: str) -> bool:
    try:
        (parse_incident if command == "/incident" else parse_oncall)(text)
    except UsageError:
        return True
    return False


def rows(bot) -> tuple[int, int, int]:
    with bot.rt.storage.read() as session:
        return tuple(  # type: ignore[return-value]
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Incident, TimelineEntry, OverrideRecord, AwayRecord)
        )


def no_traceback(text: str) -> bool:
    return "Traceback" not in text and 'File "' not in text and "internal error" not in text.lower()


def test_hostile_slash_commands_never_fail_and_refused_ones_write_nothing(bot, standin):
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
    incident_channel = bot.channel_of(1)

    @FUZZ
    @given(
        st.one_of(
            st.tuples(st.just("/incident"), INCIDENT_TEXT),
            st.tuples(st.just("/oncall"), ONCALL_TEXT),
        ),
        st.sampled_from(["C0GENERAL", incident_channel]),
        st.sampled_from(["U0ALICE", "U0MALLORY"]),
    )
    @example(
        ("/incident", "declare sev2 a\x00b"), "C0GENERAL", "U0ALICE"
    )  # PostgreSQL text refuses NUL
    @example(("/incident", "note \x00"), incident_channel, "U0ALICE")
    @example(("/incident", "sev ²"), incident_channel, "U0ALICE")
    @example(("/oncall", "override remove 99999999999999999999"), "C0GENERAL", "U0ALICE")
    @example(("/oncall", "away 9000-12-31 9000-12-31 Pacific/Kiritimati"), "C0GENERAL", "U0ALICE")
    def check(command_and_text, channel, user):
        command, text = command_and_text
        refused = refused_by_parser(command, text)
        before = rows(bot)
        seen = len(standin.ephemerals())
        reply = bot.command(user, command, text, channel=channel)
        assert reply.status < 500, (command, text, reply.body)
        assert no_traceback(reply.body), reply.body
        for later in standin.ephemerals()[seen:]:  # /oncall answers through response_url
            assert no_traceback(json.dumps(later)), later
        if refused:
            assert rows(bot) == before, (command, text)

    check()


def post_raw(
    bot, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> int:
    """Any method, any path, any bytes: the status the app answers."""
    host, port = bot.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        reply.read()
        return reply.status
    finally:
        connection.close()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
# Shapes Slack really sends, with hostile values, so the body gets past parsing to the listeners.
_slack_json = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "event_callback",
                "url_verification",
                "block_actions",
                "view_submission",
                "app_rate_limited",
            ]
        )
    },
    optional={
        "event": st.fixed_dictionaries(
            {
                "type": st.sampled_from(
                    ["reaction_added", "member_joined_channel", "app_home_opened", "message"]
                )
            },
            optional={"user": _json, "channel": _json, "reaction": _json, "item": _json},
        ),
        "event_id": st.text(max_size=20),
        "challenge": _json,
        "team_id": _json,
        "user": _json,
        "actions": _json,
        "view": _json,
    },
)
_bodies = st.one_of(
    st.binary(max_size=2000),
    _json.map(lambda v: json.dumps(v).encode()),
    _slack_json.map(lambda v: json.dumps(v).encode()),
    _slack_json.map(lambda v: urllib.parse.urlencode({"payload": json.dumps(v)}).encode()),
    st.dictionaries(
        st.sampled_from(
            ["command", "text", "user_id", "channel_id", "payload", "trigger_id", "ssl_check"]
        ),
        st.text(max_size=50),
        max_size=6,
    ).map(lambda d: urllib.parse.urlencode(d).encode()),
)
_content_types = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "",
        "application/json; charset=latin-1",
    ]
)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_random_bodies_on_the_slack_endpoint_never_fail(bot, signed):
    @FUZZ
    @given(_bodies, _content_types, st.sampled_from([None, "1", "x"]))
    @example(b"\x00", "application/json", None)  # not JSON: Bolt parses before verifying
    @example(b"null", "application/json", None)  # JSON, but not an object
    @example(b'{"type":"event_callback","event":{"type":"member_joined_channel"}}', "application/json", None)
    @example(b'{"type": "block_actions", "actions": null}', "application/json", None)
    @example(b'{"type": "view_submission", "view": null}', "application/json", None)
    def check(body, content_type, retry):
        headers = {"Content-Type": content_type} if content_type else {}
        if signed and _utf8(body):  # other bytes are refused before Bolt reads a signature
            headers.update(signed_headers(SIGNING_SECRET, body))
        if retry is not None:
            headers["X-Slack-Retry-Num"] = retry
        status = post_raw(bot, "POST", "/slack/events", body, headers)
        assert status < 500, (body[:200], content_type, status)
        bot.settle()

    check()


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_segment = st.text(min_size=1, max_size=30).map(lambda s: urllib.parse.quote(s, safe=""))
_paths = st.one_of(
    st.lists(_segment, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts)),
    st.sampled_from(
        [
            "/",
            "/metrics",
            "/healthz",
            "/slack/events",
            "/ical/payments.ics",
            "/ical/.ics",
            "/ical/nope.ics?user=%00",
            "/alerts/alertmanager",
            "/alerts/webhook",
            "/postmortems/1",
            "/postmortems/0",
            "/postmortems/99999999999999999999999",
            "/postmortems/-1",
            "/ical/%2e%2e.ics",
        ]
    ),
    st.builds(
        lambda p, q: f"{p}?{q}",
        st.sampled_from(["/ical/payments.ics", "/metrics", "/healthz"]),
        st.text(max_size=40).map(lambda s: urllib.parse.quote(s, safe="=&")),
    ),
)


def test_random_paths_and_methods_never_fail(bot):
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")

    @FUZZ
    @given(
        st.sampled_from(
            ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FROB"]
        ),
        _paths,
        st.binary(max_size=300),
    )
    @example("GET", "/postmortems/99999999999999999999999", b"")  # overflowed the id column
    def check(method, path, body):
        status = post_raw(
            bot,
            method,
            path,
            body if method not in ("GET", "HEAD") else b"",
            {"Content-Type": "application/json"},
        )
        assert status < 500, (method, path, status)

    check()
