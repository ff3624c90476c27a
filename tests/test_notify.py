"""Pages outside Slack, end to end: a real SMTP server and an HTTP receiver take what Apprise
sends, the test follows the acknowledgement link from the received text, and the clock is
moved for the contacts' delays and the escalation's repeats. Both databases."""

from __future__ import annotations

import logging
import re
import shutil
import urllib.parse
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.models import ContactSetting, Incident, Notification, Page, PostmortemDraft
from bot.notify.flows import MAX_ATTEMPTS
from bot.testing.receivers import HttpReceiver, SmtpReceiver, text_of
from tests.conftest import ROTATIONS, START, start_bot

PUBLIC = "https://oncall.example.com"
LINK = re.compile(re.escape(PUBLIC) + r"/ack/[A-Za-z0-9._-]+")


def people_file(smtp: SmtpReceiver, receiver: HttpReceiver, *, frank_notify: str = "email = 0, push = 1") -> str:
    """frank (on call for payments at START): e-mail at once, a JSON push after a minute, ntfy
    (no notify entry) after the default 2 minutes. grace and heidi (the secondary): a push each."""
    return f"""
[[people]]
user = "U0FRANK"
contacts = {{ email = "mailto://127.0.0.1:{smtp.port}?from=oncall@example.com&to=frank@example.com", push = "json://127.0.0.1:{receiver.port}/frank-s3cret", phone = "ntfy://127.0.0.1:{receiver.port}/frank-topic" }}
notify = {{ {frank_notify} }}

[[people]]
user = "U0GRACE"
contacts = {{ push = "json://127.0.0.1:{receiver.port}/grace" }}
notify = {{ push = 0 }}

[[people]]
user = "U0HEIDI"
contacts = {{ push = "json://127.0.0.1:{receiver.port}/heidi" }}
notify = {{ push = 0 }}
"""


def rotations_with(tmp_path, people: str, *, repeat: int | None = None):
    folder = tmp_path / "rotations"
    shutil.copytree(ROTATIONS, folder)
    (folder / "people.toml").write_text(people)
    if repeat is not None:
        payments = folder / "payments.toml"
        payments.write_text(payments.read_text().replace("default = true", f"default = true\nescalation_repeat = {repeat}"))
    return folder


@pytest.fixture
def start(settings_env, standin, tmp_path):
    """start(people, repeat=None) -> a served bot reading that people file; stopped after the test."""
    stops = []

    def run(people: str, *, repeat: int | None = None):
        env = {**settings_env, "ROTATIONS_DIR": str(rotations_with(tmp_path, people, repeat=repeat)),
               "PUBLIC_URL": PUBLIC}
        bot, stop = start_bot(env, standin, ManualClock(START))
        stops.append(stop)
        return bot

    yield run
    for stop in stops:
        stop()


def pages(bot):
    with bot.rt.storage.read() as session:
        return session.exec(select(Page).order_by(Page.id)).all()


def notifications(bot):
    with bot.rt.storage.read() as session:
        return {(n.page_id, n.contact): n for n in session.exec(select(Notification)).all()}


def declare(bot, text="declare sev1 Checkout down"):
    bot.command("U0ALICE", "/incident", text)
    return bot.channel_of(1)


def link_path(text: str) -> str:
    """The path of the acknowledgement link in a notification's text."""
    found = LINK.search(text)
    assert found, f"no acknowledgement link in {text!r}"
    return found.group(0)[len(PUBLIC):]


def csrf_of(body: str) -> str:
    return re.search(r"name=csrf value='([^']+)'", body).group(1)


def post_form(bot, path: str, fields: dict[str, str]):
    body = urllib.parse.urlencode(fields)
    return bot.post(path, body, {"Content-Type": "application/x-www-form-urlencoded"})


def test_a_page_reaches_each_contact_at_its_delay_and_the_link_acknowledges_it(start, smtp, receiver, standin):
    bot = start(people_file(smtp, receiver))
    channel = declare(bot)
    [mail] = smtp.to("frank@example.com")  # notify email = 0: with the Slack DM
    assert any("paged you for incident #1" in m["text"] for m in standin.dms("U0FRANK"))
    text = text_of(mail)
    assert "Incident #1 (SEV1): Checkout down" in text and "alice paged you" in text
    assert not receiver.received
    bot.advance(timedelta(seconds=59))
    assert not receiver.at("/frank-s3cret")
    bot.advance(timedelta(seconds=1))
    [push] = receiver.at("/frank-s3cret")  # push = 1 minute
    assert "Incident #1 (SEV1): Checkout down" in push.text and link_path(push.text) == link_path(text)
    bot.advance(timedelta(minutes=1))
    [phone] = receiver.at("/")  # ntfy posts the topic in its body; no notify entry: 2 minutes
    assert phone.body["topic"] == "frank-topic" and link_path(phone.text) == link_path(text)

    path = link_path(text)
    shown = bot.get(path)  # what a mail scanner or a link preview does: changes nothing
    assert shown.status == 200 and "Incident #1 (SEV1): Checkout down" in shown.body
    assert "frank" not in shown.body.lower() and "alice" not in shown.body.lower()  # the number, severity and title only
    assert pages(bot)[0].acknowledged_at is None

    bot.clock.advance(timedelta(minutes=1))
    done = post_form(bot, path, {"csrf": csrf_of(shown.body)})
    bot.settle()
    assert done.status == 200 and "Acknowledged" in done.body
    [page] = pages(bot)
    assert (page.acknowledged_by, page.acknowledged_via) == ("U0FRANK", "link")
    assert page.acknowledged_at == START + timedelta(minutes=3)
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1).acknowledged_at == START + timedelta(minutes=3)
    assert any(m["text"] == ":white_check_mark: <@U0FRANK> acknowledged the page from the acknowledgement link."
               for m in standin.messages(channel))
    bot.advance(timedelta(minutes=30))
    assert len(pages(bot)) == 1  # the escalation was cancelled
    assert bot.get(path).status == 410
    assert post_form(bot, path, {"csrf": csrf_of(shown.body)}).status == 410


def test_acknowledging_in_slack_stops_the_contacts_not_yet_reached(start, smtp, receiver, standin):
    bot = start(people_file(smtp, receiver))
    declare(bot)
    bot.advance(timedelta(seconds=30))
    bot.press("U0FRANK", "page_ack", str(pages(bot)[0].id))
    bot.advance(timedelta(minutes=10))
    assert len(smtp.to("frank@example.com")) == 1 and not receiver.received
    sent = notifications(bot)
    assert {name: n.status for (_, name), n in sent.items()} == {
        "email": "delivered", "push": "cancelled", "phone": "cancelled"}
    assert pages(bot)[0].acknowledged_via == "slack"


def test_forged_unknown_used_and_csrf_less_links_change_nothing(start, smtp, receiver, standin):
    bot = start(people_file(smtp, receiver))
    channel = declare(bot)
    path = link_path(text_of(smtp.to("frank@example.com")[0]))
    page_id, nonce, signature = path.rsplit("/", 1)[1].split(".")
    forged = f"/ack/{page_id}.{nonce}.{'A' * len(signature)}"
    for bad in (forged, f"/ack/999.{nonce}.{signature}", "/ack/nothing", f"/ack/{page_id}.x.{signature}"):
        answer = bot.get(bad)
        assert answer.status == 404 and "not valid" in answer.body
        assert post_form(bot, bad, {"csrf": "x"}).status == 404
    shown = bot.get(path)
    refused = post_form(bot, path, {})
    assert refused.status == 403
    assert post_form(bot, path, {"csrf": csrf_of(shown.body)[:-1] + "x"}).status == 403
    bot.settle()
    assert pages(bot)[0].acknowledged_at is None
    bot.command("U0ALICE", "/incident", "resolve false alarm", channel=channel)
    assert bot.get(path).status == 410  # dead once the page ends
    assert post_form(bot, path, {"csrf": csrf_of(shown.body)}).status == 410
    assert pages(bot)[0].acknowledged_at is None


def test_the_link_pages_send_security_headers(start, smtp, receiver):
    import urllib.request

    bot = start(people_file(smtp, receiver))
    declare(bot)
    path = link_path(text_of(smtp.to("frank@example.com")[0]))
    for target in (path, "/ack/nothing"):
        try:
            reply = urllib.request.urlopen(bot.url + target, timeout=10)
        except urllib.error.HTTPError as error:
            reply = error
        headers = reply.headers
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"


def test_a_failing_contact_is_retried_then_said_in_the_channel_and_counted(start, smtp, receiver, standin, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.status_for["/frank-s3cret"] = 500
    bot = start(people_file(smtp, receiver, frank_notify="email = 0, push = 0"))
    channel = declare(bot)
    assert len(receiver.at("/frank-s3cret")) == MAX_ATTEMPTS
    [said] = [m["text"] for m in standin.messages(channel) if "could not reach" in m["text"]]
    assert said.startswith(f":warning: I could not reach <@U0FRANK> on their contact `push` (json://…) after "
                           f"{MAX_ATTEMPTS} tries")
    assert notifications(bot)[(1, "push")].status == "failed"
    assert notifications(bot)[(1, "email")].status == "delivered"
    metrics = bot.get("/metrics").body
    assert 'oncall_notifications_total{kind="json",outcome="failed"} 1.0' in metrics
    assert 'oncall_notifications_total{kind="mailto",outcome="delivered"} 1.0' in metrics
    assert 'oncall_notifications_total{kind="slack",outcome="delivered"} 1.0' in metrics
    assert "s3cret" not in caplog.text and "s3cret" not in said  # contact URLs are never logged nor shown


def test_escalation_repeat_walks_the_chain_again_one_message_a_step_and_ends_once(start, smtp, receiver, standin):
    bot = start(people_file(smtp, receiver), repeat=1)
    channel = declare(bot)
    for _ in range(4):
        bot.advance(timedelta(minutes=10))
    chain = [(p.user, p.rotation, p.level, p.chain_round) for p in pages(bot)]
    secondary = chain[1][0]
    assert chain == [("U0FRANK", "payments", 0, 0), (secondary, "payments-secondary", 1, 0),
                     ("U0FRANK", "payments", 2, 1), (secondary, "payments-secondary", 3, 1)]
    said = [m["text"] for m in standin.messages(channel)]
    steps = [t for t in said if "Escalating" in t]
    assert steps == [
        (f":arrow_double_up: Escalating (no acknowledgement in time): paged <@{secondary}> (on call for "
         f"`payments-secondary`), escalation step 1."),
        (":arrow_double_up: Escalating (no acknowledgement in time, round 2 of the chain): paged <@U0FRANK> "
         "(on call for `payments`), escalation step 2."),
        (f":arrow_double_up: Escalating (no acknowledgement in time): paged <@{secondary}> (on call for "
         f"`payments-secondary`), escalation step 3."),
    ]
    assert not [t for t in said if t.startswith(":pager:") and "escalation step" in t]
    assert len([t for t in said if "has no further step" in t]) == 1
    assert len([m for m in standin.dms("U0ALICE") if "has no further step" in m["text"]]) == 1  # the commander
    assert len(smtp.to("frank@example.com")) == 2  # paged again: notified again
    assert len(receiver.at(f"/{secondary.removeprefix('U0').lower()}")) == 2
    bot.advance(timedelta(hours=1))
    assert len(pages(bot)) == 4


def test_contacts_set_in_slack_win_over_the_file_and_bad_input_saves_nothing(start, smtp, receiver, standin):
    from tests.test_oncall import reply

    bot = start(people_file(smtp, receiver))
    secret_url = f"json://127.0.0.1:{receiver.port}/alice-s3cret"
    saved = reply(bot, standin, "U0ALICE", f"contact pager <{secret_url}>")
    assert saved.startswith("Contact saved: `pager` · json://… · 2 min after a page.") and "s3cret" not in saved
    for bad, said in (
        ("contact pager notaurl", "That is not a contact URL I can use"),
        ("contact slack json://127.0.0.1:1/x", "cannot name a contact"),
        ("notify nosuch 3", "You have no contact named `nosuch` (yours: `pager`); nothing was saved."),
        ("notify pager 5000", "`5000` is not a number of minutes from 0 to 1440; nothing was saved."),
        ("notify pager soon", "is not a number of minutes"),
        ("contact remove nosuch", "You have no contact named `nosuch`"),
    ):
        answer = reply(bot, standin, "U0ALICE", bad)
        assert said in answer and "\n" not in answer, bad
    with bot.rt.storage.read() as session:
        assert [(s.name, s.notify_minutes) for s in session.exec(select(ContactSetting)).all()] == [("pager", None)]
    assert reply(bot, standin, "U0ALICE", "notify pager 0") == "Saved: `pager` · json://… · 0 min after a page."
    tested = reply(bot, standin, "U0ALICE", "contact test")
    assert tested == "Test sent: `pager` (json://…) worked."
    assert "Test from the on-call bot" in receiver.at("/alice-s3cret")[0].text

    # Slack links the addresses it sees inside a URL and escapes &: the URL is read as typed.
    typed = (f"contact mail mailto://127.0.0.1:{smtp.port}?from=<mailto:oncall@example.com|oncall@example.com>"
             f"&amp;to=<mailto:alice@example.com|alice@example.com>")
    assert reply(bot, standin, "U0ALICE", typed).startswith("Contact saved: `mail` · mailto://…")
    assert reply(bot, standin, "U0ALICE", "contact test") == "Test sent: `mail` (mailto://…) worked; `pager` (json://…) worked."
    assert "Test from the on-call bot" in text_of(smtp.to("alice@example.com")[0])
    reply(bot, standin, "U0ALICE", "contact remove mail")

    # frank's e-mail is at once in the file; moved to 5 minutes in Slack.
    assert reply(bot, standin, "U0FRANK", "notify email 5") == (
        "Saved: `email` · mailto://… · 5 min after a page.")
    assert reply(bot, standin, "U0FRANK", "contact remove phone") == "Contact `phone` removed: pages no longer go there."
    declare(bot)
    assert not smtp.to("frank@example.com")
    bot.advance(timedelta(minutes=5))
    assert len(smtp.to("frank@example.com")) == 1
    assert not receiver.at("/")  # the removed ntfy contact

    bot.event({"type": "app_home_opened", "user": "U0FRANK", "channel": "D0FRANK", "tab": "home"})
    home = str(standin.calls_to("views.publish")[-1].args["view"])
    assert "`email` · mailto://… · 5 min after a page" in home and "`push` · json://… · 1 min after a page" in home
    assert "s3cret" not in home and "frank@example.com" not in home


def test_someone_else_pressing_acknowledge_is_refused(start, smtp, receiver, standin):
    bot = start(people_file(smtp, receiver))
    declare(bot)
    bot.press("U0MALLORY", "page_ack", str(pages(bot)[0].id))
    assert pages(bot)[0].acknowledged_at is None
    assert any("only they can acknowledge it" in m.get("text", "") for m in standin.ephemerals("U0MALLORY"))


def test_time_to_acknowledge_and_the_postmortem_use_the_acknowledged_page(start, smtp, receiver, standin):
    bot = start(people_file(smtp, receiver))
    channel = declare(bot)
    bot.press("U0MALLORY", "incident_respond", "1", channel=channel)  # responding is not acknowledging
    bot.advance(timedelta(minutes=1, seconds=30))
    path = link_path(text_of(smtp.to("frank@example.com")[0]))
    post_form(bot, path, {"csrf": csrf_of(bot.get(path).body)})
    bot.settle()
    metrics = bot.get("/metrics").body
    assert "oncall_time_to_acknowledge_seconds_count 1.0" in metrics
    assert "oncall_time_to_acknowledge_seconds_sum 90.0" in metrics
    bot.command("U0ALICE", "/incident", "resolve Rolled back", channel=channel)
    with bot.rt.storage.read() as session:
        draft = session.exec(select(PostmortemDraft)).one().markdown
    assert "| 2026-03-10 15:00 | @frank | payments | 1 | after 1 min by @frank (link) | — |" in draft
    assert "Notifications outside Slack:" in draft
    assert ("| 2026-03-10 15:00 | @frank | email | delivered |\n"
            "| 2026-03-10 15:01 | @frank | push | delivered |\n"
            "| 2026-03-10 15:02 | @frank | phone | not sent (answered first) |\n") in draft


def test_stored_incidents_keep_working_after_the_migration(database_url, settings_env, standin):
    """Before the migration the summary's button set an incident's acknowledgement for whoever
    pressed; afterwards it is the first acknowledged page, and old pages still escalate."""
    from alembic import command
    from sqlalchemy import text

    from bot.storage import Storage, alembic_config

    storage = Storage(database_url)
    with storage.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    naive = START.replace(tzinfo=None)
    with storage.engine.begin() as connection:
        for number, pressed in ((1, 1), (2, 1), (3, None)):
            connection.execute(text(
                "INSERT INTO incident (id, title, severity, status, commander, declarer, rotation, channel_id, "
                "declared_at, acknowledged_at) VALUES (:id, :title, 1, 'investigating', 'U0ALICE', 'U0ALICE', "
                "'payments', 'C0GENERAL', :declared, :acknowledged)"),
                {"id": number, "title": f"Old {number}", "declared": naive,
                 "acknowledged": naive + timedelta(minutes=pressed) if pressed else None})
        connection.execute(text(
            "INSERT INTO page (incident_id, \"user\", rotation, level, paged_by, paged_at, acknowledged_at, "
            "acknowledged_by) VALUES (1, 'U0FRANK', 'payments', 0, 'U0ALICE', :at, :acked, 'U0FRANK'), "
            "(2, 'U0FRANK', 'payments', 0, 'U0ALICE', :at, NULL, NULL)"),
            {"at": naive, "acked": naive + timedelta(minutes=5)})
    storage.migrate()
    with storage.read() as session:
        assert [i.acknowledged_at for i in session.exec(select(Incident).order_by(Incident.id)).all()] == [
            START + timedelta(minutes=5), None, None]
    storage.dispose()

    bot, stop = start_bot(settings_env, standin, ManualClock(START + timedelta(minutes=20)))
    try:
        [waiting] = [p for p in pages(bot) if p.incident_id == 2]
        bot.press("U0FRANK", "page_escalate", str(waiting.id))
        [old, new] = [p for p in pages(bot) if p.incident_id == 2]
        assert old.escalated_by == "U0FRANK" and (new.rotation, new.level) == ("payments-secondary", 1)
        assert any("Escalating (escalated by <@U0FRANK>): paged" in m["text"] for m in standin.messages("C0GENERAL"))
    finally:
        stop()


def test_a_notification_due_while_the_bot_is_down_is_sent_once_after_a_restart(settings_env, standin, tmp_path,
                                                                               smtp, receiver):
    env = {**settings_env, "ROTATIONS_DIR": str(rotations_with(tmp_path, people_file(smtp, receiver))),
           "PUBLIC_URL": PUBLIC}
    clock = ManualClock(START)
    first, stop_first = start_bot(env, standin, clock)
    first.command("U0ALICE", "/incident", "declare sev1 Checkout down")
    stop_first()  # down with frank's push (1 min) and phone (2 min) still to come
    clock.advance(timedelta(minutes=5))
    second, stop_second = start_bot(env, standin, clock)
    try:
        second.advance(timedelta(seconds=1))
        second.advance(timedelta(minutes=1))
        assert len(receiver.at("/frank-s3cret")) == 1 and len(receiver.at("/")) == 1
        assert len(smtp.to("frank@example.com")) == 1
    finally:
        stop_second()


def test_command_not_taken_reaches_the_incoming_persons_contacts_too_until_they_take_it(start, smtp, receiver, standin):
    """Nobody takes command 15 minutes after the commander's shift ends: the incoming on-call
    person gets the DM and, at each contact's delay, a notification that names the incident and
    carries no acknowledgement link (it is not a page). Taking command stops the rest."""
    dave = f"""
[[people]]
user = "U0DAVE"
contacts = {{ push = "json://127.0.0.1:{receiver.port}/dave", phone = "json://127.0.0.1:{receiver.port}/dave-phone" }}
notify = {{ push = 0, phone = 10 }}
"""
    bot = start(people_file(smtp, receiver) + dave)
    declare(bot, "declare sev2 Checkout down")
    bot.command("U0ALICE", "/incident", "commander <@U0FRANK>", channel=bot.channel_of(1))
    # Singapore takes payments at 08:00 SGT (00:00 UTC on the 11th); Dave is on call then.
    bot.advance(START.replace(day=11, hour=0, minute=14) - bot.clock.now())
    assert not receiver.at("/dave")
    bot.advance(timedelta(minutes=2))
    (asked,) = [m for m in standin.dms("U0DAVE") if "Nobody has taken command" in m["text"]]
    [push] = receiver.at("/dave")
    assert "Take command: incident #1 (SEV2): Checkout down" in push.text and "/ack/" not in push.text
    with bot.rt.storage.read() as session:
        assert "U0DAVE" not in [p.user for p in session.exec(select(Page)).all()]  # not a page
    [value] = [e["value"] for b in asked["blocks"] if b["type"] == "actions" for e in b["elements"]]
    bot.press("U0DAVE", "take_command", value, channel="D0DAVE")
    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1).commander == "U0DAVE"
    bot.advance(timedelta(minutes=15))
    assert not receiver.at("/dave-phone")  # taken before its delay: never sent
    with bot.rt.storage.read() as session:
        statuses = {n.contact: n.status for n in session.exec(select(Notification).where(Notification.user == "U0DAVE"))}
    assert statuses == {"push": "delivered", "phone": "cancelled"}
