"""slack-sdk's WebClient, pointed at SLACK_API_URL, with its own retry handlers switched on."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.observability.slack_client import MeteredWebClient


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
