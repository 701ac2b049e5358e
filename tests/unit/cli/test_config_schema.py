"""`leadflow config schema` describes the files Leadflow reads: every shipped configuration
validates against it, as an editor validates it, and what Leadflow refuses fails it.

An editor reads YAML into JSON before validating: mapping keys become strings and dates
become text, as `as_json` does here.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import yaml
from typer.testing import CliRunner

from leadflow.config import ConfigFileError, load_config
from leadflow_cli.app import app
from tests.unit.shared.test_config import VALID

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted(
    path
    for folder in ("config", "examples")
    for pattern in ("*.yaml", "*.yml")
    for path in (ROOT / folder).rglob(pattern)
)


def as_json(value: Any) -> Any:
    """A YAML document as the JSON an editor validates."""
    if isinstance(value, dict):
        return {str(key): as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_json(item) for item in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    return value


@pytest.fixture(scope="module")
def validator() -> Any:
    done = CliRunner().invoke(app, ["config", "schema"])
    assert done.exit_code == 0, done.output
    schema = orjson.loads(done.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def errors(validator: Any, text: str) -> list[str]:
    document = as_json(yaml.safe_load(text))
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_shipped_configurations_are_many() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in SHIPPED}
    assert {"config/example.yaml", "examples/candidate.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_shipped_configuration_validates(validator: Any, path: Path) -> None:
    load_config(path)  # Leadflow accepts it ...
    assert errors(validator, path.read_text(encoding="utf-8")) == []  # ... and so does the schema


SHIFT = "    working_hours:\n      - {days: DAYS, start: START, end: END}\n"


def with_shift(days: str, start: str, end: str) -> str:
    """VALID with a shift for its first rep."""
    shift = SHIFT.replace("DAYS", days).replace("START", start).replace("END", end)
    return VALID.replace("    timezone: Europe/Lisbon\n", "    timezone: Europe/Lisbon\n" + shift)


@pytest.mark.parametrize(
    ("days", "start", "end"),
    [
        ("[mon-fri]", '"09:00"', '"17:30"'),
        ("[Sat, sun]", '"22:00"', '"06:00:00"'),
        ("[fri-mon]", '"08:15"', '"12:00Z"'),
    ],
)
def test_what_leadflow_reads_the_schema_accepts(
    validator: Any, tmp_path: Path, days: str, start: str, end: str
) -> None:
    text = with_shift(days, start, end)
    path = tmp_path / "leadflow.yaml"
    path.write_text(text, encoding="utf-8")
    load_config(path)
    assert errors(validator, text) == []


@pytest.mark.parametrize(
    ("days", "start", "end", "field"),
    [
        ("[monday]", '"09:00"', '"17:00"', "days"),
        ("[mon-funday]", '"09:00"', '"17:00"', "days"),
        ("[mon]", '"9am"', '"17:00"', "start"),
        ("[mon]", '"09:00"', '"25:00"', "end"),
        ("[mon]", '"09:00"', "17:30", "end"),  # unquoted: YAML's base-60 number 1050
    ],
)
def test_what_leadflow_refuses_the_schema_refuses(
    validator: Any, tmp_path: Path, days: str, start: str, end: str, field: str
) -> None:
    text = with_shift(days, start, end)
    path = tmp_path / "leadflow.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigFileError, match=field):
        load_config(path)
    found = errors(validator, text)
    assert len(found) == 1
    assert f"'working_hours', 0, '{field}'" in found[0]
