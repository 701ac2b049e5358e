"""Reports rendered as JSON documents, CSV blocks and text tables."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import orjson

from leadflow.config import Reporting
from leadflow_sla.reporting import domain, roi
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.query import make_query
from leadflow_sla.reporting.render import csv_tables, document, duration, render, table_names

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
REPORTING = Reporting.model_validate(
    {"segments": [{"name": "enterprise", "cost_per_lead": 50}], "target_roi": 0.25}
)
LEADS = [
    Lifecycle("lk_1", first_touch_at=T0, first_source="google", first_segment="enterprise",
              mql_at=T0, ready_at=T0, assigned_at=T0, rep_id="ana",
              contacted_at=datetime(2026, 11, 2, 9, 3, tzinfo=UTC), won_at=T0, revenue=4000.0,
              revenue_without_profit=4000.0),
    Lifecycle("lk_2", first_touch_at=T0, first_source="google", first_segment="enterprise",
              rejected_at=T0, rejection_reason="No budget"),
]  # fmt: skip
QUERY = make_query(REPORTING, start="2026-11-01", end="2026-11-30", source="google")


def rows_of(text: str) -> list[list[str]]:
    """One CSV table's rows, its header first."""
    return list(csv.reader(io.StringIO(text)))


def test_json_is_the_http_document() -> None:
    doc = document("funnel", QUERY, domain.funnel(LEADS, "source", "first"), NOW)
    parsed = orjson.loads(render("funnel", doc, "json"))
    assert parsed["report"] == "funnel"
    assert parsed["query"]["source"] == "google"
    assert parsed["query"]["to"] == "2026-12-01T00:00:00+00:00"
    assert [s["leads"] for s in parsed["stages"]] == [2, 1, 1, 1, 1, 1, 1]
    assert parsed["breakdown"][0] == {
        "key": "google",
        "leads": 2,
        "mqls": 1,
        "sqls": 1,
        "won": 1,
        "lead_to_sale": 0.5,
        "mql_to_sql": 1.0,
        "revenue": 4000.0,
        "average_deal": 4000.0,
    }


def test_csv_is_one_table_per_text_a_summary_and_each_section() -> None:
    report = roi.roi(LEADS, REPORTING, "segment", "first", roi.effective_costs(REPORTING, {}))
    doc = document("roi", QUERY, report, NOW)
    tables = csv_tables("roi", doc)
    assert list(tables) == table_names("roi") == ["summary", "rows"]
    summary = rows_of(tables["summary"])
    assert summary[0] == ["metric", "value"]
    assert ["flagged", "0"] in summary
    # Without a table named, CSV is the report's first section: one header, then rows.
    assert render("roi", doc, "csv") == tables["rows"]
    assert render("roi", doc, "csv", "summary") == tables["summary"]
    header, *rows = rows_of(tables["rows"])
    assert not any(row[0].startswith("#") or not row for row in rows)
    enterprise = dict(zip(header, rows[0], strict=True))
    # 4000 profit per sale / 1.25 * 50 % conversion = 1600 affordable; 50 spent per lead.
    assert enterprise["key"] == "enterprise"
    assert (enterprise["max_cost_per_lead"], enterprise["cost_per_lead"]) == ("1600.0", "50.0")
    assert enterprise["verdict"] == "within"
    other = dict(zip(header, rows[1], strict=True))
    assert (other["key"], other["max_cost_per_lead"], other["verdict"]) == ("other", "", "no_cost")


def test_tables_show_rates_durations_and_money_for_people() -> None:
    speed = render("speed", document("speed", QUERY, domain.speed(LEADS), NOW), "table")
    assert "speed to lead, median" in speed
    assert "3 min 0 s" in speed
    assert "100.0%" in speed
    assert "filters: source=google" in speed
    reasons = render("reasons", document("reasons", QUERY, domain.reasons(LEADS), NOW), "table")
    assert "no budget" in reasons
    assert "(no leads)" in reasons  # no lost deals
    funnel = render(
        "funnel", document("funnel", QUERY, domain.funnel(LEADS, "rep", "first"), NOW), "table"
    )
    assert "Conversion and revenue by rep" in funnel
    assert "4,000.00" in funnel


def test_durations_read_naturally() -> None:
    assert [duration(s) for s in (42, 200, 18600, 180000)] == [
        "42 s",
        "3 min 20 s",
        "5 h 10 min",
        "2 d 2 h",
    ]


def test_tables_show_data_as_written_not_as_markup() -> None:
    bracketed = [
        Lifecycle("lk_9", first_touch_at=T0, first_source="[partner]", first_segment="smb",
                  rejected_at=T0, rejection_reason="[urgent] no budget"),
    ]  # fmt: skip
    query = make_query(REPORTING, start="2026-11-01", end="2026-11-30")
    shown = render("reasons", document("reasons", query, domain.reasons(bracketed), NOW), "table")
    assert "[urgent] no budget" in shown
