"""How `leadflow` fails: one sentence and exit 2 when what it needs does not answer, text
printed as written, YAML errors at their file and line, and `--version`.

The unreachable cases run the real command in a child process (what an operator sees,
traceback or not) against a loopback port that is bound but never listens: connecting to
it is refused at once, and no other process can take it meanwhile.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow import __version__
from leadflow_cli.app import app
from leadflow_cli.failures import UNREACHABLE_EXIT, database_address
from tests.unit.shared.test_config import VALID

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "example.yaml"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def leadflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`leadflow ARGS` as a child process, with only `env` among Leadflow's settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "leadflow_cli", *args],
        env={**clean, "LEADFLOW_CONFIG": str(EXAMPLE), "COLUMNS": "80", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_sentence(done: subprocess.CompletedProcess[str], address: str, setting: str) -> None:
    assert done.returncode == UNREACHABLE_EXIT, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 2, done.stderr
    assert lines[0].startswith("error: could not reach"), done.stderr
    assert address in done.stderr
    assert setting in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("db", "upgrade"),
        ("report", "funnel"),
        ("report", "speed", "--format", "csv"),
    ],
    ids=["db", "report-table", "report-csv"],
)
def test_an_unreachable_database_is_one_sentence(closed_port: int, command: tuple[str]) -> None:
    url = f"postgresql+asyncpg://leadflow:secret@127.0.0.1:{closed_port}/leadflow"
    done = leadflow(*command, LEADFLOW_DATABASE_URL=url)
    assert_one_sentence(done, f"127.0.0.1:{closed_port}", "LEADFLOW_DATABASE_URL")
    assert "connection refused" in done.stderr
    assert "secret" not in done.stderr  # the URL's password is never shown


@pytest.mark.parametrize(
    "command",
    [("events", "tail", "leads.scored"), ("dlq", "replay")],
    ids=["events", "dlq"],
)
def test_an_unreachable_broker_is_one_sentence(closed_port: int, command: tuple[str]) -> None:
    done = leadflow(*command, LEADFLOW_KAFKA_BOOTSTRAP=f"127.0.0.1:{closed_port}")
    assert_one_sentence(done, f"127.0.0.1:{closed_port}", "LEADFLOW_KAFKA_BOOTSTRAP")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("LEADFLOW_DATABASE_URL", "postgresql+asyncpg://u:secret@127.0.0.1:{port}/leadflow"),
        ("LEADFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:{port}"),
    ],
    ids=["database", "broker"],
)
def test_run_says_what_it_cannot_reach_before_starting(
    closed_port: int, tmp_path: Path, setting: str, value: str
) -> None:
    done = leadflow("run", "--var", str(tmp_path), **{setting: value.format(port=closed_port)})
    assert_one_sentence(done, f"127.0.0.1:{closed_port}", setting)
    assert "secret" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing was started


def test_an_unreachable_intake_is_one_sentence(closed_port: int, tmp_path: Path) -> None:
    body = tmp_path / "lead.json"
    body.write_text('{"event": "lead", "email": "ana@example.com"}')
    url = f"http://127.0.0.1:{closed_port}"
    done = leadflow("webhook", "send", str(body), "--url", url)
    assert_one_sentence(done, url, "--url")


def test_an_import_without_an_intake_is_one_sentence(closed_port: int, tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text("email\nana@example.com\nben@example.com\n")
    url = f"http://127.0.0.1:{closed_port}"
    done = leadflow("import", str(leads), "--url", url)
    assert_one_sentence(done, url, "--url")
    assert "connection refused" in done.stderr


def test_the_demo_without_an_intake_is_one_sentence(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    done = leadflow("demo", "--url", url, "--duration", "1")
    assert_one_sentence(done, url, "--url")


def test_an_unreachable_scoring_is_one_sentence(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    done = leadflow("people", "erase", "ana@example.com", "--url", url, "--token", "t")
    assert_one_sentence(done, url, "--url")


def test_database_addresses_name_host_and_port_never_the_password() -> None:
    assert database_address("postgresql+asyncpg://u:pw@db.internal/x") == "db.internal:5432"
    assert database_address("postgresql+asyncpg://u:pw@10.0.0.5:6543/x") == "10.0.0.5:6543"
    assert database_address("sqlite+aiosqlite:///var/leadflow.db") == (
        "the SQLite file var/leadflow.db"
    )


def test_configuration_text_is_printed_as_written(tmp_path: Path) -> None:
    path = tmp_path / "leadflow.yaml"
    path.write_text(VALID.replace("  - id: ana\n", "  - id: Ana[1]\n"), encoding="utf-8")
    done = CliRunner().invoke(app, ["config", "check", str(path)], env={"COLUMNS": "200"})
    assert done.exit_code == 1
    # Rich would read `[a-z]` and `[1]` as markup and drop them.
    assert "String should match pattern '^[a-z][a-z0-9_-]*$'" in done.output


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("sources:\n  web: [standard\nteams: []\n", encoding="utf-8")
    done = CliRunner().invoke(app, ["config", "check", str(path)], env={"COLUMNS": "300"})
    assert done.exit_code == 1
    assert f"{path}: line 3, column 6: is not valid YAML" in done.output
    assert "<unicode string>" not in done.output


def test_a_yaml_error_in_leadflow_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("sources: {web: [\n", encoding="utf-8")
    done = leadflow("report", "funnel", LEADFLOW_CONFIG=str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{path}: line 2, column 1: is not valid YAML" in " ".join(done.stderr.split())


def test_version() -> None:
    done = CliRunner().invoke(app, ["--version"])
    assert done.exit_code == 0
    assert done.output == f"leadflow {__version__}\n"


def test_a_bad_service_setting_names_its_variable() -> None:
    done = leadflow("sla-monitor", LEADFLOW_ENV="development", LEADFLOW_SLA_HORIZON_S="soon")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("Configuration error: LEADFLOW_SLA_HORIZON_S: Input should be")
