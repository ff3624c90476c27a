"""The app's manifest grants every scope the bot's Web API calls need, and the stand-in refuses
a call whose scope the token lacks, as Slack does."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.standin import SlackStandIn
from bot.standin.scopes import SCOPES, manifest_scopes, needed_scope

BOT = Path(__file__).parent.parent / "bot"
# Calls Bolt makes for the bot: auth.test on start, say() posts a message.
CALLED_BY_BOLT = {"auth.test", "chat.postMessage"}


def api_methods_of(client_method: str, seen: set[str] | None = None) -> set[str]:
    """The Web API methods a WebClient method calls, following its calls of other methods
    (files_upload_v2 calls files.getUploadURLExternal and files.completeUploadExternal)."""
    seen = set() if seen is None else seen
    if client_method in seen:
        return set()
    seen.add(client_method)
    source = inspect.getsource(getattr(WebClient, client_method))
    found = set(re.findall(r'api_call\(\s*"([\w.]+)"', source))
    for other in re.findall(r"self\.(\w+)\(", source):
        if other != "api_call" and callable(getattr(WebClient, other, None)):
            found |= api_methods_of(other, seen)
    return found


def web_api_methods_the_bot_calls() -> set[str]:
    """Every Web API method reached by a WebClient method named in the bot's code."""
    names: set[str] = set()
    for path in BOT.rglob("*.py"):
        if "standin" in path.parts or "testing" in path.parts:
            continue
        names |= set(re.findall(r"\.([a-z]+_[A-Za-z_0-9]+)\(", path.read_text()))
    client_methods = {n for n in names if callable(getattr(WebClient, n, None)) and n != "api_call"}
    return set().union(*(api_methods_of(n) for n in client_methods)) | CALLED_BY_BOLT


def test_the_bot_calls_the_methods_it_is_known_to_call():
    called = web_api_methods_the_bot_calls()
    assert {"reactions.add", "conversations.members", "files.getUploadURLExternal",
            "usergroups.users.update", "chat.postEphemeral"} <= called


@pytest.mark.parametrize("kind", ["public", "private"])
def test_the_manifest_grants_every_scope_the_bot_needs(kind):
    granted = manifest_scopes()
    assert granted is not None
    called = web_api_methods_the_bot_calls()
    unknown = called - set(SCOPES)
    assert not unknown, f"add these methods with their scopes to bot/standin/scopes.py: {sorted(unknown)}"
    missing = {method: needed_scope(method, kind) for method in called if needed_scope(method, kind) not in granted | {""}}
    assert not missing, f"manifest.yml lacks scopes for {missing}"


def test_a_call_whose_scope_the_token_lacks_fails_with_missing_scope():
    with SlackStandIn(bot_token="xoxb-t", scopes=frozenset({"chat:write", "channels:manage"})) as slack:
        slack.add_channel("general", channel_id="C0GENERAL", members=["UBOT"])
        client = WebClient(token="xoxb-t", base_url=slack.api_url)
        posted = client.chat_postMessage(channel="C0GENERAL", text="hello")
        with pytest.raises(SlackApiError) as refused:
            client.reactions_add(channel="C0GENERAL", timestamp=posted["ts"], name="memo")
        assert refused.value.response.data == {"ok": False, "error": "missing_scope", "needed": "reactions:write",
                                               "provided": "channels:manage,chat:write"}
        assert slack.messages("C0GENERAL")[0].get("reactions") in (None, [])
        with pytest.raises(SlackApiError, match="groups:write"):
            client.conversations_create(name="secret-room", is_private=True)
        assert slack.channel_by_name("secret-room") is None


def test_the_tests_stand_in_holds_the_manifest_scopes(standin):
    assert standin.scopes == manifest_scopes()
    assert "reactions:write" in standin.scopes
