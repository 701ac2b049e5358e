"""`leadflow report … --format csv`: one table per output, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow_cli.app import app
from tests.fixtures.stack import CONFIG


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {
        "LEADFLOW_DATABASE_URL": database_url,
        "LEADFLOW_CONFIG": str(CONFIG),
        "LEADFLOW_ENV": "development",
        "COLUMNS": "200",
    }


def test_csv_dir_writes_each_table_to_its_own_file(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "reports"
    done = CliRunner().invoke(app, ["report", "funnel", "--csv-dir", str(out)], env=env)
    assert done.exit_code == 0, done.output
    names = ["funnel-summary.csv", "funnel-stages.csv", "funnel-breakdown.csv"]
    assert done.stdout.split() == [str(out / name) for name in names]
    for name in names:
        rows = list(csv.reader(io.StringIO((out / name).read_text(encoding="utf-8"))))
        width = len(rows[0])
        assert all(len(row) == width for row in rows), name  # one table: one shape


def test_csv_is_one_table_chosen_by_name(env: dict[str, str]) -> None:
    done = CliRunner().invoke(
        app, ["report", "speed", "--format", "csv", "--table", "summary"], env=env
    )
    assert done.exit_code == 0, done.output
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["metric", "value"]
    assert all(len(row) == 2 for row in rows)


def test_an_unknown_table_lists_the_tables(env: dict[str, str]) -> None:
    done = CliRunner().invoke(
        app, ["report", "speed", "--format", "csv", "--table", "[rows]"], env=env
    )
    assert done.exit_code == 2
    assert "the speed report has no table '[rows]'" in done.output
    assert "its tables are summary, buckets, by_rep." in done.output
