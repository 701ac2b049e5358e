"""The `reporting` section of the configuration: defaults, segments, costs, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from leadflow.config import ConfigFileError, Reporting, load_config

EXAMPLE = Path(__file__).parents[3] / "config" / "example.yaml"


def test_a_config_without_reporting_loads_with_defaults(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    del data["reporting"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    reporting = load_config(path).reporting
    assert (reporting.gross_margin, reporting.target_roi, reporting.currency) == (1.0, 0.0, "USD")
    assert reporting.segment_names() == ["other"]


def test_the_example_defines_segments_and_costs() -> None:
    reporting = load_config(EXAMPLE).reporting
    assert reporting.segment_names() == ["enterprise", "mid-market", "smb", "other"]
    enterprise = reporting.segment("enterprise")
    assert enterprise is not None
    assert (enterprise.cost_per_lead, enterprise.gross_margin) == (250, 0.75)
    assert reporting.segment("other") is None
    assert reporting.campaign_costs["linkedin-abm"] == 150


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"segments": [{"name": "a"}, {"name": "a"}]}, "repeated: \\['a'\\]"),
        ({"segments": [{"name": "other"}]}, "other_segment 'other' is also a segment's name"),
        ({"gross_margin": 1.5}, "less than or equal to 1"),
        ({"target_roi": -1}, "greater than -1"),
        ({"campaign_costs": {"x": -5}}, "greater than or equal to 0"),
        ({"segments": [{"name": "a", "when": [{"field": "lead.x"}]}]}, "needs an operator"),
        ({"currency": "dollars"}, "should match pattern"),
    ],
)
def test_bad_reporting_sections_are_refused(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Reporting.model_validate(section)


def test_a_bad_segment_is_reported_with_its_line(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("      cost_per_lead: 90", "      cost_per_lead: -90")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "cost_per_lead: -90" in t)
    assert problem.startswith(f"line {line}: reporting.segments.1.cost_per_lead")
