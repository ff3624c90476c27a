"""Alerts from monitoring: payloads parsed into plain values (`alertmanager`), and what a
notification does to pages and incidents (`service`). The HTTP side is `bot.web.alerts`."""

from bot.alerts.alertmanager import Alert, Notification, PayloadError  # noqa: F401
