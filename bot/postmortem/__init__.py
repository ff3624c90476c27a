"""Postmortem drafts: facts about a resolved incident rendered to Markdown, and to HTML.

No Slack and no database here: callers build ``PostmortemFacts`` and decide where the draft
goes (uploaded to the channel, stored, written to ``POSTMORTEMS_DIR``, served as a page).
"""

from bot.postmortem.facts import (
    ActionItem,
    PageFact,
    PostmortemFacts,
    SeverityChange,
    TimelineItem,
)
from bot.postmortem.html import render_html
from bot.postmortem.redact import defuse_mentions, redact, safe_text
from bot.postmortem.render import (
    PostmortemError,
    render_fallback,
    render_postmortem,
    validate_templates,
)
from bot.postmortem.view import format_duration

__all__ = [
    "ActionItem",
    "PageFact",
    "PostmortemError",
    "PostmortemFacts",
    "SeverityChange",
    "TimelineItem",
    "defuse_mentions",
    "format_duration",
    "redact",
    "render_fallback",
    "render_html",
    "render_postmortem",
    "safe_text",
    "validate_templates",
]
