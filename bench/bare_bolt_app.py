"""The baseline of bench/ack_latency.py: a bare Bolt app that only acknowledges `/incident`
and `/oncall`. `app` serves it behind Flask through Bolt's Flask adapter (the default
baseline); `wsgi` through Bolt's own WSGI adapter, without Flask, as the bot answers
/slack/events (`ack_latency.py --bare wsgi`). With BARE_BOLT_PROCESS_BEFORE_RESPONSE=1
its App runs listeners as the bot's does (process_before_response=True), else with Bolt's
defaults. Served by gunicorn with the settings bot/serve.py uses:

    SLACK_SIGNING_SECRET=... SLACK_API_URL=http://127.0.0.1:PORT/api/ \\
        python -m gunicorn -k bot.web.worker.RequestBufferingWorker --threads 8 --pythonpath bench bare_bolt_app:app
"""

from __future__ import annotations

import os

from flask import Flask, request
from slack_bolt import Ack, App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler as WsgiRequestHandler
from slack_sdk import WebClient

# Bolt calls auth.test once on the first request, as the bot does: send it to the stand-in.
client = WebClient(
    token=os.environ.get("SLACK_BOT_TOKEN", "xoxb-bench"),
    base_url=os.environ.get("SLACK_API_URL", "http://127.0.0.1:9/api/"),
)
bolt = App(
    client=client,
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    token_verification_enabled=False,
    process_before_response=os.environ.get("BARE_BOLT_PROCESS_BEFORE_RESPONSE") == "1",
)


@bolt.command("/incident")
def incident(ack: Ack) -> None:
    ack()


@bolt.command("/oncall")
def oncall(ack: Ack) -> None:
    ack()


handler = SlackRequestHandler(bolt)
app = Flask("bare-bolt")


@app.post("/slack/events")
def slack_events():  # type: ignore[no-untyped-def]
    return handler.handle(request)


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return {"ok": True}


bolt_wsgi = WsgiRequestHandler(bolt)


def wsgi(environ, start_response):  # type: ignore[no-untyped-def]
    """The same app through Bolt's WSGI adapter, with the health check the bench waits for."""
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']
    return bolt_wsgi(environ, start_response)
