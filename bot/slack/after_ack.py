"""Slack work a listener owes after its acknowledgement, run off the request's thread."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Callable

from slack_bolt import Respond

from bot.observability.slack_requests import hand_off, mark_outcome


class AfterAck:
    """What a listener must do after its acknowledgement has left (Slack calls: opening a
    form, replying through response_url, ephemeral messages) runs on a pool thread, so that
    the 3-second reply never waits for it."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def __call__(self, work: Callable[[], object]) -> None:
        self.executor.submit(hand_off(work))

    def answer(self, respond: Respond, work: Callable[[], str | None], refusals: tuple[type[Exception], ...]) -> None:
        """Run a button's work after its acknowledgement and tell the presser, ephemerally, what
        happened (the text work returns, if any) or why not (a refusal's message)."""

        def run() -> None:
            try:
                text = work()
            except refusals as exc:
                mark_outcome("refused")
                text = str(exc)
            if text:
                respond(text=text, response_type="ephemeral", replace_original=False)

        self(run)
