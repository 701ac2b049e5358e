"""Server-side SVG charts: bars scale to the largest value, labels are escaped, the ROI
chart marks a row over its limit."""

from __future__ import annotations

import re

from leadflow_sla.console.charts import BAR_W, Bar, Pair, bar_chart, pair_chart


def widths(svg: str, css: str) -> list[float]:
    return [float(w) for w in re.findall(rf'class="{css}"[^>]*width="([0-9.]+)"', svg)]


def test_bars_scale_to_the_largest_value_and_say_their_numbers() -> None:
    svg = str(bar_chart("Funnel", [Bar("received", 8, "8"), Bar("mql", 2, "2 (25 %)")], "f"))
    assert widths(svg, "bar") == [BAR_W, BAR_W / 4]
    assert "2 (25 %)" in svg
    assert '<title id="chart-f">Funnel</title>' in svg
    assert 'role="img"' in svg


def test_labels_are_escaped() -> None:
    svg = str(bar_chart("Reasons", [Bar("<script>", 1, "1")], "r"))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg


def test_an_empty_chart_says_so() -> None:
    assert "No leads in this period." in str(bar_chart("Speed", [], "s"))


def test_the_roi_chart_marks_the_rows_over_their_limit() -> None:
    pairs = [
        Pair("smb", 200.0, 100.0, "200.00 USD", "100.00 USD", over=False),
        Pair("enterprise", 100.0, 300.0, "100.00 USD", "300.00 USD", over=True),
    ]
    svg = str(pair_chart("ROI", pairs, "roi"))
    assert widths(svg, "limit") == [BAR_W * 2 / 3, BAR_W / 3]
    assert widths(svg, "actual within") == [BAR_W / 3]
    assert widths(svg, "actual over") == [BAR_W]
    assert "cost 300.00 USD (over)" in svg
    assert "max 200.00 USD" in svg
