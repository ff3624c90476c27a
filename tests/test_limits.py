"""The limits on input, as pure functions: invisible characters, quoted excerpts, body reading.
(tests/test_hostile.py throws the same at the real server.)"""

from __future__ import annotations

import io

import pytest

from bot.incidents.service import IncidentError, check_declaration
from bot.text import excerpt, shows_anything, visible
from bot.web.limits import MAX_BODY, BodyTooLarge, read_body


@pytest.mark.parametrize("text, kept", [
    ("Pay\u202ements", "Payments"),  # right-to-left override
    ("a\u200bb\u200cc\ufeffd\u2060e\u00adf", "abcdef"),  # zero-width space, non-joiner, BOM, word joiner, soft hyphen
    ("\u2066x\u2069\u200e\u200f", "x"),  # isolates and direction marks
    ("tab\there\x00", "tab here"),
    ("\u3164\u115f\uffa0", ""),  # letters that draw nothing
    ("\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f468\u200d\U0001f469\u200d\U0001f467"),  # one emoji
    ("\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f3f3\ufe0f\u200d\U0001f308"),
    ("x\u200dy", "xy"),
    ("e\u0301té", "e\u0301té"),
])
def test_visible_drops_what_draws_nothing_or_reorders_text(text, kept):
    assert visible(text) == kept


def test_a_title_is_refused_when_nothing_in_it_shows():
    assert not shows_anything(visible("\u0301\u0302 \u200b"))
    for title in ("\u200b", "\u202e\u202c", " \u3164 ", "\u0301"):
        with pytest.raises(IncidentError, match="needs a title"):
            check_declaration(title=title, severity=2)
    assert check_declaration(title="  Pay\u202ements \u200b down ", severity=2) == "Payments down"


def test_title_length_counts_what_people_see():
    assert check_declaration(title="&amp;" * 200, severity=2) == "&amp;" * 200  # 200 ampersands
    with pytest.raises(IncidentError, match="201 characters long; the limit is 200"):
        check_declaration(title="&amp;" * 201, severity=2)


def test_an_excerpt_is_one_line_of_at_most_80_characters():
    assert excerpt("a\nb\t c") == "a b c"
    assert len(excerpt("x" * 40_000)) == 80 and excerpt("x" * 40_000).endswith("…")


def _environ(body: bytes, *, length: bool) -> dict:
    environ = {"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True}
    if length:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "streamed"])
def test_a_body_is_read_whole_up_to_1_mib_and_refused_past_it(length):
    assert read_body(_environ(b"x" * MAX_BODY, length=length)) == b"x" * MAX_BODY
    stream = _environ(b"x" * (3 * MAX_BODY), length=length)
    with pytest.raises(BodyTooLarge):
        read_body(stream)
    assert stream["wsgi.input"].tell() <= MAX_BODY + 1  # never read further than that
