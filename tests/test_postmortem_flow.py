"""Postmortem drafts end to end: resolve in Slack, the draft uploaded to the channel, stored by
version, written to POSTMORTEMS_DIR, reminded about after two business days, served as HTML."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.models import Incident, PostmortemDraft
from bot.postmortem.service import reminder_due, split_summary
from tests.conftest import START, Visitor, start_bot

FRIDAY_10_PDT = datetime(2026, 3, 13, 17, 0, tzinfo=UTC)  # Friday 13 March, 10:00 in Los Angeles


def incident_command(bot, text, *, user="U0ALICE", number=1):
    channel = bot.channel_of(number) if not text.startswith("declare") else "C0GENERAL"
    response = bot.command(user, "/incident", text, channel=channel)
    assert response.status == 200
    return response.text


def uploads(standin, number=1):
    return [f for f in standin.files() if f["name"] == f"postmortem-inc-{number}.md"]


def drafts(bot, number=1):
    with bot.rt.storage.read() as session:
        rows = session.exec(select(PostmortemDraft).where(PostmortemDraft.incident_id == number))
        return sorted(rows, key=lambda d: d.version)


def postmortem_dms(standin, user="U0ALICE"):
    return [m["text"] for m in standin.dms(user) if "postmortem" in m["text"]]


@pytest.fixture
def bot_with(settings_env, standin):
    """Start the bot with some settings changed (e.g. TEMPLATES_DIR, POSTMORTEMS_DIR)."""
    stops = []

    def start(**changes):
        served, stop = start_bot({**settings_env, **changes}, standin, ManualClock(START))
        stops.append(stop)
        return served

    yield start
    for stop in stops:
        stop()


def test_resolving_uploads_the_draft_with_title_timeline_and_action_items(bot, standin):
    incident_command(bot, "declare sev2 Checkout down")
    channel = bot.channel_of(1)
    incident_command(bot, "note Card auth times out; token xoxb-1234567890-abcdefghij leaked")
    incident_command(bot, "action <@U0BOB> Alert on PSP connection-pool saturation")
    bot.advance(timedelta(minutes=25))
    incident_command(bot, "status monitoring")
    bot.advance(timedelta(minutes=20))
    reply = incident_command(bot, "resolve Rolled back 4.18. Impact: 12% of checkouts failed")
    assert reply == "Incident #1 resolved."

    [upload] = uploads(standin)
    assert upload["channels"] == [channel]
    markdown = upload["content"].decode()
    assert markdown.startswith("# INC-1 postmortem: Checkout down")
    assert "## Timeline" in markdown and "Card auth times out" in markdown
    assert "Alert on PSP connection-pool saturation" in markdown and "| @bob |" in markdown  # the owner by name
    assert "Rolled back 4.18." in markdown and "12% of checkouts failed" in markdown
    assert "| Mitigated | 2026-03-10 15:25 |" in markdown
    assert "xoxb-1234567890" not in markdown and "[REDACTED:slack-token]" in markdown
    posted = standin.messages(channel)
    assert any(m.get("files") and "version 1" in m["text"] for m in posted)

    [draft] = drafts(bot)
    assert (draft.version, draft.status, draft.markdown) == (1, "draft", markdown)
    broadcast = standin.messages("C0INCIDENTS")[-1]["text"]
    assert "Incident resolved" in broadcast
    assert re.search(
        rf"<http://\S+/{upload['id']}/postmortem-inc-1\.md\|postmortem-inc-1\.md>", broadcast
    )


def test_incident_postmortem_drafts_again_as_version_2_with_newer_data(bot, standin):
    incident_command(bot, "declare sev3 Search is slow")
    incident_command(bot, "resolve Reindexed")
    incident_command(bot, "action Add a reindex runbook")

    reply = incident_command(bot, "postmortem")

    assert "version 2" in reply
    assert [d.version for d in drafts(bot)] == [1, 2]
    first, second = (f["content"].decode() for f in uploads(standin))
    assert "Add a reindex runbook" not in first and "Add a reindex runbook" in second
    assert len(standin.messages("C0INCIDENTS")) == 2  # declared, resolved: a redraft is quiet


def test_a_slack_outage_during_the_upload_is_retried_and_uploads_once(bot, standin):
    incident_command(bot, "declare sev3 Search is slow")
    standin.fail_next("files.getUploadURLExternal", status=500, count=4)

    incident_command(bot, "resolve Reindexed")

    assert len(uploads(standin)) == 1
    assert "postmortem-inc-1.md" in standin.messages("C0INCIDENTS")[-1]["text"]


def test_an_upload_slack_refuses_for_good_still_broadcasts_the_resolution(bot, standin):
    incident_command(bot, "declare sev3 Search is slow")
    standin.fail_next("files.completeUploadExternal", status=None, error="is_archived")

    incident_command(bot, "resolve Reindexed")

    assert uploads(standin) == []
    last = standin.messages("C0INCIDENTS")[-1]["text"]
    assert "Incident resolved" in last and "Postmortem draft" not in last
    assert drafts(bot)[0].version == 1  # the draft is kept; /incident postmortem uploads again


def test_the_commander_is_reminded_two_business_days_later_at_the_same_local_time(bot, standin):
    bot.advance(FRIDAY_10_PDT - START)
    incident_command(bot, "declare sev3 Search is slow")
    incident_command(bot, "resolve Reindexed")

    bot.advance(datetime(2026, 3, 17, 16, 59, tzinfo=UTC) - bot.clock.now())  # Tue 09:59 PDT
    assert postmortem_dms(standin) == []
    bot.advance(timedelta(minutes=2))
    [reminder] = postmortem_dms(standin)
    assert "incident #1" in reminder and "still a draft" in reminder


def test_a_broken_custom_template_still_resolves_and_uploads_a_plain_draft(
    bot_with, standin, tmp_path
):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "postmortem.md.j2").write_text("# {{ incident.title }}\n{{ incident.nope }}\n")
    bot = bot_with(TEMPLATES_DIR=str(templates))
    incident_command(bot, "declare sev2 Checkout down")
    channel = bot.channel_of(1)

    assert incident_command(bot, "resolve Rolled back") == "Incident #1 resolved."

    with bot.rt.storage.read() as session:
        assert session.get(Incident, 1).status == "resolved"
    [upload] = uploads(standin)
    markdown = upload["content"].decode()
    assert markdown.startswith("# INC-1 postmortem: Checkout down")
    assert "The postmortem template failed" in markdown and "postmortem.md.j2" in markdown
    warnings = [m["text"] for m in standin.messages(channel) if "template is broken" in m["text"]]
    assert len(warnings) == 1 and "nope" in warnings[0]


def test_each_draft_is_also_written_to_postmortems_dir(bot_with, standin, tmp_path):
    folder = tmp_path / "postmortems"
    bot = bot_with(POSTMORTEMS_DIR=str(folder))
    incident_command(bot, "declare sev3 Search is slow")
    incident_command(bot, "resolve Reindexed")
    written = folder / "postmortem-inc-1.md"
    assert written.read_text() == uploads(standin)[0]["content"].decode()

    incident_command(bot, "action Add a reindex runbook")
    incident_command(bot, "postmortem")

    assert "Add a reindex runbook" in written.read_text()
    assert written.read_text() == drafts(bot)[-1].markdown


def test_the_postmortem_page_shows_the_latest_draft_with_user_text_escaped(web):
    incident_command(web, "declare sev2 Checkout <b>down</b>")
    incident_command(web, "note <script>alert('pwned')</script> seen in the logs")
    incident_command(web, "resolve Rolled back")
    incident_command(web, "postmortem")
    alice = Visitor(web)
    alice.sign_in("U0ALICE")

    page = alice.get("/postmortems/1")

    assert page.status_code == 200
    assert "<title>INC-1 postmortem · oncall-bot</title>" in page.text and "version 2" in page.text
    assert "<script>" not in page.text and "<b>" not in page.text
    assert "&lt;script&gt;alert(" in page.text
    assert page.headers["ETag"] == '"inc-1-v2"'


def test_the_postmortem_page_of_an_unknown_incident_is_404(web):
    alice = Visitor(web)
    alice.sign_in("U0ALICE")
    response = alice.get("/postmortems/9")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error": "not found"}
    incident_command(web, "declare sev2 Checkout down")
    assert alice.get("/postmortems/1").status_code == 404  # no draft before it is resolved


def test_two_business_days_skip_the_weekend_and_keep_local_time_across_dst():
    friday_pdt = datetime(2026, 10, 30, 17, 0, tzinfo=UTC)  # 10:00 PDT; clocks go back Nov 1
    assert reminder_due(friday_pdt, "America/Los_Angeles") == datetime(
        2026, 11, 3, 18, 0, tzinfo=UTC
    )
    saturday = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    assert reminder_due(saturday, "UTC") == datetime(2026, 3, 17, 12, 0, tzinfo=UTC)
    # 23:30 UTC Monday is already Tuesday in Singapore: counted from Tuesday there.
    monday_night = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
    assert reminder_due(monday_night, "Asia/Singapore") == datetime(2026, 3, 11, 23, 30, tzinfo=UTC)
    assert reminder_due(saturday, "Not/AZone") == reminder_due(saturday, "UTC")


def test_the_resolve_text_gives_summary_and_impact():
    assert split_summary("Rolled back. Impact: 12% failed") == ("Rolled back.", "12% failed")
    assert split_summary("no customer impact: none seen") == ("no customer impact: none seen", None)
    assert split_summary(None) == (None, None)


def test_marking_the_draft_reviewed_from_slack_stops_the_reminder(bot, standin):
    bot.advance(FRIDAY_10_PDT - START)
    incident_command(bot, "declare sev3 Search is slow")
    incident_command(bot, "resolve Reindexed")
    reply = incident_command(bot, "postmortem reviewed")
    assert reply == "Postmortem version 1 of incident #1 is now marked reviewed."
    assert "is not a postmortem state" in incident_command(bot, "postmortem later")
    bot.advance(timedelta(days=6))
    assert postmortem_dms(standin) == []
