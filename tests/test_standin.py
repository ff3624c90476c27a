"""The Slack stand-in, driven over HTTP by a real slack_sdk WebClient."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from bot.standin import SlackStandIn, render

TOKEN = "xoxb-standin"
HEADER = {"type": "header", "text": {"type": "plain_text", "text": ":rotating_light: SEV2"}}
ACK = {
    "type": "actions",
    "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Ack"}, "action_id": "a"}
    ],
}


@pytest.fixture
def slack():
    standin = SlackStandIn(bot_token=TOKEN, bot_user_id="UBOT", team_id="T0STANDIN").start()
    standin.add_user("U0ALICE", "alice", tz="America/Los_Angeles", email="alice@example.com")
    standin.add_user("U0BOB", "bob", tz="Europe/London", real_name="Bob B")
    yield standin
    standin.stop()


@pytest.fixture
def client(slack):
    return WebClient(token=TOKEN, base_url=slack.api_url)


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(SlackApiError) as info:
        call(*args, **kwargs)
    return info.value.response["error"]


def post(url: str, body: bytes, content_type: str, token: str | None = None):
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def post_json(url: str, payload: dict):
    return post(url, json.dumps(payload).encode(), "application/json")


def new_incident_channel(client, name="inc-1-checkout-down") -> str:
    channel = client.conversations_create(name=name)["channel"]["id"]
    client.conversations_invite(channel=channel, users="U0ALICE,U0BOB")
    return channel


# ------------------------------------------------------------------ channels
def test_created_channel_has_slack_shape_and_the_bot_as_member(slack, client):
    channel = client.conversations_create(name="inc-1-checkout-down")["channel"]
    assert channel["id"].startswith("C") and channel["name"] == "inc-1-checkout-down"
    assert channel["is_channel"] and channel["is_member"] and not channel["is_private"]
    assert slack.channel_by_name("inc-1-checkout-down")["id"] == channel["id"]
    assert slack.members(channel["id"]) == ["UBOT"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "invalid_name_required"),
        ("x" * 81, "invalid_name_maxlength"),
        ("Inc-1", "invalid_name_specials"),
        ("inc 1", "invalid_name_specials"),
        ("inc.1", "invalid_name_specials"),
        ("---", "invalid_name_punctuation"),
    ],
)
def test_channel_names_are_validated_like_slack(client, name, error):
    assert error_of(client.conversations_create, name=name) == error


def test_taken_channel_name_is_rejected(slack, client):
    slack.add_channel("general")
    assert error_of(client.conversations_create, name="general") == "name_taken"
    client.conversations_create(name="x" * 80)  # 80 is still allowed


def test_invite_reports_slack_errors(slack, client):
    channel = new_incident_channel(client)
    assert set(slack.members(channel)) == {"UBOT", "U0ALICE", "U0BOB"}
    with pytest.raises(SlackApiError) as info:
        client.conversations_invite(channel=channel, users="U0ALICE")
    assert info.value.response["error"] == "already_in_channel"
    assert info.value.response["errors"] == [
        {"user": "U0ALICE", "ok": False, "error": "already_in_channel"}
    ]
    invite = client.conversations_invite
    assert error_of(invite, channel=channel, users="U0NOBODY") == "user_not_found"
    assert error_of(invite, channel=channel, users="UBOT") == "cant_invite_self"
    assert error_of(invite, channel="C0MISSING", users="U0ALICE") == "channel_not_found"
    general = slack.add_channel("general")
    assert error_of(invite, channel=general, users="U0ALICE") == "not_in_channel"


def test_bot_must_join_a_channel_it_did_not_create_before_posting(slack, client):
    general = slack.add_channel("general", members=["U0ALICE"])
    assert error_of(client.chat_postMessage, channel=general, text="hi") == "not_in_channel"
    client.conversations_join(channel=general)
    client.chat_postMessage(channel="#general", text="hi")  # names work too
    assert [m["text"] for m in slack.messages(general)] == ["hi"]


def test_topic_longer_than_250_characters_is_too_long(slack, client):
    channel = new_incident_channel(client)
    assert error_of(client.conversations_setTopic, channel=channel, topic="x" * 251) == "too_long"
    client.conversations_setTopic(channel=channel, topic="SEV2 | IC: @alice")
    assert slack.topic(channel) == "SEV2 | IC: @alice"
    assert (
        client.conversations_info(channel=channel)["channel"]["topic"]["value"]
        == "SEV2 | IC: @alice"
    )


# ------------------------------------------------------------------ messages
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_needs_content_and_an_existing_channel(client):
    channel = new_incident_channel(client)
    assert error_of(client.chat_postMessage, channel=channel) == "no_text"
    assert error_of(client.chat_postMessage, channel="C0NOPE", text="x") == "channel_not_found"
    too_long_header = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    err = error_of(client.chat_postMessage, channel=channel, text="x", blocks=[too_long_header])
    assert err == "invalid_blocks"


def test_message_ts_values_are_unique_and_increasing_under_concurrency(slack, client):
    channel = new_incident_channel(client)

    def burst():
        for i in range(10):
            client.chat_postMessage(channel=channel, text=str(i))

    threads = [threading.Thread(target=burst) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps = [m["ts"] for m in slack.messages(channel)]
    assert len(stamps) == len(set(stamps)) == 50
    assert stamps == sorted(stamps, key=float)


def test_posting_to_a_user_id_lands_in_the_bots_dm(slack, client):
    resp = client.chat_postMessage(channel="U0BOB", text="You are on call")
    assert resp["channel"].startswith("D")
    assert resp["message"]["user"] == "UBOT" and resp["message"]["text"] == "You are on call"
    opened = client.conversations_open(users="U0BOB")
    assert opened["channel"]["id"] == resp["channel"] and opened["already_open"]
    assert [m["text"] for m in slack.dms("U0BOB")] == ["You are on call"]
    assert slack.dms("U0ALICE") == []


def test_thread_replies_stay_out_of_history_and_count_on_the_parent(client):
    channel = new_incident_channel(client)
    parent = client.chat_postMessage(channel=channel, text="timeline")["ts"]
    client.chat_postMessage(channel=channel, text="12:01 paged", thread_ts=parent)
    history = client.conversations_history(channel=channel)["messages"]
    assert [m["text"] for m in history] == ["timeline"]
    assert history[0]["reply_count"] == 1
    link = client.chat_getPermalink(channel=channel, message_ts=parent)["permalink"]
    assert link.endswith("/p" + parent.replace(".", ""))


def test_update_changes_the_message_in_place(slack, client):
    channel = new_incident_channel(client)
    ts = client.chat_postMessage(channel=channel, text="SEV2", blocks=[HEADER])["ts"]
    client.chat_update(channel=channel, ts=ts, text="SEV1")
    assert slack.messages(channel)[0]["text"] == "SEV1"
    assert slack.messages(channel)[0]["blocks"] == [HEADER]  # omitted blocks are kept
    assert (
        error_of(client.chat_update, channel=channel, ts="1.000001", text="x")
        == "message_not_found"
    )


def test_ephemeral_needs_the_user_in_the_channel(slack, client):
    channel = client.conversations_create(name="inc-2")["channel"]["id"]
    post_ephemeral = client.chat_postEphemeral
    assert (
        error_of(post_ephemeral, channel=channel, user="U0ALICE", text="x") == "user_not_in_channel"
    )
    client.conversations_invite(channel=channel, users="U0ALICE")
    assert post_ephemeral(channel=channel, user="U0ALICE", text="psst")["message_ts"]
    assert [e["text"] for e in slack.ephemerals("U0ALICE")] == ["psst"]
    assert slack.messages(channel) == []


def test_response_url_records_ephemeral_and_in_channel_replies(slack, client):
    channel = new_incident_channel(client)
    url = slack.response_url(name="incident", channel_id=channel, user_id="U0ALICE")
    assert post_json(url, {"text": "Only you see this"}) == (200, "ok")
    assert post_json(url, {"text": "Declared", "response_type": "in_channel"}) == (200, "ok")
    assert [e["text"] for e in slack.ephemerals("U0ALICE")] == ["Only you see this"]
    assert [m["text"] for m in slack.messages(channel)] == ["Declared"]
    assert post_json(slack.response_url(), {}) == (400, "no_text")
    assert post_json(url.rsplit("/", 1)[0] + "/nope", {"text": "x"})[0] == 404


def test_response_url_can_replace_and_delete_the_original_message(slack, client):
    channel = new_incident_channel(client)
    ts = client.chat_postMessage(channel=channel, blocks=[HEADER, ACK], text="SEV2")["ts"]
    url = slack.response_url(channel_id=channel, user_id="U0ALICE", message_ts=ts)
    post_json(url, {"replace_original": True, "text": "Acked by <@U0ALICE>"})
    assert slack.messages(channel)[0]["text"] == "Acked by <@U0ALICE>"
    post_json(url, {"delete_original": True})
    assert slack.messages(channel) == []


def test_pins_and_reactions(slack, client):
    channel = new_incident_channel(client)
    ts = client.chat_postMessage(channel=channel, text="Incident summary")["ts"]
    client.pins_add(channel=channel, timestamp=ts)
    assert error_of(client.pins_add, channel=channel, timestamp=ts) == "already_pinned"
    assert error_of(client.pins_add, channel=channel, timestamp="1.000001") == "message_not_found"
    assert [m["text"] for m in slack.pins(channel)] == ["Incident summary"]
    client.reactions_add(channel=channel, timestamp=ts, name="eyes")
    assert (
        error_of(client.reactions_add, channel=channel, timestamp=ts, name="eyes")
        == "already_reacted"
    )
    assert slack.messages(channel)[0]["reactions"] == [
        {"name": "eyes", "users": ["UBOT"], "count": 1}
    ]


# --------------------------------------------------------------------- files
def test_upload_flow_end_to_end(slack, client):
    channel = new_incident_channel(client)
    content = b"# Postmortem INC-1\n\nRoot cause: expired cert\n"
    got = client.files_getUploadURLExternal(filename="postmortem-inc-1.md", length=len(content))
    assert got["upload_url"].startswith(slack.base_url) and got["file_id"].startswith("F")
    assert post(got["upload_url"], content, "application/octet-stream") == (
        200,
        f"OK - {len(content)}",
    )
    done = client.files_completeUploadExternal(
        files=[{"id": got["file_id"], "title": "Postmortem INC-1"}],
        channel_id=channel,
        initial_comment="Draft postmortem",
    )
    assert (
        done["files"][0]["id"] == got["file_id"] and done["files"][0]["title"] == "Postmortem INC-1"
    )
    [message] = slack.messages(channel)
    assert message["text"] == "Draft postmortem"
    assert message["files"][0]["name"] == "postmortem-inc-1.md"
    [stored] = slack.files()
    assert stored["content"] == content and stored["channels"] == [channel]


def test_multipart_uploads_and_files_upload_v2_both_work(slack, client):
    channel = new_incident_channel(client)
    got = client.files_getUploadURLExternal(filename="a.txt", length=5)
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--XX--\r\n"
    )
    assert post(got["upload_url"], body, "multipart/form-data; boundary=XX")[0] == 200
    client.files_completeUploadExternal(files=[{"id": got["file_id"]}], channel_id=channel)
    client.files_upload_v2(channel=channel, content="timeline", filename="timeline.txt")
    assert sorted(f["content"] for f in slack.files()) == [b"hello", b"timeline"]


def test_completing_an_upload_needs_the_bytes_and_channel_membership(slack, client):
    got = client.files_getUploadURLExternal(filename="a.txt", length=1)
    complete = client.files_completeUploadExternal
    assert error_of(complete, files=[{"id": got["file_id"]}]) == "file_not_found"
    post(got["upload_url"], b"x", "application/octet-stream")
    general = slack.add_channel("general")
    assert (
        error_of(complete, files=[{"id": got["file_id"]}], channel_id=general) == "not_in_channel"
    )
    assert (
        error_of(complete, files=[{"id": got["file_id"]}], channel_id="U0ALICE")
        == "invalid_arguments"
    )


# -------------------------------------------------------------- users, groups
def test_users_info_carries_timezone_and_email(client):
    alice = client.users_info(user="U0ALICE")["user"]
    assert alice["tz"] == "America/Los_Angeles" and alice["tz_offset"] in (-28800, -25200)
    assert alice["tz_label"] in ("Pacific Standard Time", "Pacific Daylight Time")
    assert alice["profile"]["email"] == "alice@example.com" and alice["name"] == "alice"
    assert client.users_info(user="U0BOB")["user"]["real_name"] == "Bob B"
    assert error_of(client.users_info, user="U0NOBODY") == "user_not_found"


def test_lookup_by_email(client):
    assert client.users_lookupByEmail(email="ALICE@example.com")["user"]["id"] == "U0ALICE"
    assert error_of(client.users_lookupByEmail, email="nobody@example.com") == "users_not_found"


def test_usergroup_membership_is_replaced_by_update(slack, client):
    slack.add_usergroup("S0PAYONCALL", handle="payments-oncall", users=["U0BOB"])
    updated = client.usergroups_users_update(usergroup="S0PAYONCALL", users="U0ALICE")
    assert updated["usergroup"]["users"] == ["U0ALICE"]
    assert client.usergroups_users_list(usergroup="S0PAYONCALL")["users"] == ["U0ALICE"]
    assert slack.usergroup_users("S0PAYONCALL") == ["U0ALICE"]
    [group] = client.usergroups_list(include_users=True)["usergroups"]
    assert group["handle"] == "payments-oncall" and group["users"] == ["U0ALICE"]
    update = client.usergroups_users_update
    assert error_of(update, usergroup="S0NOPE", users="U0ALICE") == "no_such_subteam"
    assert error_of(update, usergroup="S0PAYONCALL", users="U0NOBODY") == "invalid_users"


# --------------------------------------------------------------------- views
def test_views_open_update_and_publish(slack, client):
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Declare incident"}}
    view = client.views_open(trigger_id="123.456.abc", view=modal)["view"]
    assert view["id"].startswith("V") and view["hash"]
    client.views_update(view_id=view["id"], hash=view["hash"], view={**modal, "blocks": [HEADER]})
    assert (
        error_of(client.views_update, view_id=view["id"], hash="stale", view=modal)
        == "hash_conflict"
    )
    long_title = {**modal, "title": {"type": "plain_text", "text": "x" * 25}}
    assert error_of(client.views_open, trigger_id="1.2.3", view=long_title) == "invalid_arguments"
    client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": [HEADER]})
    assert slack.home("U0ALICE")["blocks"] == [HEADER]
    assert [v["type"] for v in slack.views] == ["modal", "home"]


# ------------------------------------------------------- auth and transport
def test_missing_wrong_token_and_unknown_method(slack):
    assert error_of(WebClient(base_url=slack.api_url).auth_test) == "not_authed"
    assert (
        error_of(WebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test) == "invalid_auth"
    )
    assert (
        error_of(WebClient(token=TOKEN, base_url=slack.api_url).api_call, "nope.nope")
        == "unknown_method"
    )


def test_form_encoded_body_with_token_param_and_json_blocks(slack, client):
    channel = new_incident_channel(client)
    form = urllib.parse.urlencode(
        {"token": TOKEN, "channel": channel, "blocks": json.dumps([HEADER]), "text": "fallback"}
    )
    status, body = post(
        slack.api_url + "chat.postMessage", form.encode(), "application/x-www-form-urlencoded"
    )
    assert status == 200 and json.loads(body)["ok"]
    assert slack.messages(channel)[0]["blocks"] == [HEADER]
    assert slack.calls_to("chat.postMessage")[-1].args["blocks"] == [HEADER]


def test_injected_429_is_retried_by_the_sdk_rate_limit_handler(slack, client):
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    slack.fail_next("auth.test", status=429, retry_after=0)
    assert client.auth_test()["ok"]
    assert [(c.status, c.response["ok"]) for c in slack.calls_to("auth.test")] == [
        (429, False),
        (200, True),
    ]


def test_injected_500_is_retried_by_the_sdk_server_error_handler(slack, client):
    quick = FixedValueRetryIntervalCalculator(fixed_internal=0.01)
    client.retry_handlers.append(
        ServerErrorRetryHandler(max_retry_count=2, interval_calculator=quick)
    )
    slack.fail_next("users.info", status=500, count=2)
    assert client.users_info(user="U0ALICE")["user"]["id"] == "U0ALICE"
    assert [c.status for c in slack.calls_to("users.info")] == [500, 500, 200]


def test_unhandled_429_carries_retry_after_and_ratelimited_error(slack, client):
    slack.fail_next(None, status=429, retry_after=7)
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="U0BOB", text="x")
    assert info.value.response.status_code == 429
    assert info.value.response["error"] == "ratelimited"
    assert info.value.response.headers["Retry-After"] == "7"
    slack.fail_next("chat.postMessage", status=None, error="channel_not_found")
    assert error_of(client.chat_postMessage, channel="U0BOB", text="x") == "channel_not_found"
    assert client.chat_postMessage(channel="U0BOB", text="x")["ok"]


def test_random_failures_are_reproducible_for_a_seed(slack, client):
    def run() -> list[int]:
        slack.reset_calls()
        slack.set_failure_rate(0.5, statuses=(429, 500), seed=42)
        for _ in range(20):
            try:
                client.auth_test()
            except SlackApiError:
                pass
        return [c.status for c in slack.calls]

    first = run()
    assert first == run() and {429, 500, 200} <= set(first)
    slack.set_failure_rate(0)
    assert client.auth_test()["ok"]


def test_on_call_sees_every_recorded_call(slack, client):
    seen = []
    slack.on_call(seen.append)
    client.auth_test()
    post_json(slack.response_url(user_id="U0ALICE"), {"text": "hi"})
    assert [c.method for c in seen] == ["auth.test", "response_url"]
    assert [c.method for c in slack.calls] == ["auth.test", "response_url"]


# -------------------------------------------------------------------- render
def rendered(slack) -> list[str]:
    return [line for call in slack.calls for line in render(call, slack)]


def test_render_shows_what_people_would_see(slack, client):
    channel = new_incident_channel(client)
    text = "SEV2 declared by <@U0ALICE> in <#" + channel + ">"
    section = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    ts = client.chat_postMessage(channel=channel, text="fallback", blocks=[HEADER, section, ACK])[
        "ts"
    ]
    client.conversations_setTopic(channel=channel, topic="SEV2 checkout down")
    client.pins_add(channel=channel, timestamp=ts)
    client.chat_postMessage(channel="U0BOB", text="You are IC")
    client.chat_postEphemeral(channel=channel, user="U0ALICE", text="Only you")
    client.files_upload_v2(channel=channel, content="# PM", filename="postmortem-inc-1.md")
    assert rendered(slack) == [
        "created channel #inc-1-checkout-down",
        "#inc-1-checkout-down  invited @alice, @bob",
        "#inc-1-checkout-down  @bot: :rotating_light: SEV2",
        "        SEV2 declared by @alice in #inc-1-checkout-down",
        "        [Ack]",
        "#inc-1-checkout-down topic: SEV2 checkout down",
        ':pushpin: pinned ":rotating_light: SEV2" in #inc-1-checkout-down',
        "DM to @bob: You are IC",
        "#inc-1-checkout-down  (only visible to @alice) Only you",
        "uploaded postmortem-inc-1.md to #inc-1-checkout-down",
    ]


def test_render_shows_failures_and_response_url_ephemerals(slack, client):
    error_of(client.chat_postMessage, channel="C0NOPE", text="x")
    post_json(slack.response_url(user_id="U0ALICE"), {"text": "Usage: /incident declare"})
    assert rendered(slack) == [
        "! chat.postMessage failed: channel_not_found",
        "(only visible to @alice) Usage: /incident declare",
    ]


class SteppedTime:
    """A clock for the stand-in's rate limits that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_21st_channel_created_in_a_minute_is_refused_until_retry_after(slack, client):
    slack.rate_limits.now = time = SteppedTime()
    for n in range(20):  # Tier 2: 20 a minute
        client.conversations_create(name=f"inc-{n}")
        time.now += 1.0
    with pytest.raises(SlackApiError) as refused:
        client.conversations_create(name="inc-20")
    assert refused.value.response.status_code == 429
    assert refused.value.response["error"] == "ratelimited"
    wait = int(refused.value.response.headers["Retry-After"])
    assert wait == 40  # the first call, at 0 s, leaves the window at 60 s; we are at 20 s
    assert slack.channel_by_name("inc-20") is None  # refused: nothing done
    time.now += wait - 1
    assert error_of(client.conversations_create, name="inc-20") == "ratelimited"
    time.now += 1
    assert client.conversations_create(name="inc-20")["channel"]["name"] == "inc-20"


def test_messages_are_limited_per_channel_not_across_channels(slack, client):
    slack.rate_limits.now = SteppedTime()
    first = client.conversations_create(name="first")["channel"]["id"]
    second = client.conversations_create(name="second")["channel"]["id"]
    for n in range(60):  # one a second per channel, in bursts: 60 in a sliding minute
        client.chat_postMessage(channel=first, text=f"m{n}")
    assert error_of(client.chat_postMessage, channel=first, text="one too many") == "ratelimited"
    assert client.chat_postMessage(channel=second, text="elsewhere")["ok"]
    assert [m["text"] for m in slack.messages(second)] == ["elsewhere"]


def test_rate_limits_can_be_switched_off_for_tests_about_something_else(client):
    with SlackStandIn(bot_token=TOKEN, limits=False) as quiet:
        fast = WebClient(token=TOKEN, base_url=quiet.api_url)
        for n in range(25):
            fast.conversations_create(name=f"c{n}")
    with SlackStandIn(bot_token=TOKEN) as slack:
        fast = WebClient(token=TOKEN, base_url=slack.api_url)
        for n in range(20):
            fast.conversations_create(name=f"c{n}")
        slack.set_limits(False)
        fast.conversations_create(name="c20")
        slack.set_limits(True)
        assert error_of(fast.conversations_create, name="c21") == "ratelimited"
