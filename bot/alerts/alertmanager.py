"""Alert payloads parsed and validated into plain values: Prometheus Alertmanager's webhook
(version 4) and the bot's own generic webhook. Pure: no database, no Slack, no HTTP.

Anything a sender can get wrong raises PayloadError with a message naming the field, so the
route can answer 400 with it. Unknown fields of Alertmanager's payload are ignored (newer
versions add some); the generic webhook is ours, so a misspelt field is an error there.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_BODY = 1024 * 1024  # bytes; Alertmanager's notifications are a few KiB
# Alerts of one notification acted on one by one; the rest are counted, as Alertmanager's own
# max_alerts counts what it leaves out (a notification is never refused for its size: the
# sender would drop it).
MAX_ALERTS = 100
STATUSES = ("firing", "resolved")
WEBHOOK_FIELDS = ("title", "severity", "rotation", "dedup_key", "status", "description", "url", "source")


class PayloadError(ValueError):
    """The body is not a payload we accept; the message is for the sender."""


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, as its sender described it."""

    status: str  # firing | resolved
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: str = ""  # empty when the sender gives no start time (the generic webhook)
    generator_url: str = ""  # an http(s) link back to the source, or empty
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname") or self.annotations.get("summary") or "alert"

    @property
    def summary(self) -> str:
        """The one line a person reads first: the summary annotation, else the alert's name."""
        return self.annotations.get("summary") or self.labels.get("alertname") or ""

    @property
    def description(self) -> str:
        return self.annotations.get("description", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "").strip()

    @property
    def rotation(self) -> str | None:
        return self.labels.get("rotation", "").strip() or None

    @property
    def identity(self) -> str:
        """Who the alert is (fingerprint, else its labels) and since when: one firing of it."""
        who = self.fingerprint or digest(sorted(self.labels.items()))
        return f"{who}@{self.starts_at}"


@dataclass(frozen=True)
class Notification:
    """What a sender says about one group of alerts."""

    kind: str  # which endpoint: "alertmanager" or "webhook"; keys of the two never mix
    source: str  # "alertmanager", or the generic sender's name; the timeline's actor
    dedup_key: str  # the group: Alertmanager's groupKey, or the webhook's dedup_key
    status: str  # firing when any alert of the group fires
    alerts: tuple[Alert, ...]
    external_url: str = ""  # Alertmanager's own address, for a link back
    truncated: int = 0  # alerts left out, by the receiver's max_alerts or past MAX_ALERTS
    body_digest: str = ""  # the sha256 of the body as sent: a repeat is the same notification

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")


def digest(value: Any) -> str:
    """A short stable hash of any JSON-able value."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def decode_json(body: bytes) -> Any:
    """The JSON value of a request body, or PayloadError saying why not."""
    if len(body) > MAX_BODY:
        raise PayloadError(f"the body is larger than {MAX_BODY} bytes")
    if not body.strip():
        raise PayloadError("the body is empty; send a JSON object")
    try:
        return json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise PayloadError("the JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise PayloadError(f"the body is not valid JSON: {_short(str(exc), 120)}") from None


def parse_alertmanager(body: bytes) -> Notification:
    """Alertmanager's webhook notification (version 4) as a Notification."""
    data = _object(decode_json(body), "the payload")
    version = data.get("version")
    if version != "4":
        raise PayloadError(f'version must be "4" (Alertmanager\'s webhook format), got {_show(version)}')
    group_key = _text(data, "groupKey", "the payload", required=True)
    status = _status(data, "status", "the payload", required=True)
    raw_alerts = data.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError(f"alerts must be a list of alerts, got {_kind(raw_alerts)}")
    if not raw_alerts:
        raise PayloadError("alerts must list at least one alert")
    chosen = _first_alerts(raw_alerts)
    alerts = tuple(_alertmanager_alert(raw_alerts[i], f"alerts[{i}]") for i in chosen)
    for name in ("groupLabels", "commonLabels", "commonAnnotations"):
        _string_map(data, name, "the payload")  # checked for type; each alert carries its own
    _text(data, "receiver", "the payload")
    truncated = data.get("truncatedAlerts", 0)
    if truncated is None:
        truncated = 0
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError(f"truncatedAlerts must be a whole number >= 0, got {_show(truncated)}")
    return Notification(
        kind="alertmanager", source="alertmanager", dedup_key=group_key, status=status, alerts=alerts,
        external_url=_url(_text(data, "externalURL", "the payload")), truncated=truncated + len(raw_alerts) - len(alerts),
        body_digest=hashlib.sha256(body).hexdigest(),
    )


def _first_alerts(raw_alerts: list[Any]) -> list[int]:
    """Which alerts are acted on: at most MAX_ALERTS, firing ones first, in their order. Only
    those are read field by field (the rest are counted), so a notification of 10,000 costs
    little more than one of 100."""
    for i, item in enumerate(raw_alerts):
        _object(item, f"alerts[{i}]")
    if len(raw_alerts) <= MAX_ALERTS:
        return list(range(len(raw_alerts)))
    firing_first = sorted(range(len(raw_alerts)), key=lambda i: raw_alerts[i].get("status") != "firing")
    return sorted(firing_first[:MAX_ALERTS])


def _alertmanager_alert(item: Any, where: str) -> Alert:
    alert = _object(item, where)
    labels = _string_map(alert, "labels", where, required=True)
    return Alert(
        status=_status(alert, "status", where, required=True),
        labels=labels,
        annotations=_string_map(alert, "annotations", where),
        starts_at=_text(alert, "startsAt", where),
        generator_url=_url(_text(alert, "generatorURL", where)),
        fingerprint=_text(alert, "fingerprint", where),
    )


def parse_webhook(body: bytes) -> Notification:
    """The generic webhook's body (see docs/alerts.md) as a Notification of one alert."""
    data = _object(decode_json(body), "the payload")
    unknown = sorted(set(data) - set(WEBHOOK_FIELDS))
    if unknown:
        names = ", ".join(_short(name, 40) for name in unknown[:5])
        raise PayloadError(f"unknown field(s): {names}; the fields are {', '.join(WEBHOOK_FIELDS)}")
    title = " ".join(_text(data, "title", "the payload", required=True).split())
    if not title:
        raise PayloadError("title must not be blank")
    status = _status(data, "status", "the payload") or "firing"
    severity = _text(data, "severity", "the payload").strip()
    rotation = _text(data, "rotation", "the payload").strip()
    description = _text(data, "description", "the payload").strip()
    url = _text(data, "url", "the payload").strip()
    if url and not _url(url):
        raise PayloadError("url must be an http:// or https:// address")
    source = _source(_text(data, "source", "the payload"))
    dedup_key = _text(data, "dedup_key", "the payload").strip()
    if not dedup_key and "dedup_key" in data and data["dedup_key"] is not None:
        raise PayloadError("dedup_key must not be blank (leave it out to group by title)")
    labels = {"alertname": title}
    if severity:
        labels["severity"] = severity
    if rotation:
        labels["rotation"] = rotation
    annotations = {"summary": title}
    if description:
        annotations["description"] = description
    alert = Alert(
        status=status, labels=labels, annotations=annotations, generator_url=url,
        fingerprint=digest([title, severity, rotation, description, url]),
    )
    return Notification(
        kind="webhook", source=source, dedup_key=dedup_key or f"{rotation}/{title.lower()}", status=status, alerts=(alert,),
        body_digest=hashlib.sha256(body).hexdigest(),
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _clean(text: str) -> str:
    """Text safe to store anywhere: no NUL characters, no unpaired surrogates."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _short(text: str, limit: int) -> str:
    text = _clean(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(_short(value, 40))
    return _kind(value)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be a JSON object, got {_kind(value)}")
    return value


def _text(data: dict[str, Any], name: str, where: str, *, required: bool = False) -> str:
    """A string field; null or absent is empty (or an error when required)."""
    value = data.get(name)
    path = name if where == "the payload" else f"{where}.{name}"
    if value is None:
        if required:
            raise PayloadError(f"{path} is required")
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{path} must be a string, got {_kind(value)}")
    if required and not value.strip():
        raise PayloadError(f"{path} must not be empty")
    return _clean(value)


def _status(data: dict[str, Any], name: str, where: str, *, required: bool = False) -> str:
    value = _text(data, name, where, required=required)
    if value and value not in STATUSES:
        path = name if where == "the payload" else f"{where}.{name}"
        raise PayloadError(f'{path} must be "firing" or "resolved", got {_show(value)}')
    return value


def _string_map(data: dict[str, Any], name: str, where: str, *, required: bool = False) -> dict[str, str]:
    """An object of string values (labels, annotations); null or absent is empty."""
    value = data.get(name)
    path = name if where == "the payload" else f"{where}.{name}"
    if value is None:
        if required:
            raise PayloadError(f"{path} is required")
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{path} must be an object of strings, got {_kind(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{path}.{_short(key, 40)} must be a string, got {_kind(item)}")
    return {_clean(key): _clean(item) for key, item in value.items()}


def _url(text: str) -> str:
    """The text when it is an http(s) URL without spaces, else empty."""
    text = text.strip()
    return text if re.fullmatch(r"https?://[^\s<>|]+", text, re.IGNORECASE) else ""


def _source(text: str) -> str:
    """A sender's name as a harmless lowercase word: it is shown as the actor."""
    word = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-.")[:40]
    return word or "webhook"
