"""A postmortem draft as a small HTML page for reviewers (``GET /postmortems/<n>``).

The Markdown is rendered with raw HTML turned off, so anything a person typed, ``<script>``
included, shows as text; markdown-it also refuses ``javascript:`` and similar link targets.
Secrets are masked once more here, in case the stored draft was edited after it was drafted.
"""

from __future__ import annotations

from html import escape

from markdown_it import MarkdownIt

from bot.postmortem.redact import redact

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto;
  padding: 0 1rem; color: #1d1c1d; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ddd; padding: .25rem .5rem; text-align: left;
  vertical-align: top; }}
th {{ background: #f6f6f6; }}
blockquote {{ border-left: 4px solid #ddd; margin-left: 0; padding-left: 1rem; color: #555; }}
code {{ background: #f6f6f6; padding: 0 .2rem; }}
</style>
</head>
<body>
<main>
{body}</main>
</body>
</html>
"""


def render_markdown(markdown_text: str) -> str:
    """The draft's Markdown as HTML (raw HTML in it shown as text), secrets masked."""
    return str(_MARKDOWN.render(redact(markdown_text)))


def render_html(markdown_text: str, *, title: str) -> str:
    """A complete HTML page showing ``markdown_text``; user text and ``title`` are escaped."""
    body = _MARKDOWN.render(redact(markdown_text))
    return _PAGE.format(title=escape(redact(title)), body=body)
