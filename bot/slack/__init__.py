"""The only package that knows Slack: app factory, command parsing, handlers, Block Kit,
and the outbox tasks that call Slack's Web API."""
