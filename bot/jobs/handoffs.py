"""Shift changes: planned as one-off jobs at the UTC instants our engine computes.

Each handoff job is keyed by rotation, incoming region and instant, so it fires once. When it
fires it checks who was on call just before and who is now (overrides may have changed the
plan since), DMs both people, posts in the rotation's channel, sets the Slack user group, and
offers "Take command" on open incidents whose commander just went off shift."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from bot.incidents import service as incidents
from bot.jobs.scheduler import claim, request_job
from bot.models import Claim, Incident
from bot.oncall import service as oncall
from bot.outbox import enqueue
from bot.text import escape, safe, user

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
PLAN_AHEAD = timedelta(hours=48)
REPLAN_EVERY = timedelta(hours=1)
MISSED_LOOKBACK = timedelta(days=7)
JUST_BEFORE = timedelta(seconds=1)
COMMAND_GRACE = timedelta(minutes=15)
COMMAND_CHECK = "handoff.command_check"


def slack_time(instant: datetime) -> str:
    """A time Slack shows in each reader's own zone, with a UTC fallback."""
    return f"<!date^{int(instant.timestamp())}^{{date_short_pretty}} {{time}}|{instant:%Y-%m-%d %H:%M} UTC>"


def handoff_key(rotation: str, region: str, at: datetime) -> str:
    return f"handoff:{rotation}:{region}:{at.isoformat()}"


def plan_handoffs(runtime: "Runtime") -> None:
    """On start: announce the latest missed handoff once per rotation, then plan ahead."""
    now = runtime.clock.now()
    for rotation in runtime.rotations.values():
        with runtime.storage.read() as session:
            found = oncall.adjustments(db_session=session, rotation=rotation)
        past = oncall.handoffs(rotation, now - MISSED_LOOKBACK, now, found)
        with runtime.storage.session() as session:  # a first start has missed nothing
            first_start = claim(session, f"planned:{rotation.name}", now)
        if past and not first_start:
            last, region = past[-1]
            key = handoff_key(rotation.name, region, last)
            with runtime.storage.read() as session:
                done = session.exec(select(Claim.key).where(Claim.key == f"job:{key}")).first()
            if done is None:
                log.info("announcing the handoff of %s at %s missed while the bot was down", rotation.name, last)
                runtime.scheduler.execute("handoff", key, {"rotation": rotation.name, "at": last.isoformat(), "late": True})
    with runtime.storage.session() as session:
        _plan(runtime, session, now)
    runtime.scheduler.sync()


def _plan(runtime: "Runtime", session: Session, now: datetime) -> None:
    for rotation in runtime.rotations.values():
        found = oncall.adjustments(db_session=session, rotation=rotation)
        for at, region in oncall.handoffs(rotation, now, now + PLAN_AHEAD, found):
            request_job(session, kind="handoff", key=handoff_key(rotation.name, region, at), run_at=at,
                        payload={"rotation": rotation.name, "at": at.isoformat()})
    next_plan = now + REPLAN_EVERY
    request_job(session, kind="handoff.plan", key=f"plan:{next_plan.isoformat()}", run_at=next_plan, payload={})


def install(runtime: "Runtime") -> None:
    def replan(session: Session, payload: dict[str, Any]) -> None:
        _plan(runtime, session, runtime.clock.now())

    def handoff(session: Session, payload: dict[str, Any]) -> None:
        rotation = runtime.rotations.get(payload["rotation"])
        if rotation is None:
            return
        at = datetime.fromisoformat(payload["at"])
        outgoing_shift = oncall.on_call_at(db_session=session, rotation=rotation, at=at - JUST_BEFORE)
        incoming_shift = oncall.on_call_at(db_session=session, rotation=rotation, at=at)
        if outgoing_shift.user == incoming_shift.user:
            return  # the plan changed since (an override): nobody changes hands here
        people = runtime.people
        incoming, outgoing = people.resolve(incoming_shift.user), people.resolve(outgoing_shift.user)
        now = runtime.clock.now()
        name = escape(rotation.name)
        open_incidents = incidents.list_open_incidents(db_session=session)
        relevant = [i for i in open_incidents if i.rotation == rotation.name or i.commander == outgoing]
        incident_lines = "".join(
            f"\n• <#{i.channel_id}> #{i.id} {'(private)' if i.private else safe(i.title)} (SEV{i.severity}, {i.status}, "
            f"commander {user(i.commander)})" for i in relevant if i.channel_id)
        open_text = f"\nOpen incidents:{incident_lines}" if incident_lines else "\nNo open incidents."
        late = " (announced late: the bot was down at the time)" if payload.get("late") else ""
        enqueue(session, "slack.post", {"channel": incoming, "text": (
            f":pager: You are now on call for *{name}* ({escape(incoming_shift.region)}) until "
            f"{slack_time(incoming_shift.end)}, taking over from {user(outgoing)}{late}.{open_text}")}, now=now)
        enqueue(session, "slack.post", {"channel": outgoing, "text": (
            f":wave: Your *{name}* shift has ended; {user(incoming)} has the pager now{late}.{open_text}")}, now=now)
        if rotation.channel:
            enqueue(session, "slack.post", {"channel": rotation.channel, "text": (
                f":pager: *{name}* handoff at {slack_time(at)}: {user(outgoing)} → {user(incoming)} "
                f"({escape(incoming_shift.region)}, until {slack_time(incoming_shift.end)}){late}")}, now=now)
        if rotation.usergroup:
            enqueue(session, "slack.usergroup", {"usergroup": rotation.usergroup, "users": [incoming]}, now=now)
        for incident in relevant:
            if incident.commander == outgoing and incident.channel_id:
                enqueue(session, "slack.invite", {"channel": incident.channel_id, "users": [incoming]}, now=now)
                enqueue(session, "slack.post", {"channel": incident.channel_id, "text": (
                    f"{user(outgoing)}'s on-call shift has ended. {user(incoming)} is on call for {name} now."),
                    "blocks": take_command_blocks(incident.id, outgoing, incoming)}, now=now)
                check_at = at + COMMAND_GRACE
                request_job(session, kind=COMMAND_CHECK, key=f"command:{incident.id}:{check_at.isoformat()}",
                            run_at=check_at, payload={"incident_id": incident.id, "outgoing": outgoing,
                                                      "incoming": incoming})

    def command_check(session: Session, payload: dict[str, Any]) -> None:
        """15 minutes after the commander's shift ended: nobody took command, so the incoming
        on-call person of the incident's rotation is asked to."""
        incident = session.get(Incident, payload["incident_id"])
        if incident is None or incident.status == "resolved" or incident.commander != payload["outgoing"]:
            return
        now = runtime.clock.now()
        person = payload["incoming"]
        rotation = runtime.rotations.get(incident.rotation or "")
        if rotation is not None:
            person = runtime.people.resolve(oncall.on_call_at(db_session=session, rotation=rotation, at=now).user)
        if person == incident.commander:
            return
        offer_command(session, incident=incident, person=person, now=now)
        if runtime.notifications is not None:  # and their contacts outside Slack, by their notify rules
            runtime.notifications.plan_command(session, incident=incident, person=person, now=now)

    runtime.scheduler.register("handoff", handoff)
    runtime.scheduler.register(COMMAND_CHECK, command_check)
    runtime.scheduler.register("handoff.plan", replan)


def offer_command(session: Session, *, incident: Incident, person: str, now: datetime) -> None:
    """Ask one person, by Slack DM, to take command of an incident whose commander went off
    shift (not a page: it does not count for the time to acknowledge)."""
    text = (
        f":sos: Nobody has taken command of incident #{incident.id} *{safe(incident.title)}* "
        f"(SEV{incident.severity}, {incident.status}) since {user(incident.commander)}'s shift ended. "
        f"You are on call: please take command" + (f" in <#{incident.channel_id}>." if incident.channel_id else ".")
    )
    if incident.channel_id:
        enqueue(session, "slack.invite", {"channel": incident.channel_id, "users": [person]}, now=now)
    enqueue(session, "slack.post", {"channel": person, "text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Take command"}, "action_id": "take_command",
             "value": f"{incident.id}:{person}:{incident.commander}", "style": "primary"}]},
    ]}, now=now)
    incidents.add_entry(db_session=session, incident=incident, at=now, actor="oncall-bot", kind="command",
                        text=f"Nobody took command 15 minutes after the shift ended; asked <@{person}>")


def take_command_blocks(number: int, outgoing: str, incoming: str) -> list[dict[str, Any]]:
    text = (
        f":sunrise: {user(outgoing)}'s on-call shift has ended while they command this incident. "
        f"{user(incoming)}, you are on call now: take command so the incident does not stall."
    )
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Take command"}, "action_id": "take_command",
             "value": f"{number}:{incoming}:{outgoing}", "style": "primary"}]},
    ]
