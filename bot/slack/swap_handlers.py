"""`/oncall swap` and `/oncall take` in Slack: the offer DM with Accept and Decline, and the
messages that tell both people (the rules are bot.oncall.swaps)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot.oncall import service as oncall
from bot.oncall import swaps
from bot.oncall.service import OncallError
from bot.oncall.swaps import SwapOffer, Turn
from bot.outbox import enqueue
from bot.slack import commands
from bot.slack.people import People
from bot.text import safe, user, when

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.slack.after_ack import AfterAck


class SwapFlows:
    def __init__(self, runtime: Runtime, people: People) -> None:
        self.rt = runtime
        self.people = people

    def _span(self, turn: Turn, reader: str) -> str:
        tz = self.people.tz(reader)
        return f"{when(turn.start, tz)} → {when(turn.end, tz)}"

    def _tell(self, session: Any, who: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        payload: dict[str, Any] = {"channel": who, "text": text}
        if blocks:
            payload["blocks"] = blocks
        enqueue(session, "slack.post", payload, now=self.rt.clock.now())

    def swap(self, cmd: commands.Swap, asker: str) -> str:
        """Offer asker's next shift for cmd.user's; an admin naming two people swaps them now."""
        rotation = oncall.find_rotation(self.rt.rotations, cmd.rotation)
        now = self.rt.clock.now()
        first, second = (cmd.user, cmd.other) if cmd.other else (asker, cmd.user)
        if cmd.other and not swaps.is_admin(rotation, asker):
            raise OncallError(f"Only the admins of `{rotation.name}` may swap shifts for others.")
        with self.rt.storage.session() as session:
            offer = swaps.offer_swap(db_session=session, rotation=rotation, asker=first, other=second, now=now,
                                     resolve=self.people.resolve)
            if cmd.other:
                swaps.exchange(db_session=session, rotation=rotation, offer=offer, actor=asker, now=now)
                for turn, other in ((offer.offered_by, offer.offered_to), (offer.offered_to, offer.offered_by)):
                    self._tell(session, turn.user, (
                        f":repeat: {user(asker)} swapped your *{safe(rotation.name)}* shift with {user(other.user)}'s: "
                        f"you are on call {self._span(other, turn.user)} instead of {self._span(turn, turn.user)}."))
            else:
                text = (f":repeat: {user(asker)} offers to swap *{safe(rotation.name)}* shifts: you take theirs, "
                        f"{self._span(offer.offered_by, second)}, and they take yours, "
                        f"{self._span(offer.offered_to, second)}.")
                self._tell(session, second, text, offer_blocks(text, offer))
        self.rt.after_commit()
        if cmd.other:
            return f"Swapped {user(first)}'s and {user(second)}'s next *{safe(rotation.name)}* shifts; both were told."
        return (f"Offered {user(second)} to swap your *{safe(rotation.name)}* shift "
                f"{self._span(offer.offered_by, asker)} for theirs, {self._span(offer.offered_to, asker)}. "
                "They accept or decline in a message from me.")

    def answer_offer(self, value: str, presser: str, accept: bool) -> str:
        """Accept or Decline pressed on an offer: only the person it was offered to answers."""
        offer = SwapOffer.from_value(value)
        a, b = offer.offered_by, offer.offered_to
        if presser != b.user:
            raise OncallError(f"This swap was offered to {user(b.user)}.")
        rotation = oncall.find_rotation(self.rt.rotations, offer.rotation)
        now = self.rt.clock.now()
        with self.rt.storage.session() as session:
            if accept:
                swaps.exchange(db_session=session, rotation=rotation, offer=offer, actor=presser, now=now)
                self._tell(session, a.user, (
                    f":white_check_mark: {user(b.user)} accepted your swap on *{safe(rotation.name)}*: you are on "
                    f"call {self._span(b, a.user)} instead of {self._span(a, a.user)}."))
            else:
                swaps.decline(db_session=session, offer=offer, now=now)
                self._tell(session, a.user, f":x: {user(b.user)} declined your swap on *{safe(rotation.name)}*; "
                                            "nothing changed.")
        self.rt.after_commit()
        if accept:
            return (f"Swapped: you are on call for *{safe(rotation.name)}* {self._span(a, b.user)} instead of "
                    f"{self._span(b, b.user)}; {user(a.user)} was told.")
        return f"Declined; {user(a.user)} was told."

    def take(self, cmd: commands.Take, asker: str) -> str:
        """Take over cmd.user's next shift (an override); they are told."""
        rotation = oncall.find_rotation(self.rt.rotations, cmd.rotation)
        now = self.rt.clock.now()
        member = swaps.member_named(rotation, cmd.user, self.people.resolve)
        with self.rt.storage.session() as session:
            turn = swaps.next_turn(db_session=session, rotation=rotation, member=member, user=cmd.user, after=now,
                                   under_way=True)
            record = oncall.add_override(db_session=session, rotation=rotation, user=asker, start=turn.start,
                                         end=turn.end, actor=asker, now=now, reason=f"takes over from {cmd.user}")
            self._tell(session, cmd.user, f":wave: {user(asker)} took over your *{safe(rotation.name)}* shift "
                                          f"{self._span(turn, cmd.user)}.")
            number = record.id
        self.rt.after_commit()
        return (f"Override #{number}: you take {user(cmd.user)}'s *{safe(cmd.rotation)}* shift "
                f"{self._span(turn, asker)}; they were told.")


def offer_blocks(text: str, offer: SwapOffer) -> list[dict[str, Any]]:
    """The offer DM: what is offered, then Accept and Decline."""
    value = offer.to_value()
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Accept"}, "action_id": "swap_accept",
             "value": value, "style": "primary"},
            {"type": "button", "text": {"type": "plain_text", "text": "Decline"}, "action_id": "swap_decline",
             "value": value},
        ]},
    ]


def register(app: App, runtime: Runtime, after_ack: AfterAck, flows: SwapFlows) -> None:
    def answer(body: dict[str, Any], respond: Respond, accept: bool) -> None:
        value = str(body["actions"][0].get("value", ""))
        after_ack.answer(respond, lambda: flows.answer_offer(value, body["user"]["id"], accept),
                         refusals=(OncallError,))

    @app.action("swap_accept")
    def accept(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        answer(body, respond, True)

    @app.action("swap_decline")
    def decline(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        answer(body, respond, False)
