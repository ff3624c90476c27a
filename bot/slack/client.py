"""slack-sdk's WebClient, pointed at SLACK_API_URL, with its own retry handlers switched on."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.observability.slack_client import MeteredWebClient

log = logging.getLogger(__name__)
# Slack's answers meaning the token itself is no good (not a passing failure).
REFUSALS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                      "not_allowed_token_type"})


def make_client(*, token: str, base_url: str, retries: int = 3, timeout: int = 10) -> WebClient:
    """A WebClient that waits out 429 Retry-After and retries 5xx and dropped connections."""
    return MeteredWebClient(  # counts and times calls once build_runtime attaches its metrics
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=retries),
            RateLimitErrorRetryHandler(max_retry_count=retries),
            ServerErrorRetryHandler(max_retry_count=retries),
        ],
    )


def token_refusal(*, token: str, base_url: str) -> str | None:
    """Slack's error when it refuses the token (auth.test), else None; when Slack cannot be
    asked, a warning is logged and the token is given the benefit of the doubt."""
    try:
        WebClient(token=token, base_url=base_url, timeout=10).auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        if error in REFUSALS:
            return error
        log.warning("could not check the Slack token (%s); starting anyway", error)
    except Exception as exc:  # noqa: BLE001  (Slack unreachable: the outbox retries later)
        log.warning("could not reach Slack to check the token (%s); starting anyway", exc)
    return None


def refused(error: Exception) -> str | None:
    """Slack's error code when the exception is Slack refusing a token, else None."""
    code = error.response.get("error") if isinstance(error, SlackApiError) else None
    return str(code) if code in REFUSALS else None
