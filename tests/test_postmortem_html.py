"""The reviewer's HTML page of a draft: rendered Markdown, everything people typed escaped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.postmortem import TimelineItem, render_html, render_postmortem
from bot.postmortem.facts import example_incident

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_the_page_is_a_complete_html_document():
    page = render_html("# INC-42\n\nhello", title="INC-42 postmortem")
    assert page.startswith('<!doctype html>\n<html lang="en">')
    assert '<meta charset="utf-8">' in page
    assert "<title>INC-42 postmortem</title>" in page
    assert "<h1>INC-42</h1>" in page and "<p>hello</p>" in page
    assert page.rstrip().endswith("</html>")


def test_raw_html_in_the_markdown_is_shown_as_text():
    page = render_html("note: <script>alert(1)</script> <img src=x onerror=alert(2)>", title="t")
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_title_is_escaped():
    page = render_html("x", title='</title><script>alert("t")</script> & co')
    assert (
        "<title>&lt;/title&gt;&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt; &amp; co</title>"
        in page
    )


def test_javascript_links_are_not_made_clickable():
    page = render_html("[click](javascript:alert(1))", title="t")
    assert 'href="javascript' not in page


def test_secrets_in_an_edited_draft_are_masked_again():
    page = render_html("pasted later: xoxb-123456789012-abcdefghijkl", title="t")
    assert "xoxb-1234" not in page and "[REDACTED:slack-token]" in page


def test_a_rendered_draft_with_hostile_text_becomes_a_safe_page_with_tables():
    facts = example_incident()
    hostile = TimelineItem(facts.declared_at, "@mallory", "note", "<script>steal()</script> | x")
    facts = dataclasses.replace(facts, title="<b>bold</b>", timeline=facts.timeline + (hostile,))
    page = render_html(render_postmortem(facts, templates_dir=TEMPLATES), title=facts.title)
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;steal()&lt;/script&gt; | x</td>" in page
    assert page.count("<table>") == 4  # key times, action items, pages, timeline
    assert "<title>&lt;b&gt;bold&lt;/b&gt;</title>" in page
