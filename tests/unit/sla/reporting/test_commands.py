"""`leadflow report …` without a server: reading the database, and saying what is wrong."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from leadflow.settings import Settings
from leadflow_sla.reporting.commands import ReportError, report, write_csv
from tests.fixtures.stack import CONFIG


def test_an_empty_database_gives_empty_reports(sqlite_url: str) -> None:
    settings = Settings(config=CONFIG, database_url=sqlite_url)
    doc = orjson.loads(report("roi", settings, "json", by="campaign", start="2026-11-01"))
    assert (doc["by"], doc["rows"], doc["flagged"]) == ("campaign", [], 0)
    assert doc["query"]["from"] == "2026-11-01T00:00:00+00:00"
    shown = report("reasons", settings, "table")
    assert "(no leads)" in shown


def test_an_unmigrated_database_says_to_run_the_migrations(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(ReportError, match="has `leadflow db upgrade` run"):
        report("funnel", Settings(config=CONFIG, database_url=url), "table")


def test_a_bad_period_is_a_report_error(sqlite_url: str) -> None:
    settings = Settings(config=CONFIG, database_url=sqlite_url)
    with pytest.raises(ReportError, match="'soon' is not a date"):
        report("speed", settings, "csv", end="soon")


def test_csv_dir_writes_one_file_per_table(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(config=CONFIG, database_url=sqlite_url)
    written = write_csv("funnel", settings, tmp_path / "out", by="source")
    names = sorted(path.name for path in written)
    assert names == ["funnel-breakdown.csv", "funnel-stages.csv", "funnel-summary.csv"]
    stages = (tmp_path / "out" / "funnel-stages.csv").read_text().splitlines()
    assert stages[0].startswith("stage,leads,")
    assert all(not line.startswith("#") and line for line in stages)


def test_a_csv_table_is_chosen_by_name(sqlite_url: str) -> None:
    settings = Settings(config=CONFIG, database_url=sqlite_url)
    assert report("speed", settings, "csv", "summary").startswith("metric,value\n")
    assert report("speed", settings, "csv").startswith("bucket,")
    with pytest.raises(ReportError, match="its tables are summary, buckets, by_rep"):
        report("speed", settings, "csv", "rows")
    with pytest.raises(ReportError, match="add --format csv"):
        report("speed", settings, "json", "summary")
