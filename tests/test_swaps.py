"""`/oncall swap`: an offer the other person accepts or declines, admins swapping others, and
the refusals, driven the way Slack drives them (signed commands and button presses)."""

from __future__ import annotations

import shutil

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.models import OverrideRecord
from tests.conftest import ROTATIONS, START, start_bot
from tests.test_oncall import reply

# The payments rotation (tests/rotations): week 10 of 2026 (9-15 March) is emea's U0ERIN and
# amer's U0FRANK; the next week is U0BOB's and U0ALICE's.


def offer_value(standin, user: str) -> str:
    """The value of the Accept button in the latest offer DM to user."""
    offers = [m for m in standin.dms(user) if "swap_accept" in str(m.get("blocks"))]
    assert offers, f"no swap offer reached {user}"
    (button,) = [e for e in offers[-1]["blocks"][1]["elements"] if e["action_id"] == "swap_accept"]
    return button["value"]


def overrides(bot) -> list[tuple[str, str, str]]:
    with bot.rt.storage.read() as session:
        return [(o.user, o.start.isoformat()[:16], o.end.isoformat()[:16])
                for o in session.exec(select(OverrideRecord).order_by(OverrideRecord.id))]


def test_an_accepted_swap_exchanges_the_two_next_shifts_everywhere(bot, standin):
    text = reply(bot, standin, "U0BOB", "swap payments <@U0ERIN|erin>")
    assert text.startswith("Offered <@U0ERIN> to swap your *payments* shift")
    assert overrides(bot) == []  # nothing changes before the answer
    bot.press("U0ERIN", "swap_accept", offer_value(standin, "U0ERIN"))
    assert [o[0] for o in overrides(bot)] == ["U0ERIN", "U0BOB"]
    (erin_takes, bob_takes) = overrides(bot)
    assert erin_takes[1] > bob_takes[1]  # Erin takes Bob's later turn, Bob takes Erin's next one
    assert any("<@U0ERIN> accepted your swap" in m["text"] for m in standin.dms("U0BOB"))
    assert any("Swapped: you are on call" in m["text"] for m in standin.ephemerals("U0ERIN"))
    schedule = reply(bot, standin, "U0GRACE", "schedule payments 14")
    assert "<@U0BOB> (override)" in schedule and "<@U0ERIN> (override)" in schedule


def test_a_declined_swap_changes_nothing_and_the_offerer_is_told(bot, standin):
    reply(bot, standin, "U0BOB", "swap payments <@U0ERIN|erin>")
    value = offer_value(standin, "U0ERIN")
    bot.press("U0ERIN", "swap_decline", value)
    assert any("<@U0ERIN> declined your swap" in m["text"] for m in standin.dms("U0BOB"))
    bot.press("U0ERIN", "swap_accept", value)  # a second answer changes nothing
    assert overrides(bot) == []
    assert any("already answered" in m["text"] for m in standin.ephemerals("U0ERIN"))


def test_only_the_person_offered_to_can_answer_and_only_once(bot, standin):
    reply(bot, standin, "U0BOB", "swap payments <@U0ERIN|erin>")
    value = offer_value(standin, "U0ERIN")
    bot.press("U0MALLORY", "swap_accept", value)
    assert overrides(bot) == []
    assert any("This swap was offered to <@U0ERIN>" in m["text"] for m in standin.ephemerals("U0MALLORY"))
    bot.press("U0ERIN", "swap_accept", value)
    bot.press("U0ERIN", "swap_accept", value)
    assert len(overrides(bot)) == 2


@pytest.mark.parametrize("text, refusal", [
    ("swap payments <@U0MALLORY|m>", "<@U0MALLORY> is not a member of `payments`."),
    ("swap payments <@U0BOB|bob>", "A swap needs someone else."),
    ("swap nosuch <@U0ERIN|erin>", "There is no rotation `nosuch`"),
    ("swap payments <@U0ERIN|erin> <@U0FRANK|frank>", "Only the admins of `payments` may swap shifts for others."),
    ("swap payments", "A swap needs a rotation and a person"),
])
def test_a_bad_swap_is_refused_in_one_line_and_offers_nothing(bot, standin, text, refusal):
    answer = reply(bot, standin, "U0BOB", text)
    assert answer.startswith(refusal) and "\n" not in answer
    assert overrides(bot) == [] and not [m for m in standin.dms("U0ERIN") if "swap_accept" in str(m.get("blocks"))]


@pytest.fixture
def bot_with_an_admin(settings_env, standin, tmp_path):
    folder = tmp_path / "rotations"
    shutil.copytree(ROTATIONS, folder)
    text = (folder / "payments.toml").read_text()
    (folder / "payments.toml").write_text(text.replace("default = true", 'default = true\nadmins = ["U0GRACE"]'))
    served, stop = start_bot({**settings_env, "ROTATIONS_DIR": str(folder)}, standin, ManualClock(START))
    yield served
    stop()


def test_an_admin_swaps_two_members_at_once_and_both_are_told(bot_with_an_admin, standin):
    bot = bot_with_an_admin
    text = reply(bot, standin, "U0GRACE", "swap payments <@U0BOB|bob> <@U0ERIN|erin>")
    assert text == "Swapped <@U0BOB>'s and <@U0ERIN>'s next *payments* shifts; both were told."
    assert sorted(o[0] for o in overrides(bot)) == ["U0BOB", "U0ERIN"]
    for person in ("U0BOB", "U0ERIN"):
        assert any("<@U0GRACE> swapped your *payments* shift" in m["text"] for m in standin.dms(person))
