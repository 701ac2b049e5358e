"""Charts as SVG drawn on the server: pure functions from numbers to markup.

Each chart is an `<svg role="img">` whose `<title>` says what it shows; the pages print
the same numbers in a table beside it, so nothing is only in the picture. The SVG scales
to its box (viewBox, no fixed width): readable on a 320 px screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH = 640
ROW_H = 28
LABEL_W = 150
VALUE_W = 160
BAR_W = WIDTH - LABEL_W - VALUE_W


@dataclass(frozen=True)
class Bar:
    """One labelled value; `flag` colours it ("over", "leak"...), `shown` is its text."""

    label: str
    value: float
    shown: str
    flag: str = ""


@dataclass(frozen=True)
class Pair:
    """A limit and the actual value against it (ROI: max cost per lead and cost per lead)."""

    label: str
    limit: float | None
    actual: float | None
    limit_shown: str
    actual_shown: str
    over: bool


def _length(value: float, top: float) -> float:
    return 0.0 if top <= 0 or value <= 0 else round(BAR_W * value / top, 1)


def _svg(title: str, height: int, body: list[str], slug: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="chart-{slug}" preserveAspectRatio="xMinYMin meet">'
        f'<title id="chart-{slug}">{escape(title)}</title>{"".join(body)}</svg>'
    )


def bar_chart(title: str, bars: Sequence[Bar], slug: str) -> Markup:
    """Horizontal bars, longest = the largest value, each with its label and number."""
    top = max((b.value for b in bars), default=0.0)
    body: list[str] = []
    for i, bar in enumerate(bars):
        y = i * ROW_H
        css = f"bar {escape(bar.flag)}".strip()
        body.append(
            f'<g class="row"><text class="label" x="{LABEL_W - 8}" y="{y + 19}" '
            f'text-anchor="end">{escape(bar.label)}</text>'
            f'<rect class="{css}" x="{LABEL_W}" y="{y + 5}" width="{_length(bar.value, top)}" '
            f'height="{ROW_H - 10}"><title>{escape(bar.label)}: {escape(bar.shown)}</title></rect>'
            f'<text class="value" x="{LABEL_W + _length(bar.value, top) + 6}" y="{y + 19}">'
            f"{escape(bar.shown)}</text></g>"
        )
    if not bars:
        body.append(f'<text class="empty" x="8" y="20">{escape("No leads in this period.")}</text>')
    return _svg(title, max(1, len(bars)) * ROW_H + 4, body, slug)


def pair_chart(title: str, pairs: Sequence[Pair], slug: str) -> Markup:
    """For each row a limit (outlined) and the actual value (filled, marked when over)."""
    top = max((v for p in pairs for v in (p.limit, p.actual) if v is not None), default=0.0)
    body: list[str] = []
    step = ROW_H * 2
    for i, pair in enumerate(pairs):
        y = i * step
        limit = _length(pair.limit or 0.0, top)
        actual = _length(pair.actual or 0.0, top)
        state = "over" if pair.over else "within"
        body.append(
            f'<g class="row {state}"><text class="label" x="{LABEL_W - 8}" y="{y + 24}" '
            f'text-anchor="end">{escape(pair.label)}</text>'
            f'<rect class="limit" x="{LABEL_W}" y="{y + 4}" width="{limit}" height="{ROW_H - 10}">'
            f"<title>max cost per lead {escape(pair.limit_shown)}</title></rect>"
            f'<text class="value" x="{LABEL_W + limit + 6}" y="{y + 18}">max '
            f"{escape(pair.limit_shown)}</text>"
            f'<rect class="actual {state}" x="{LABEL_W}" y="{y + ROW_H - 2}" width="{actual}" '
            f'height="{ROW_H - 10}"><title>cost per lead {escape(pair.actual_shown)}</title></rect>'
            f'<text class="value" x="{LABEL_W + actual + 6}" y="{y + ROW_H + 12}">cost '
            f"{escape(pair.actual_shown)}{' (over)' if pair.over else ''}</text></g>"
        )
    if not pairs:
        body.append('<text class="empty" x="8" y="20">No segment has leads in this period.</text>')
    return _svg(title, max(1, len(pairs)) * step + 4, body, slug)
