"""A slack-sdk WebClient that counts and times every Web API call by method."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

if TYPE_CHECKING:
    from bot.observability.metrics import BotMetrics


class MeteredWebClient(WebClient):
    """``WebClient`` whose ``api_call`` (what every method such as ``chat_postMessage`` goes
    through) is counted, timed and, on failure, counted by Slack's error code. One call here
    includes slack-sdk's own retries. Without ``metrics`` it is a plain ``WebClient``."""

    def __init__(self, *args: Any, metrics: BotMetrics | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    @classmethod
    def like(cls, client: WebClient, metrics: BotMetrics | None) -> MeteredWebClient:
        """A metered client with another client's token, address, timeouts and retry handlers."""
        return cls(
            token=client.token,
            base_url=client.base_url,
            timeout=client.timeout,
            ssl=client.ssl,
            proxy=client.proxy,
            headers=dict(client.headers),
            team_id=client.default_params.get("team_id"),
            logger=client.logger,
            retry_handlers=list(client.retry_handlers)
            if client.retry_handlers is not None
            else None,
            metrics=metrics,
        )

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:  # type: ignore[override]
        metrics = self.metrics
        if metrics is None:
            return super().api_call(api_method, **kwargs)
        started = time.perf_counter()
        error: str | None = None
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            error = (
                str(exc.response.get("error") or "unknown")
                if exc.response is not None
                else "unknown"
            )
            raise
        except Exception as exc:  # connection refused, timeout after retries...
            error = type(exc).__name__
            raise
        finally:
            metrics.slack_call(
                method=api_method, seconds=time.perf_counter() - started, error=error
            )
