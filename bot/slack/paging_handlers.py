"""The page DM's Acknowledge and Escalate buttons (the flows are bot.incidents.paging)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot.incidents.service import IncidentError
from bot.oncall.service import OncallError

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.slack.after_ack import AfterAck


def register(app: App, runtime: "Runtime", after_ack: "AfterAck") -> None:
    flows = runtime.paging

    def page_id_of(body: dict[str, Any]) -> int:
        value = str(body["actions"][0].get("value", ""))
        if not value.isascii() or not value.isdigit() or len(value) > 9:
            raise IncidentError("That button is not one of mine.")
        return int(value)

    @app.action("page_ack")
    def acknowledge(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        after_ack.answer(respond, lambda: flows.acknowledge(page_id=page_id_of(body), actor=body["user"]["id"]),
                         refusals=(IncidentError, OncallError))

    @app.action("page_escalate")
    def escalate(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        after_ack.answer(respond, lambda: flows.escalate_by_hand(page_id=page_id_of(body), actor=body["user"]["id"]),
                         refusals=(IncidentError, OncallError))
