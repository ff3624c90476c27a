"""Action items as GitHub issues (GITHUB_TOKEN and GITHUB_REPO set): outbox tasks that open an
issue for a new item and close it when the item is done, through GitHub's REST API
(GITHUB_API_URL, https://api.github.com unless told)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from bot.config import Settings
from bot.incidents.followups import GITHUB_CLOSE, GITHUB_OPEN
from bot.models import ActionItem, Incident
from bot.outbox import Outbox, PermanentError
from bot.storage import Storage
from bot.text import plain

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10


class GitHubIssues:
    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.settings = settings

    def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.settings.github_api_url}{path}", data=json.dumps(body).encode(), method=method,
            headers={"Authorization": f"Bearer {self.settings.github_token}", "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json",
                     "User-Agent": "oncall-bot"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as reply:
                return dict(json.loads(reply.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 404, 410, 422):  # a bad token, repository or body: retrying will not help
                raise PermanentError(f"GitHub answered {exc.code} to {method} {path}") from exc
            raise

    def open_issue(self, payload: dict[str, Any]) -> None:
        """Open the item's issue, once (an item that has one is left alone)."""
        with self.storage.read() as session:
            item = session.get(ActionItem, payload["item_id"])
            incident = session.get(Incident, item.incident_id) if item else None
        if item is None or incident is None:
            raise PermanentError(f"action item {payload['item_id']} does not exist")
        if item.issue_number is not None:
            return
        title = f"INC-{incident.id}: {plain(item.text)}"[:250]
        body = (f"Action item {item.id} from incident #{incident.id} ({'private incident' if incident.private else plain(incident.title)})."
                + (f"\n\nDue {item.due.isoformat()}." if item.due else ""))
        if incident.private:
            title = f"INC-{incident.id}: action item {item.id}"  # a private incident's words stay in Slack
        issue = self._call("POST", f"/repos/{self.settings.github_repo}/issues", {"title": title, "body": body})
        with self.storage.session() as session:
            stored = session.get(ActionItem, item.id)
            assert stored is not None
            stored.issue_number, stored.issue_url = int(issue["number"]), str(issue.get("html_url") or "")
            session.add(stored)
            done = stored.status == "done"
        if done:  # marked done before its issue existed
            self.close_issue(payload)

    def close_issue(self, payload: dict[str, Any]) -> None:
        """Close the item's issue (waits for it to be opened)."""
        with self.storage.read() as session:
            item = session.get(ActionItem, payload["item_id"])
        if item is None:
            raise PermanentError(f"action item {payload['item_id']} does not exist")
        if item.issue_number is None:
            raise RuntimeError(f"action item {item.id} has no issue yet")
        self._call("PATCH", f"/repos/{self.settings.github_repo}/issues/{item.issue_number}", {"state": "closed"})


def install(outbox: Outbox, storage: Storage, settings: Settings) -> None:
    """Register the GitHub tasks (they are only queued when GITHUB_TOKEN and GITHUB_REPO are set)."""
    issues = GitHubIssues(storage, settings)
    outbox.register(GITHUB_OPEN, issues.open_issue)
    outbox.register(GITHUB_CLOSE, issues.close_issue)
