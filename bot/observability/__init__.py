"""The bot watching itself: Prometheus metrics, Slack request and Web API metering,
structured logs with secrets masked."""
