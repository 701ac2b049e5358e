"""Reports as documents (JSON, the HTTP answer), tables for people, and CSV for spreadsheets.

CSV holds one table per file, as spreadsheets and `csv` readers expect: a header row and
the rows. A report has a `summary` table (`metric,value`: the period, then the summary's
figures) and one table per section (`table_names`); `csv_tables` renders each of them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from leadflow_sla.reporting.query import ReportQuery

Kind = Literal["funnel", "speed", "reasons", "roi", "tiers"]
Format = Literal["table", "csv", "json"]
Style = Literal["text", "int", "rate", "money", "seconds", "days"]


@dataclass(frozen=True)
class Column:
    """One column of a rendered table: the document field, its header, how to show it."""

    field: str
    header: str
    style: Style = "text"


@dataclass(frozen=True)
class Section:
    """A table of a report: which list of the document, with which columns."""

    name: str
    title: str
    rows_field: str
    columns: tuple[Column, ...]


_RATE: Style = "rate"
SUMMARIES: dict[Kind, tuple[Column, ...]] = {
    "funnel": (Column("leads", "leads", "int"), Column("mql_to_sql", "MQL→SQL", _RATE)),
    "speed": (
        Column("leads", "sales-ready leads (MQL)", "int"),
        Column("contacted", "contacted", "int"),
        Column("median_s", "speed to lead, median", "seconds"),
        Column("p90_s", "speed to lead, p90", "seconds"),
        Column("handed_off", "handed off to a rep", "int"),
        Column("handoff_contacted", "contacted after hand-off", "int"),
        Column("handoff_median_days", "hand-off to first contact, median (days)", "days"),
        Column("handoff_p90_days", "hand-off to first contact, p90 (days)", "days"),
        Column("handoff_mean_days", "hand-off to first contact, mean (days)", "days"),
    ),
    "reasons": (
        Column("screened", "screened (accepted or rejected)", "int"),
        Column("rejected", "rejected", "int"),
        Column("rejection_rate", "rejection rate", _RATE),
        Column("lost", "lost deals", "int"),
    ),
    "roi": (
        Column("by", "by"),
        Column("currency", "currency"),
        Column("flagged", "over their maximum cost per lead", "int"),
    ),
    "tiers": (
        Column("leads", "leads", "int"),
        Column("period", "period"),
        Column("by", "by"),
        Column("tolerance", "tolerance (share points)", _RATE),
        Column("min_leads", "fewest leads to flag", "int"),
        Column("flagged", "tier shares off target", "int"),
    ),
}

_REASONS = (
    Column("reason", "reason"),
    Column("leads", "leads", "int"),
    Column("share", "share", _RATE),
)
_TIER_SHARE = (
    Column("tier", "tier"),
    Column("leads", "leads", "int"),
    Column("total", "of", "int"),
    Column("share", "share", _RATE),
    Column("target", "target", _RATE),
    Column("drift", "drift", _RATE),
    Column("status", "status"),
)
SECTIONS: dict[Kind, tuple[Section, ...]] = {
    "tiers": (
        Section("overall", "Tier shares, whole range", "overall", _TIER_SHARE),
        Section(
            "rows",
            "Tier shares by {period} and {by}",
            "rows",
            (Column("period", "{period}"), Column("key", "{by}"), *_TIER_SHARE),
        ),
    ),
    "funnel": (
        Section(
            "stages",
            "Funnel",
            "stages",
            (
                Column("stage", "stage"),
                Column("leads", "leads", "int"),
                Column("from_previous", "from previous", _RATE),
                Column("from_start", "from received", _RATE),
                Column("leaked", "leaked", "int"),
                Column("leaked_rejected", "rejected", "int"),
                Column("leaked_lost", "lost", "int"),
                Column("leaked_open", "still open", "int"),
            ),
        ),
        Section(
            "breakdown",
            "Conversion and revenue by {breakdown_by}",
            "breakdown",
            (
                Column("key", "{breakdown_by}"),
                Column("leads", "leads", "int"),
                Column("mqls", "MQLs", "int"),
                Column("sqls", "SQLs", "int"),
                Column("won", "won", "int"),
                Column("lead_to_sale", "lead→sale", _RATE),
                Column("mql_to_sql", "MQL→SQL", _RATE),
                Column("revenue", "revenue", "money"),
                Column("average_deal", "average deal", "money"),
            ),
        ),
    ),
    "speed": (
        Section(
            "buckets",
            "Speed to lead",
            "buckets",
            (
                Column("bucket", "first contact"),
                Column("leads", "leads", "int"),
                Column("share", "share", _RATE),
            ),
        ),
        Section(
            "by_rep",
            "Speed to lead by rep",
            "by_rep",
            (
                Column("rep", "rep"),
                Column("leads", "leads", "int"),
                Column("contacted", "contacted", "int"),
                Column("median_s", "median", "seconds"),
                Column("p90_s", "p90", "seconds"),
                Column("within_5m", "within 5 min", _RATE),
                Column("never", "never", "int"),
            ),
        ),
    ),
    "reasons": (
        Section("reasons", "Rejection reasons", "reasons", _REASONS),
        Section("lost_reasons", "Lost-deal reasons", "lost_reasons", _REASONS),
    ),
    "roi": (
        Section(
            "rows",
            "Maximum cost per lead by {by}",
            "rows",
            (
                Column("key", "{by}"),
                Column("leads", "leads", "int"),
                Column("sales", "sales", "int"),
                Column("conversion", "conversion", _RATE),
                Column("revenue", "revenue", "money"),
                Column("profit", "profit", "money"),
                Column("profit_per_sale", "profit/sale", "money"),
                Column("gross_margin", "margin", _RATE),
                Column("target_roi", "target ROI", _RATE),
                Column("max_cost_per_lead", "max cost/lead", "money"),
                Column("cost_per_lead", "actual cost/lead", "money"),
                Column("cost_origin", "cost from"),
                Column("spend", "spend", "money"),
                Column("realized_roi", "realized ROI", _RATE),
                Column("over_by", "over by", "money"),
                Column("over_pct", "over by %", _RATE),
                Column("verdict", "verdict"),
            ),
        ),
    ),
}


def document(kind: Kind, query: ReportQuery, report: Any, now: datetime) -> dict[str, Any]:
    """The report as a JSON-ready document (the HTTP answer and `--format json`)."""
    return {
        "report": kind,
        "generated_at": now.isoformat(),
        "query": query.describe(),
        **asdict(report),
    }


def render(kind: Kind, doc: dict[str, Any], fmt: Format, table: str | None = None) -> str:
    """The document as JSON, text tables, or one CSV table: `table` (default: the report's
    first section; see `table_names`)."""
    if fmt == "json":
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        return csv_tables(kind, doc)[table or SECTIONS[kind][0].name]
    return _tables(kind, doc)


def table_names(kind: Kind) -> list[str]:
    """The CSV tables of a report: `summary`, then its sections in order."""
    return ["summary", *(section.name for section in SECTIONS[kind])]


def csv_tables(kind: Kind, doc: dict[str, Any]) -> dict[str, str]:
    """Every table of the report as its own CSV text (header row, then rows), by name."""
    summary = [
        ["metric", "value"],
        ["from", doc["query"]["from"] or ""],
        ["to", doc["query"]["to"] or ""],
        *([column.field, _raw(doc[column.field])] for column in SUMMARIES[kind]),
    ]
    tables = {"summary": _csv(summary)}
    for section in SECTIONS[kind]:
        header = [c.field for c in section.columns]
        rows = ([_raw(row[c.field]) for c in section.columns] for row in doc[section.rows_field])
        tables[section.name] = _csv([header, *rows])
    return tables


def _csv(rows: Iterable[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _tables(kind: Kind, doc: dict[str, Any]) -> str:
    # Wide enough for every column: a terminal wraps, a pager (less -S) scrolls.
    # Sources, campaigns and reasons are data: `[urgent]` is text here, not Rich markup.
    console = Console(
        file=io.StringIO(),
        width=1000,
        force_terminal=False,
        color_system=None,
        markup=False,
        highlight=False,
    )
    query = doc["query"]
    period = f"{query['from'] or 'the beginning'} to {query['to'] or 'now'}"
    filters = [
        f"{k}={query[k]}" for k in ("source", "campaign", "segment", "team", "rep") if query[k]
    ]
    console.print(f"{kind} report: leads first seen from {period}; {query['touch']} touch")
    if filters:
        console.print("filters: " + ", ".join(filters))
    summary = Table(box=box.SIMPLE, show_header=False)
    summary.add_column()
    summary.add_column(justify="right")
    for column in SUMMARIES[kind]:
        summary.add_row(column.header, _shown(doc[column.field], column.style))
    console.print(summary)
    for section in SECTIONS[kind]:
        table = Table(title=section.title.format(**doc), box=box.SIMPLE_HEAD, title_justify="left")
        for column in section.columns:
            justify: Literal["left", "right"] = "left" if column.style == "text" else "right"
            table.add_column(column.header.format(**doc), justify=justify)
        for row in doc[section.rows_field]:
            table.add_row(*(_shown(row[c.field], c.style) for c in section.columns))
        if not doc[section.rows_field]:
            table.add_row("(no leads)", *([""] * (len(section.columns) - 1)))
        console.print(table)
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def _raw(value: Any) -> Any:
    return "" if value is None else value


def _shown(value: Any, style: Style) -> str:
    if value is None:
        return "-"
    if style == "rate":
        return f"{value * 100:.1f}%"
    if style == "money":
        return f"{value:,.2f}"
    if style == "int":
        return f"{value:,}"
    if style == "seconds":
        return duration(float(value))
    if style == "days":
        return f"{value:.2f}"
    return str(value)


def duration(seconds: float) -> str:
    """`seconds` for people: `42 s`, `3 min 20 s`, `5 h 10 min`, `2 d 4 h`."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"
