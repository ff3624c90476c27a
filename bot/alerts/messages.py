"""What alert notifications say, in Slack's escaped form: incident titles and page reasons,
one-line listings of alerts, and the description with links back to the source."""

from __future__ import annotations

from bot.alerts.alertmanager import Alert, Notification
from bot.text import escape, truncate, visible

LISTED = 5  # alerts named in one timeline line; the rest are counted


def title_of(alert: Alert, notification: Notification) -> str:
    """An incident title or page reason in Slack's escaped form."""
    raw = " ".join(visible(alert.summary or alert.name).split()) or f"Alert from {notification.source}"
    return escape(truncate(raw, 150))


def link(url: str, label: str) -> str:
    return f"<{url.replace('&', '&amp;')}|{label}>" if url else ""


def listing(alerts: list[Alert] | tuple[Alert, ...], uncounted: int = 0) -> str:
    """`Name (summary), Other (summary) and 3 more`, escaped, on one line; `uncounted` alerts
    left out of the notification are among the more."""
    parts = []
    for alert in alerts[:LISTED]:
        name = " ".join(alert.name.split())
        summary = " ".join(alert.summary.split())
        text = name if not summary or summary == name else f"{name} ({summary})"
        parts.append(escape(truncate(text, 200)))
    more = max(len(alerts) - LISTED, 0) + uncounted
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def details(notification: Notification, alerts: list[Alert], lead: Alert, note: str | None) -> str:
    """The incident description (and a page's follow-up DM): what fires, with links back."""
    lines = []
    if lead.description:
        lines.append(escape(truncate(lead.description.strip(), 1000)))
    lines.append(f"*Firing ({len(alerts)}):*")
    for alert in alerts[:10]:
        source = link(alert.generator_url, "source")
        lines.append(f"• {listing([alert])}" + (f" · {source}" if source else ""))
    hidden = len(alerts) - 10 + notification.truncated
    if hidden > 0:
        lines.append(f"…and {hidden} more")
    if notification.external_url:
        lines.append(link(notification.external_url, "Open in Alertmanager"))
    if note:
        lines.append(f"_{note}_")
    return "\n".join(lines)
