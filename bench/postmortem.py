"""How long drafting a postmortem takes for an incident with a very long timeline.

Run from the repository root: ``python bench/postmortem.py [ENTRIES]`` (default 10,000).
The target is under 300 ms for the full draft of 10,000 entries. Baselines in the same run
make the numbers comparable across machines: a plain ``str.join`` of the same table lines,
and redaction alone.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bot.postmortem import TimelineItem, redact, render_html, render_postmortem, safe_text
from bot.postmortem.facts import example_incident
from bot.postmortem.view import build_view

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TARGET_MS = 300.0
KINDS = ("note", "status", "page", "acknowledge", "pinned", "alert")
TEXTS = (
    "Checked the PSP dashboard: auth latency p99 {i} ms, pool still saturated",
    "Status investigating → identified (step {i})",
    "Paged @oncall-{i} via payments-primary",
    "Rolled back node {i}; token=tok{i}abcdef rotated, see https://grafana.example/d/{i}",
    "Pinned: customer tickets up {i}% | support aware",
    "CheckoutErrorRateHigh firing for pod checkout-{i}",
)


def big_incident(entries: int):
    """The example incident with ``entries`` timeline lines, a minute or so apart."""
    base = example_incident()
    start = base.declared_at
    timeline = tuple(
        TimelineItem(
            at=start + timedelta(seconds=17 * i),
            actor=f"@person{i % 40}",
            kind=KINDS[i % len(KINDS)],
            text=TEXTS[i % len(TEXTS)].format(i=i),
            permalink=f"https://acme.slack.com/archives/C0INC42/p{1773762400 + i}"
            if i % 9
            else None,
        )
        for i in range(entries)
    )
    return dataclasses.replace(base, timeline=timeline)


def timed(runs: int, work: Callable[[], object]) -> tuple[float, float]:
    """Best and median wall time of ``work`` in milliseconds."""
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        samples.append((time.perf_counter() - began) * 1000)
    return min(samples), statistics.median(samples)


def main() -> int:
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    facts = big_incident(entries)
    texts = [item.text for item in facts.timeline]
    view = build_view(facts)
    lines = [f"| {e.utc} | {e.local} | {e.actor} | {e.label} | {e.text} |" for e in view.timeline]

    began = time.perf_counter()
    markdown = render_postmortem(facts, templates_dir=TEMPLATES)
    cold = (time.perf_counter() - began) * 1000

    rows = [
        ("baseline: str.join of the timeline table lines", timed(20, lambda: "\n".join(lines))),
        ("redact() every timeline text", timed(10, lambda: [redact(t) for t in texts])),
        ("safe_text() every timeline text", timed(10, lambda: [safe_text(t) for t in texts])),
        ("build_view() (redact, format times, sort)", timed(10, lambda: build_view(facts))),
        (
            "render_postmortem() full draft, warm",
            timed(10, lambda: render_postmortem(facts, templates_dir=TEMPLATES)),
        ),
        ("redact() the whole draft once more (HTML does)", timed(5, lambda: redact(markdown))),
        ("render_html() of the draft", timed(3, lambda: render_html(markdown, title="INC-42"))),
    ]
    baseline = rows[0][1][0]
    print(f"postmortem bench: {entries:,} timeline entries, draft {len(markdown):,} characters")
    print(f"first render (compiles the template): {cold:.1f} ms")
    print()
    print(f"| {'step':<48} | {'best ms':>8} | {'median ms':>9} | {'x baseline':>10} |")
    print(f"| {'-' * 48} | {'-' * 8}:| {'-' * 9}:| {'-' * 10}:|")
    for name, (best, median) in rows:
        ratio = best / baseline if baseline else float("inf")
        print(f"| {name:<48} | {best:>8.1f} | {median:>9.1f} | {ratio:>10.0f} |")
    full = next(median for name, (_, median) in rows if name.startswith("render_postmortem"))
    verdict = "meets" if full < TARGET_MS else "MISSES"
    print(f"\nfull draft median {full:.1f} ms {verdict} the {TARGET_MS:.0f} ms target")
    return 0 if full < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
