"""`postmortem` and `report` from the command line, run against the database the bot served."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot import postmortem_cli
from bot.models import PostmortemDraft

TEMPLATES = Path(__file__).parent.parent / "templates"


@pytest.fixture
def cli(settings_env, monkeypatch, capsys):
    """Run `oncall-bot ARGS...` in-process with the bot's settings; (exit code, stdout, stderr)."""
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("POSTMORTEMS_DIR", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser(prog="oncall-bot")
        postmortem_cli.add_subcommands(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        capsys.readouterr()
        code = args.func(args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def incident(bot, text, *, user="U0ALICE", number=1):
    channel = "C0GENERAL" if text.startswith("declare") else bot.channel_of(number)
    return bot.command(user, "/incident", text, channel=channel).text


def latest_markdown(bot, number=1):
    with bot.rt.storage.read() as session:
        rows = session.exec(select(PostmortemDraft).where(PostmortemDraft.incident_id == number))
        return max(rows, key=lambda d: d.version).markdown


def test_postmortem_prints_the_latest_draft(bot, cli):
    incident(bot, "declare sev2 Checkout down")
    incident(bot, "resolve Rolled back")
    incident(bot, "action Alert on pool saturation")
    incident(bot, "postmortem")

    code, out, err = cli("postmortem", "1")

    assert code == 0 and err == ""
    assert out == latest_markdown(bot)
    assert out.startswith("# INC-1 postmortem: Checkout down") and "Alert on pool saturation" in out


def test_postmortem_drafts_one_when_there_is_none_and_writes_it_to_a_file(bot, cli, tmp_path):
    incident(bot, "declare sev2 Checkout down")  # still open: never drafted
    target = tmp_path / "inc-1.md"

    code, out, err = cli("postmortem", "INC-1", "--out", str(target))

    assert code == 0, err
    assert out.strip() == f"wrote {target} (INC-1 postmortem, version 1, draft)"
    written = target.read_text()
    assert written.startswith("# INC-1 postmortem: Checkout down")
    assert "- **Status:** investigating" in written
    assert "@frank" in written  # the paged on-call person's name, looked up in Slack first
    assert written == latest_markdown(bot)


def test_postmortem_of_an_unknown_incident_is_one_line_and_exit_2(bot, cli):
    code, out, err = cli("postmortem", "9")
    assert code == 2 and out == ""
    assert err == "postmortem: there is no incident #9\n"


def test_postmortem_of_something_that_is_not_an_incident_number_exits_2(bot, cli):
    code, _, err = cli("postmortem", "checkout")
    assert code == 2
    assert err.splitlines() == [
        "postmortem: 'checkout' is not an incident number (e.g. 42, #42 or INC-42)"
    ]


def test_marking_the_draft_reviewed_stops_the_reminder(bot, cli, standin):
    incident(bot, "declare sev3 Search is slow")
    incident(bot, "resolve Reindexed")

    code, out, _ = cli("postmortem", "#1", "--mark", "reviewed")
    bot.advance(timedelta(days=7))

    assert code == 0 and out == "INC-1 postmortem version 1 is now reviewed\n"
    assert not [m for m in standin.dms("U0ALICE") if "postmortem" in m["text"]]


def first_page(bot, number: int) -> str:
    """The id of the incident's first page (the on-call person's), as its DM button carries it."""
    from sqlmodel import select

    from bot.models import Page

    with bot.rt.storage.read() as session:
        return str(session.exec(select(Page.id).where(Page.incident_id == number).order_by(Page.id)).first())


def test_report_shows_times_by_severity_and_off_hours_pages_in_each_persons_zone(bot, cli):
    # Tuesday 10 March 2026, 15:00 UTC: 15:00 in Dublin, 23:00 in Singapore.
    incident(bot, "declare sev1 Checkout down")
    incident(bot, "page <@U0BOB>")
    incident(bot, "page <@U0CAROL>")
    bot.advance(timedelta(minutes=4))
    bot.press("U0FRANK", "page_ack", first_page(bot, 1))
    bot.advance(timedelta(minutes=5))
    incident(bot, "resolve Rolled back")  # 9 min: before any page escalates
    incident(bot, "declare sev1 Checkout down again")
    bot.advance(timedelta(minutes=6))
    bot.press("U0FRANK", "page_ack", first_page(bot, 2))
    bot.advance(timedelta(minutes=65))
    incident(bot, "resolve Rolled back again", number=2)
    incident(bot, "declare sev3 Search is slow")
    bot.advance(timedelta(hours=2))
    incident(bot, "resolve Reindexed", number=3)

    code, out, err = cli("report", "--since", "2026-03-01", "--until", "2026-03-11")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Incidents declared from 2026-03-01 00:00 UTC to 2026-03-11 00:00 UTC"
    rows = {line.split()[0]: line.split() for line in lines if line.startswith(("SEV", "All"))}
    # severity, incidents, acked, mean and p90 TTA, resolved, mean and p90 TTR
    assert " ".join(rows["SEV1"]) == "SEV1 2 2 5 min 6 min 2 40 min 1 h 11 min"
    assert " ".join(rows["SEV3"]) == "SEV3 1 0 — — 1 2 h 2 h"
    assert rows["All"][:3] == ["All", "3", "2"]
    people = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("@")}
    assert people["@bob"] == ["Europe/Dublin", "1", "0", "0", "0"]
    assert people["@carol"] == ["Asia/Singapore", "1", "1", "0", "0"]


def test_report_with_a_bad_date_is_one_line_and_exit_2(cli):
    code, out, err = cli("report", "--since", "last tuesday")
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(
        "report: 'last tuesday' is not an ISO date"
    )


def test_report_of_a_quiet_period_says_so(bot, cli):
    code, out, _ = cli("report", "--since", "2025-01-01", "--until", "2025-02-01")
    assert code == 0
    assert "No incidents." in out and "No pages." in out


def test_template_validation_for_check_names_the_broken_file(tmp_path):
    assert postmortem_cli.validate_templates_command(TEMPLATES) == []
    (tmp_path / "postmortem.md.j2").write_text("{% for x in %}\n")
    [problem] = postmortem_cli.validate_templates_command(tmp_path)
    assert problem.startswith(f"{tmp_path / 'postmortem.md.j2'}, line 1:")


def test_report_leaves_private_incidents_and_their_pages_out(bot, cli):
    incident(bot, "declare sev1 Checkout down")
    incident(bot, "declare --private sev1 Payroll leak")
    incident(bot, "page <@U0BOB>", number=2)
    incident(bot, "resolve Contained", number=2)

    code, out, err = cli("report", "--since", "2026-03-01", "--until", "2026-03-11")

    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("SEV", "All"))}
    assert rows["All"][:2] == ["All", "1"]
    assert not [line for line in out.splitlines() if line.startswith("@bob")]
    assert bot.get("/postmortems/2").status == 404  # its draft goes only to its channel
