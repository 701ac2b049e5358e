"""`leadflow report …` without a server: reading the database, and saying what is wrong."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from leadflow.settings import Settings
from leadflow_sla.reporting.commands import ReportError, report
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
