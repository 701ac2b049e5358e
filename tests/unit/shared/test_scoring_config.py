"""The scoring model in YAML: errors point at their line; the JSON Schema; the simulate command."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from leadflow.config import LeadflowConfig
from leadflow_cli.app import app
from tests.unit.shared.test_config import VALID, line_of, load_problems

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "example.yaml"
RULE = """\
    - name: big-company
      group: fit
      points: 20
      when:
        - field: lead.company.size
          gte: 200
"""


def with_scoring(extra: str, rules: str = "") -> str:
    """VALID with extra `scoring:` settings (indented two spaces) and extra rules."""
    text = VALID.replace(
        '  version: "t1"\n  mql_threshold: 60',
        '  version: "t1"\n' + extra + "  mql_threshold: 60",
        1,
    )
    return text.replace(RULE, RULE + rules, 1)


@pytest.mark.parametrize(
    ("extra", "rules", "needle", "problem"),
    [
        pytest.param(
            "",
            RULE,
            None,
            "scoring.rules.1.name: scoring rule 'big-company' is defined twice.",
            id="duplicate-rule",
        ),
        pytest.param(
            "",
            "    - name: old-news\n      group: fit\n      points: 5\n      half_life: 7d\n"
            "      when: [{field: a, exists: true}]\n",
            "half_life: 7d",
            "scoring.rules.1.half_life: fit rule 'old-news' cannot decay: fit describes the "
            "profile.",
            id="fit-decay",
        ),
        pytest.param(
            "",
            "    - name: rival\n      group: fit\n      points: 5\n      disqualify: true\n"
            "      when: [{field: a, exists: true}]\n",
            "points: 5",
            "scoring.rules.1.points: disqualifying rule 'rival' cannot add points; use 0 or less.",
            id="disqualify-with-points",
        ),
        pytest.param(
            "  caps: {contnet: 30}\n",
            "",
            "caps: {contnet: 30}",
            "scoring.caps.contnet: cap 'contnet' matches no rule category; use fit, engagement "
            "or one of [].",
            id="unknown-cap",
        ),
        pytest.param(
            "  grades:\n    fit: {A: 10, B: 30, C: 5}\n",
            "",
            "fit: {A: 10, B: 30, C: 5}",
            "scoring.grades.fit: fit grade floors must fall strictly from A to C; got A: 10, B: "
            "30, C: 5.",
            id="grade-order",
        ),
        pytest.param(
            "  grades:\n    engagement: {1: 50, 2: 25}\n",
            "",
            "engagement: {1: 50, 2: 25}",
            "scoring.grades.engagement: engagement grades need exactly 1, 2, 3 (the least points "
            "for each; below 3 is 4); got 1, 2.",
            id="grade-missing",
        ),
        pytest.param(
            "  mql_grades: [A1, E9]\n",
            "",
            "mql_grades: [A1, E9]",
            "scoring.mql_grades: ['E9'] are not grades; use A1 ... D4 (fit A-D, engagement 1-4).",
            id="unknown-grade",
        ),
        pytest.param(
            "  campaigns:\n    spring:\n      mql_threshold: 30\n",
            "",
            "mql_threshold: 30",
            "scoring.campaigns.spring: campaign 'spring': watch_threshold 40 must be below its "
            "mql_threshold 30.",
            id="campaign-thresholds",
        ),
        pytest.param(
            "  domains:\n    competitors: [https://rival.example]\n",
            "",
            "competitors: [https://rival.example]",
            "scoring.domains.competitors: not domain names: ['https://rival.example']; write "
            "e.g. acme.com (no @, no scheme).",
            id="bad-domain",
        ),
        pytest.param(
            "  engagement_half_life: 0s\n",
            "",
            "engagement_half_life: 0s",
            "scoring.engagement_half_life: engagement_half_life must be longer than zero.",
            id="zero-half-life",
        ),
    ],
)
def test_scoring_model_errors_point_at_their_line(
    tmp_path: Path, extra: str, rules: str, needle: str | None, problem: str
) -> None:
    text = with_scoring(extra, rules)
    if needle is None:
        # The duplicate is the second of two identical blocks: its name line is the later one.
        lines = [n for n, line in enumerate(text.splitlines(), 1) if "- name: big-company" in line]
        line = lines[1]
    else:
        line = line_of(text, needle)

    assert load_problems(tmp_path, text) == [f"line {line}: {problem}"]


def test_a_full_scoring_model_loads(tmp_path: Path) -> None:
    text = with_scoring(
        "  engagement_half_life: 30d\n  caps: {engagement: 80}\n  mql_grades: [A1]\n"
        "  campaigns: {spring: {mql_threshold: 50}}\n  grades: {engagement: {1: 40, 2: 20, 3: 5}}\n"
    )
    path = tmp_path / "c.yaml"
    path.write_text(text)

    from leadflow.config import load_config

    scoring = load_config(path).scoring
    assert scoring.grades.engagement == {"1": 40, "2": 20, "3": 5}
    assert scoring.for_campaign("spring").mql_threshold == 50
    assert scoring.for_campaign("autumn").mql_threshold == 60
    assert scoring.domains.personal[0] == "gmail.com"


def test_config_schema_command_writes_a_schema_that_describes_scoring(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"

    result = CliRunner().invoke(app, ["config", "schema", "--output", str(out)])

    assert result.exit_code == 0, result.output
    schema = orjson.loads(out.read_bytes())
    assert schema["title"] == "Leadflow configuration"
    scoring = schema["$defs"]["Scoring"]["properties"]
    assert {"engagement_half_life", "caps", "grades", "hand_raises", "campaigns", "domains"} <= set(
        scoring
    )
    duration = schema["$defs"]["ScoringRule"]["properties"]["half_life"]["anyOf"][0]
    assert duration["anyOf"][0]["type"] == "string"
    assert schema == orjson.loads(
        orjson.dumps(
            LeadflowConfig.model_json_schema(mode="validation")
            | {"$schema": schema["$schema"], "title": schema["title"]}
        )
    )


def test_simulate_reports_what_the_candidate_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_CONFIG", str(EXAMPLE))
    report = tmp_path / "report.json"

    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(ROOT / "examples" / "history.jsonl"),
            "--config",
            str(ROOT / "examples" / "candidate.yaml"),
            "--json",
            str(report),
        ],
    )

    assert result.exit_code == 0, result.output
    data = orjson.loads(report.read_bytes())
    assert (data["events"], data["leads"]) == (11, 6)
    assert data["tiers"] == {
        "current": {"disqualified": 1, "mql": 4, "watch": 1},
        "candidate": {"disqualified": 1, "mql": 5},
    }
    assert data["tier_moves"] == {"watch -> mql": 1}
    [change] = data["changed"]
    assert (change["current"]["team"], change["candidate"]["team"]) == ("inside-sales", "smb")
    assert "watch -> mql" in result.output


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"event": "lead", "lead": {"first_name": "No identity"}}',
            "a lead needs an email or a phone",
        ),
        ("not json", "not valid JSON"),
        (
            '{"event": "lead", "lead": {"email": "a@b.example"}, '
            '"received_at": "2026-11-01T10:00:00"}',
            "needs a time zone",
        ),
        ("[1, 2]", "each line must be a JSON object"),
    ],
)
def test_simulate_names_the_bad_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    monkeypatch.setenv("LEADFLOW_CONFIG", str(EXAMPLE))
    history = tmp_path / "h.jsonl"
    history.write_text('{"event": "lead", "lead": {"email": "ok@b.example"}}\n' + line + "\n")

    result = CliRunner().invoke(app, ["simulate", str(history), "--config", str(EXAMPLE)])

    assert result.exit_code == 1
    assert f"{history}:2:" in result.output
    assert message in result.output.replace("\n", " ")


def test_simulate_refuses_a_broken_candidate_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_CONFIG", str(EXAMPLE))
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(EXAMPLE.read_text().replace("mql_threshold: 60 ", "mql_threshold: sixty "))

    result = CliRunner().invoke(
        app, ["simulate", str(ROOT / "examples" / "history.jsonl"), "--config", str(candidate)]
    )

    assert result.exit_code == 1
    assert "scoring.mql_threshold: Input should be a valid integer" in result.output.replace(
        "\n", " "
    )
