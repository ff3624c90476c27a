"""Follow-ups as GitHub issues (GITHUB_TOKEN, GITHUB_REPO), against a GitHub REST stand-in on
127.0.0.1: opened when an action item is added, closed when it is done."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.models import ActionItem

TOKEN = "ghp_standin_token_0123456789"


class GitHubStandIn:
    """POST /repos/{owner}/{repo}/issues and PATCH /repos/{owner}/{repo}/issues/{n}, as GitHub
    answers them (201 with number and html_url; 200), recording every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, str]] = []
        self.issues: dict[int, dict] = {}
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stand_in.requests.append((self.command, self.path, body, self.headers.get("Authorization", "")))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._answer(401, {"message": "Bad credentials"})
                elif self.command == "POST" and self.path == "/repos/acme/payments/issues":
                    number = len(stand_in.issues) + 1
                    stand_in.issues[number] = {**body, "number": number, "state": "open"}
                    self._answer(201, {"number": number, "state": "open",
                                       "html_url": f"https://github.example/acme/payments/issues/{number}"})
                elif self.command == "PATCH" and self.path.startswith("/repos/acme/payments/issues/"):
                    issue = stand_in.issues.get(int(self.path.rsplit("/", 1)[1]))
                    if issue is None:
                        self._answer(404, {"message": "Not Found"})
                        return
                    issue.update(body)
                    self._answer(200, issue)
                else:
                    self._answer(404, {"message": "Not Found"})

            do_POST = do_PATCH = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github():
    stand_in = GitHubStandIn()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def settings_env(settings_env, github):
    return {**settings_env, "GITHUB_TOKEN": TOKEN, "GITHUB_REPO": "acme/payments", "GITHUB_API_URL": github.url}


def test_an_action_item_becomes_an_issue_that_is_closed_when_done(bot, standin, github):
    bot.command("U0ALICE", "/incident", "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    bot.command("U0ALICE", "/incident", "action <@U0BOB> Alert on pool saturation due 2026-03-12", channel=channel)
    assert [(m, p) for m, p, _, _ in github.requests] == [("POST", "/repos/acme/payments/issues")]
    assert github.issues[1]["title"] == "INC-1: Alert on pool saturation" and "Due 2026-03-12" in github.issues[1]["body"]
    with bot.rt.storage.read() as session:
        item = session.get(ActionItem, 1)
    assert item.issue_number == 1 and item.issue_url == "https://github.example/acme/payments/issues/1"
    assert "issues/1|issue>" in bot.command("U0BOB", "/oncall", "followups").text
    bot.command("U0ALICE", "/incident", "action done 1", channel=channel)
    assert github.requests[-1][:3] == ("PATCH", "/repos/acme/payments/issues/1", {"state": "closed"})
    assert github.issues[1]["state"] == "closed"
    bot.settle()
    assert len(github.requests) == 2  # each once


def test_a_private_incident_s_issue_names_no_title_or_text(bot, standin, github):
    bot.command("U0ALICE", "/incident", "declare --private sev1 Payroll data exposed")
    bot.command("U0ALICE", "/incident", "action Rotate the payroll keys", channel=bot.channel_of(1))
    (issue,) = github.issues.values()
    assert issue["title"] == "INC-1: action item 1" and "Payroll" not in issue["body"]
