"""Long-running modes: HTTP behind gunicorn, Socket Mode, and the clock process."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from typing import Any

from bot.config import ConfigError, Settings, load_settings
from bot.observability.logs import AccessLineFilter
from bot.runtime import Runtime
from bot.slack.client import make_client, refused, token_refusal
from bot.wiring import build_runtime

log = logging.getLogger(__name__)
CLOCK_NICENESS = 10  # added to the clock process's niceness: a lower CPU priority than `serve`


def _runtime(settings: Settings, *, background: bool = False) -> Runtime:
    assert settings.slack_bot_token is not None
    client = make_client(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    return build_runtime(settings, client=client, background=background)


def _check_token(settings: Settings) -> None:
    """ConfigError naming SLACK_BOT_TOKEN when Slack refuses it: a bot that cannot post would
    acknowledge declarations and open no channel."""
    assert settings.slack_bot_token is not None
    error = token_refusal(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    if error is not None:
        raise ConfigError(f"SLACK_BOT_TOKEN: Slack refused the bot token ({error})")


def _start_workers(runtime: Runtime, with_scheduler: bool, with_outbox: bool = True) -> None:
    if with_outbox:
        for outbox in runtime.outboxes():
            outbox.start()
    if with_scheduler:
        from bot.jobs.handoffs import plan_handoffs

        runtime.scheduler.on_lead = lambda: plan_handoffs(runtime)
        runtime.scheduler.start()


def _stop_workers(runtime: Runtime) -> None:
    runtime.scheduler.stop()
    for outbox in runtime.outboxes():
        outbox.stop()
    runtime.storage.dispose()


def make_wsgi(settings: Settings, *, with_scheduler: bool, with_outbox: bool = True) -> Any:
    """The Flask app for one process, with its outbox worker and scheduler when asked."""
    import bot.web.routes  # noqa: F401  (installs the non-Slack routes)
    from bot.slack.app import create_app
    from bot.web.app import create_web_app

    runtime = _runtime(settings)
    bolt = create_app(runtime, signing_secret=settings.slack_signing_secret)
    web = create_web_app(runtime, bolt)
    _start_workers(runtime, with_scheduler, with_outbox)
    web.config["health"].start()
    web.config["runtime"] = runtime
    # The ~130,000 objects made at start-up live as long as the process: keep them out of the
    # garbage collector's full passes, each of which held every request up for 60-80 ms.
    gc.freeze()
    return web


def _exit_worker(worker: Any) -> None:
    """gunicorn's worker_exit: stop the runtime's workers. gunicorn calls it in the master too,
    for a worker found gone, which has nothing loaded."""
    config = getattr(getattr(worker, "wsgi", None), "config", None)
    if config is None or "runtime" not in config:
        return
    config["health"].stop()
    _stop_workers(config["runtime"])


def serve(*, workers: int | None, threads: int, with_scheduler: bool, with_outbox: bool = True) -> int:
    """Run gunicorn in this process; exits cleanly on SIGTERM after in-flight requests."""
    from gunicorn.app.base import BaseApplication

    from bot.web.worker import WORKER_CLASS  # gthread that receives each request whole first

    settings = load_settings(require=("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"))
    workers = workers or int(os.environ.get("WEB_CONCURRENCY", "1"))
    if workers > 1 and with_scheduler:
        log.warning("%d workers: the scheduler is left to a `clock` process", workers)
        with_scheduler = False
    # Refuse to start broken (database, rotations, token), in one line, before forking workers.
    _runtime(settings).storage.dispose()
    _check_token(settings)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            host = f"[{settings.host}]" if ":" in settings.host else settings.host  # IPv6 in brackets
            self.cfg.set("bind", f"{host}:{settings.port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", WORKER_CLASS)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("accesslog", "-")
            self.cfg.set("worker_exit", lambda _server, worker: _exit_worker(worker))

        def load(self) -> Any:
            # feed addresses and sign-in codes stay out of gunicorn's access lines
            logging.getLogger("gunicorn.access").addFilter(AccessLineFilter())
            return make_wsgi(settings, with_scheduler=with_scheduler, with_outbox=with_outbox)

    Server().run()
    return 0


def socket_mode(*, with_scheduler: bool) -> int:
    """Socket Mode: Slack connects out over a websocket; the HTTP routes are not served."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.slack.app import create_app

    settings = load_settings(require=("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"))
    runtime = _runtime(settings)
    _check_token(settings)
    bolt = create_app(runtime, signing_secret=None)
    _start_workers(runtime, with_scheduler)
    handler = SocketModeHandler(bolt, settings.slack_app_token)
    try:
        handler.start()
    except Exception as exc:
        if (error := refused(exc)) is None:
            raise
        raise ConfigError(f"SLACK_APP_TOKEN: Slack refused the app-level token ({error})") from None
    finally:
        _stop_workers(runtime)
    return 0


def clock() -> int:
    """The scheduler and the outbox worker, without HTTP, until SIGTERM or SIGINT."""
    settings = load_settings(require=("SLACK_BOT_TOKEN",))
    # Side effects can wait a few milliseconds, Slack's 3-second acknowledgement cannot: on a
    # host shared with web processes, they get the CPU first (alone, this costs nothing).
    os.nice(CLOCK_NICENESS)
    runtime = _runtime(settings, background=True)  # its writes let a waiting acknowledgement go first
    _check_token(settings)
    _start_workers(runtime, with_scheduler=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    log.info("clock running: handoffs, reminders, escalations and Slack side effects")
    stopped.wait()
    _stop_workers(runtime)
    return 0
