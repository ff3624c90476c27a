"""Settings from the environment, validated once and passed down explicitly."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line for the operator."""


# What each variable means, for the one-line error when it is missing.
DESCRIPTIONS = {
    "SLACK_BOT_TOKEN": "the bot token (xoxb-...) from your Slack app's OAuth page",
    "SLACK_SIGNING_SECRET": "the signing secret from your Slack app's Basic Information page",
    "SLACK_APP_TOKEN": "an app-level token (xapp-...) with connections:write, for Socket Mode",
}


@dataclass(frozen=True)
class Settings:
    """Everything the bot reads from its environment."""

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = "sqlite:///oncall.db"
    rotations_dir: Path = Path("rotations")
    templates_dir: Path = Path("templates")
    incidents_channel: str | None = None
    port: int = 3000
    host: str = "0.0.0.0"
    alertmanager_token: str | None = None
    metrics_token: str | None = None
    postmortems_dir: Path | None = None
    status_reminder_minutes: int = 30
    outbox_lease_seconds: int = 10  # renewed every third of it while the task runs
    alert_severities: dict[str, int] = field(default_factory=dict)  # alert label -> SEV that declares
    incident_roles: tuple[str, ...] = ("comms", "scribe", "ops")
    github_token: str | None = None
    github_repo: str | None = None  # owner/name: action items become its issues
    github_api_url: str = "https://api.github.com"
    public_url: str = ""  # where people reach the web pages; "" means http://localhost:PORT
    slack_client_id: str | None = None  # Sign in with Slack; unset, the web pages answer 404
    slack_client_secret: str | None = None
    slack_pacing: bool = True  # SLACK_PACING=off: call Slack without keeping to its rate-limit tiers

    @property
    def web_pages(self) -> bool:
        """Whether the signed-in web pages are served (Sign in with Slack is configured)."""
        return bool(self.slack_client_id and self.slack_client_secret)

    def key(self, purpose: str) -> bytes:
        """A secret key for one purpose (calendar feeds, session cookies), the same in every
        process of the installation: derived from its Slack secrets, never stored."""
        material = "\n".join(s or "" for s in (self.slack_signing_secret, self.slack_client_secret,
                                                self.slack_bot_token, self.slack_app_token))
        return hmac.new(material.encode(), purpose.encode(), hashlib.sha256).digest()

    @property
    def base_url(self) -> str:
        """PUBLIC_URL without its trailing slash (links in Slack and feeds start with it)."""
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")

    def __repr__(self) -> str:  # secrets never reach logs through a repr
        return (
            f"Settings(database_url={_mask_url(self.database_url)!r}, "
            f"slack_api_url={self.slack_api_url!r}, port={self.port})"
        )


def load_settings(environ: Mapping[str, str] | None = None, *, require: tuple[str, ...] = ()) -> Settings:
    """Read and validate settings; raise ConfigError naming the first bad variable."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    for name in require:
        if not get(name):
            raise ConfigError(f"{name} is not set: {DESCRIPTIONS.get(name, 'required')}")
    token = get("SLACK_BOT_TOKEN")
    if token and not token.startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    app_token = get("SLACK_APP_TOKEN")
    if app_token and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    port_text = get("PORT") or "3000"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"PORT must be a TCP port number (1-65535), got {port_text!r}")
    host = get("HOST") or "0.0.0.0"
    if not _is_host(host):
        raise ConfigError(f"HOST must be an IP address or host name to listen on, got {host!r}")
    api_url = get("SLACK_API_URL") or "https://slack.com/api/"
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}")
    if not api_url.endswith("/"):
        api_url += "/"
    database_url = _database_url(get("DATABASE_URL") or "sqlite:///oncall.db")
    postmortems = get("POSTMORTEMS_DIR")
    public_url = get("PUBLIC_URL") or ""
    if public_url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", public_url):
        raise ConfigError(f"PUBLIC_URL must be the http(s) address people reach the bot at, got {public_url!r}")
    client_id, client_secret = get("SLACK_CLIENT_ID"), get("SLACK_CLIENT_SECRET")
    if bool(client_id) != bool(client_secret):
        raise ConfigError("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together: set both for Sign in with Slack, "
                          "or neither")
    reminder = get("STATUS_REMINDER_MINUTES") or "30"
    if not reminder.isdigit() or not 1 <= int(reminder) <= 1440:
        raise ConfigError(f"STATUS_REMINDER_MINUTES must be a number of minutes (1-1440), got {reminder!r}")
    roles = tuple(dict.fromkeys(r.strip().lower() for r in (get("INCIDENT_ROLES") or "comms,scribe,ops").split(",")
                                if r.strip()))
    if not roles or not all(re.fullmatch(r"[a-z][a-z0-9_-]{0,29}", r) for r in roles):
        raise ConfigError("INCIDENT_ROLES must be role words separated by commas, e.g. comms,scribe,ops")
    github_repo = get("GITHUB_REPO")
    if github_repo and not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", github_repo):
        raise ConfigError(f"GITHUB_REPO must be OWNER/NAME, got {github_repo!r}")
    github_api = (get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
    if not github_api.startswith(("http://", "https://")):
        raise ConfigError(f"GITHUB_API_URL must be an http(s) URL, got {github_api!r}")
    return Settings(
        incident_roles=roles,
        github_token=get("GITHUB_TOKEN"),
        github_repo=github_repo,
        github_api_url=github_api,
        slack_bot_token=token,
        slack_signing_secret=get("SLACK_SIGNING_SECRET"),
        slack_app_token=app_token,
        slack_api_url=api_url,
        database_url=database_url,
        rotations_dir=Path(get("ROTATIONS_DIR") or "rotations"),
        templates_dir=Path(get("TEMPLATES_DIR") or "templates"),
        incidents_channel=get("INCIDENTS_CHANNEL"),
        port=int(port_text),
        host=host,
        alertmanager_token=get("ALERTMANAGER_TOKEN"),
        metrics_token=get("METRICS_TOKEN"),
        postmortems_dir=Path(postmortems) if postmortems else None,
        status_reminder_minutes=int(reminder),
        alert_severities=_severity_map(get("ALERT_SEVERITIES")),
        public_url=public_url,
        slack_client_id=client_id,
        slack_client_secret=client_secret,
        outbox_lease_seconds=_int(get("OUTBOX_LEASE_SECONDS") or "10", "OUTBOX_LEASE_SECONDS", 1, 3600),
        slack_pacing=_on_off(get("SLACK_PACING"), "SLACK_PACING"),
    )


def _on_off(value: str | None, name: str) -> bool:
    """A switch that is on unless set to off (or 0, false, no)."""
    if value is None or value.lower() in ("on", "1", "true", "yes"):
        return True
    if value.lower() in ("off", "0", "false", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, got {value[:80]!r}")


DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")


def _database_url(url: str) -> str:
    """The URL when it names a database the bot can use; ConfigError saying why not."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in DATABASE_SCHEMES:
        raise ConfigError(f"DATABASE_URL must be sqlite:///FILE or postgresql://USER:PASSWORD@HOST/NAME, "
                          f"got {_mask_url(url)!r}")
    if scheme.lower() == "sqlite" and rest.startswith("/") and not rest.startswith("/file:"):
        folder = Path(rest[1:].partition("?")[0] or ".").parent
        if str(folder) not in ("", ".") and not folder.is_dir():
            raise ConfigError(f"DATABASE_URL names an SQLite file in {str(folder)!r}, a folder that does not exist")
    return url


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", text) is not None


def parse_severity_map(text: str) -> dict[str, int]:
    """`critical=1,error=2` as a mapping; ValueError naming the bad part."""
    mapping: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        label, sep, value = part.partition("=")
        if not sep or not label.strip() or value.strip() not in ("1", "2", "3", "4"):
            raise ValueError(f"{part!r} is not LABEL=N with N from 1 to 4")
        mapping[label.strip().lower()] = int(value)
    return mapping


def _severity_map(text: str | None) -> dict[str, int]:
    if not text:
        return {}
    try:
        return parse_severity_map(text)
    except ValueError as exc:
        raise ConfigError(f"ALERT_SEVERITIES must look like critical=1,error=2: {exc}") from None


def _int(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {text!r}")
    return int(text)


def _mask_url(url: str) -> str:
    """Hide a password in a database URL."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
