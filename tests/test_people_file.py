"""The people file: what is accepted, and errors that name the file, line and field, never a
contact's secret."""

from datetime import UTC, datetime, time
from pathlib import Path
from textwrap import dedent

import pytest

from bot.schedule import RotationError, load_rotations, parse_rotation
from bot.schedule.people import (
    WORKING_DAYS,
    WORKING_HOURS,
    Away,
    contact_label,
    load_people,
    merge_away,
    parse_people,
    people_on_no_rotation,
    read_people,
    zones_by_user,
)

PATH = "rotations/people.toml"
SPEC_EXAMPLE = """\
[[people]]
user = "U0APAC1"                      # Slack user ID (or e-mail)
timezone = "Asia/Singapore"           # optional: else the Slack profile's
contacts = { phone = "ntfys://ntfy.example.com/mei-7f3k", email = "mailtos://smtp.example.com:465?from=oncall@example.com&to=mei@example.com" }
notify = { slack = 0, phone = 2, email = 5 }   # minutes after a page, per contact
away = [{ start = 2026-12-24T00:00:00+08:00, end = 2027-01-02T00:00:00+08:00 }]
"""
ROTATION = """\
start = 2026-01-05
handoff = "weekly"

[[regions]]
name = "apac"
timezone = "Asia/Singapore"
hours = "09:00-17:00"
members = ["U0APAC1", "Mei@Example.com"]
"""


def problems_in(text: str) -> list[str]:
    with pytest.raises(RotationError) as caught:
        parse_people(dedent(text), PATH)
    return [str(problem) for problem in caught.value.problems]


def test_the_spec_example_is_read_with_away_periods_in_utc():
    (person,) = parse_people(SPEC_EXAMPLE, PATH).values()
    assert person.user == "U0APAC1" and person.timezone == "Asia/Singapore"
    assert dict(person.contacts) == {
        "phone": "ntfys://ntfy.example.com/mei-7f3k",
        "email": "mailtos://smtp.example.com:465?from=oncall@example.com&to=mei@example.com",
    }
    assert dict(person.notify) == {"slack": 0, "phone": 2, "email": 5}
    assert person.away == (
        Away(datetime(2026, 12, 23, 16, tzinfo=UTC), datetime(2027, 1, 1, 16, tzinfo=UTC)),
    )
    assert person.is_away(datetime(2026, 12, 23, 16, tzinfo=UTC))
    assert not person.is_away(datetime(2027, 1, 1, 16, tzinfo=UTC))
    assert (person.working_hours, person.working_days) == (WORKING_HOURS, WORKING_DAYS)
    assert (person.path, person.line) == (PATH, 1)


def test_the_working_day_defaults_to_nine_to_six_on_weekdays_and_can_be_set():
    assert (WORKING_HOURS, WORKING_DAYS) == ((time(9), time(18)), frozenset(range(5)))
    people = parse_people(
        '[[people]]\nuser = "U0A"\nworking_hours = "08:00-16:00"\nworking_days = "sun-thu"\n',
        PATH,
    )
    assert people["U0A"].working_hours == (time(8), time(16))
    assert people["U0A"].working_days == frozenset({6, 0, 1, 2, 3})
    assert people["U0A"].timezone is None  # the Slack profile's then


def test_contact_urls_never_appear_in_repr():
    (person,) = parse_people(SPEC_EXAMPLE, PATH).values()
    assert "mei-7f3k" not in repr(person) and "ntfys" not in repr(person)


def test_an_unknown_time_zone_names_file_line_field_and_suggests_a_fix():
    assert problems_in('[[people]]\nuser = "U0A"\ntimezone = "Asia/Singapur"\n') == [
        (
            f"{PATH}:3: people[0].timezone: unknown time zone 'Asia/Singapur'; did you mean "
            "'Asia/Singapore'? use an IANA name like 'Europe/Dublin'"
        )
    ]


def test_an_unknown_apprise_service_shows_only_the_scheme_and_host():
    text = """\
    [[people]]
    user = "U0A"
    contacts = { phone = "ntfyy://s3cret-user:pa55@ntfy.example.com/mei-7f3k?priority=5" }
    """
    (problem,) = problems_in(text)
    assert problem == (
        f"{PATH}:3: people[0].contacts.phone: ntfyy://ntfy.example.com is not a service Apprise "
        "knows; did you mean 'ntfy://'? see Apprise's list of supported services"
    )


def test_a_token_where_the_host_goes_is_not_shown():
    text = '[[people]]\nuser = "U0A"\ncontacts = { chat = "tgramm://123456789:AAF-s3cret/42" }\n'
    (problem,) = problems_in(text)
    assert "tgramm://…" in problem and "s3cret" not in problem and "123456789" not in problem


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("mailtos://user:pw@Mail.Example.com:465/?to=a@b.c", "mailtos://mail.example.com"),
        ("ntfy://my-secret-topic", "ntfy://…"),
        ("twilio://AC123:authtoken@15551234567/15557654321", "twilio://…"),
        ("json://10.0.0.1:8080/hook", "json://…"),
        ("not a url", "(not a URL)"),
    ],
)
def test_contact_labels_keep_host_names_and_drop_everything_secret(url, label):
    assert contact_label(url) == label


def test_a_contact_needs_a_url_a_usable_name_and_not_the_name_slack():
    text = """\
    [[people]]
    user = "U0A"

    [people.contacts]
    slack = "slack://T1/B2/C3"
    "on call" = "ntfys://ntfy.example.com/t"
    pager = 42
    """
    assert problems_in(text) == [
        (
            f"{PATH}:5: people[0].contacts.slack: 'slack' is the Slack DM itself; give this contact "
            "another name"
        ),
        (
            f"{PATH}:6: people[0].contacts.on call: 'on call' is not a usable name; use letters, "
            "digits, '-', '_' or '.' (it is typed in /oncall contact)"
        ),
        (
            f"{PATH}:7: people[0].contacts.pager: must be an Apprise URL in quotes, SERVICE://…, "
            'e.g. "ntfys://ntfy.sh/TOPIC"'
        ),
    ]


def test_notify_names_a_contact_or_slack():
    text = """\
    [[people]]
    user = "U0A"
    contacts = { phone = "ntfys://ntfy.example.com/t" }
    notify = { slack = 0, phone = 2, pager = 5 }
    """
    assert problems_in(text) == [
        f"{PATH}:4: people[0].notify.pager: no contact is called 'pager'; known: phone, slack"
    ]


@pytest.mark.parametrize("minutes", ["-1", "1.5", '"2"', "true"])
def test_notify_minutes_are_whole_and_not_negative(minutes):
    text = f'[[people]]\nuser = "U0A"\nnotify = {{ slack = {minutes} }}\n'
    (problem,) = problems_in(text)
    assert problem.startswith(f"{PATH}:3: people[0].notify.slack: ")
    assert problem.endswith("must be a whole number of minutes, 0 or more")


def test_overlapping_away_periods_of_one_person_are_an_error_at_the_later_ones_line():
    text = """\
    [[people]]
    user = "U0A"
    away = [
      { start = 2026-12-24T00:00:00+08:00, end = 2027-01-02T00:00:00+08:00 },
      { start = 2026-12-31T00:00:00+08:00, end = 2027-01-05T00:00:00+08:00 },
    ]
    """
    assert problems_in(text) == [
        f"{PATH}:5: people[0].away[1].start: overlaps away[0]; make them one period"
    ]


def test_back_to_back_away_periods_do_not_overlap():
    text = """\
    [[people]]
    user = "U0A"
    [[people.away]]
    start = 2027-01-02T00:00:00+08:00
    end = 2027-01-05T00:00:00+08:00
    [[people.away]]
    start = 2026-12-24T00:00:00+08:00
    end = 2027-01-02T00:00:00+08:00
    """
    person = parse_people(dedent(text), PATH)["U0A"]
    assert [period.start.day for period in person.away] == [23, 1]  # sorted, in UTC


def test_an_away_period_ending_before_it_starts_or_without_an_offset_is_an_error():
    text = """\
    [[people]]
    user = "U0A"

    [[people.away]]
    start = 2027-01-02T00:00:00+08:00
    end = 2026-12-24T00:00:00+08:00

    [[people.away]]
    start = 2027-02-01T09:00:00
    end = 2027-02-02T09:00:00+08:00
    """
    assert problems_in(text) == [
        f"{PATH}:6: people[0].away[0].end: must be after start (this period ends before it begins)",
        (
            f"{PATH}:9: people[0].away[1].start: 2027-02-01T09:00:00 is not a datetime with a UTC "
            "offset; write e.g. 2026-03-08T09:00:00+01:00"
        ),
    ]


def test_unknown_keys_are_errors_everywhere_with_a_suggestion():
    text = """\
    owner = "sre"

    [[people]]
    user = "U0A"
    timzone = "UTC"
    away = [{ start = 2027-01-02T00:00:00Z, end = 2027-01-03T00:00:00Z, why = "ski" }]
    """
    assert problems_in(text) == [
        f"{PATH}:1: owner: unknown key; allowed: people",
        (
            f"{PATH}:5: people[0].timzone: unknown key; did you mean 'timezone'? allowed: user, "
            "timezone, contacts, notify, away, working_hours, working_days"
        ),
        f"{PATH}:6: people[0].away[0].why: unknown key; allowed: start, end",
    ]


def test_bad_working_hours_and_days_reuse_the_rotation_files_messages():
    text = '[[people]]\nuser = "U0A"\nworking_hours = "8 to 4"\nworking_days = "weekdays"\n'
    hours, days = problems_in(text)
    assert hours.startswith(f"{PATH}:3: people[0].working_hours: '8 to 4' is not a window")
    assert days.startswith(f"{PATH}:4: people[0].working_days: 'weekdays': unknown day")


def test_a_person_listed_twice_and_a_missing_user_are_errors():
    text = """\
    [[people]]
    user = "mei@example.com"

    [[people]]
    timezone = "UTC"

    [[people]]
    user = "Mei@Example.com"
    """
    assert problems_in(text) == [
        f"{PATH}:4: people[1].user: missing; this field is required",
        (
            f"{PATH}:8: people[2].user: 'Mei@Example.com' is already listed at line 1; list each "
            "person once"
        ),
    ]


def test_every_problem_is_reported_at_once_with_invalid_toml_giving_the_line():
    assert problems_in('[[people]]\nuser = "U0A\n')[0].startswith(f"{PATH}:2: not valid TOML")


def test_the_people_file_is_never_read_as_a_rotation(tmp_path: Path):
    (tmp_path / "apac.toml").write_text(ROTATION, encoding="utf-8")
    (tmp_path / "people.toml").write_text(SPEC_EXAMPLE, encoding="utf-8")
    assert list(load_rotations(tmp_path)) == ["apac"]
    assert list(load_people(tmp_path)) == ["U0APAC1"]


def test_a_folder_without_a_people_file_has_no_people(tmp_path: Path):
    assert load_people(tmp_path) == {}
    assert read_people(tmp_path) == ({}, [])


def test_load_people_raises_every_problem_with_the_files_path(tmp_path: Path):
    (tmp_path / "people.toml").write_text('[[people]]\nuser = ""\n', encoding="utf-8")
    with pytest.raises(RotationError) as caught:
        load_people(tmp_path)
    message = f"{tmp_path / 'people.toml'}:2: people[0].user: '' must be a non-empty string"
    assert str(caught.value) == message


def test_people_on_no_rotation_are_warned_about_with_their_line():
    rotation = parse_rotation(ROTATION, "rotations/apac.toml")
    text = '[[people]]\nuser = "mei@example.com"\n\n[[people]]\nuser = "U0TYPO"\n'
    people = parse_people(text, PATH)
    assert [str(p) for p in people_on_no_rotation(people, {"apac": rotation})] == [
        f"{PATH}:4: user: 'U0TYPO' is a member of no rotation; check the user ID or e-mail"
    ]


def test_the_schemes_accepted_can_be_given():
    text = '[[people]]\nuser = "U0A"\ncontacts = { pager = "acme://pager.example.com/x" }\n'
    assert "pager" in parse_people(text, PATH, schemes={"acme"})["U0A"].contacts
    with pytest.raises(RotationError):
        parse_people(text, PATH)


def test_merge_away_joins_overlapping_and_touching_periods():
    def at(day: int) -> datetime:
        return datetime(2026, 12, day, tzinfo=UTC)

    periods = [Away(at(5), at(7), id=2), Away(at(1), at(3), id=1), Away(at(3), at(4))]
    assert merge_away(periods) == (Away(at(1), at(4)), Away(at(5), at(7), id=2))
    inside = Away(at(6), at(6).replace(hour=12), id=3)
    assert merge_away([*periods, inside]) == (Away(at(1), at(4)), Away(at(5), at(7)))


def test_an_away_period_must_end_after_it_starts_and_be_aware():
    with pytest.raises(ValueError):
        Away(datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    with pytest.raises(ValueError):
        Away(datetime(2026, 12, 1), datetime(2026, 12, 2))


def test_the_files_time_zones_are_kept_by_user_id_or_lower_case_e_mail():
    text = (
        '[[people]]\nuser = "Mei@Example.com"\ntimezone = "Asia/Singapore"\n\n'
        '[[people]]\nuser = "U0B"\ntimezone = "europe/dublin"\n\n[[people]]\nuser = "U0C"\n'
    )
    zones = zones_by_user(parse_people(text, PATH))
    assert zones == {"mei@example.com": "Asia/Singapore", "U0B": "Europe/Dublin"}
