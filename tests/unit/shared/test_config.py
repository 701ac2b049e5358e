"""The YAML configuration: the example loads, durations parse, errors point at their line."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from leadflow.config import (
    ConfigFileError,
    LeadflowConfig,
    RoutingRule,
    Scoring,
    Sla,
    SlaPolicy,
    load_config,
    parse_duration,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "example.yaml"

VALID = """\
# A small but complete configuration; each test breaks one line of it.
sources:
  web:
    kind: standard
scoring:
  version: "t1"
  mql_threshold: 60
  watch_threshold: 40
  rules:
    - name: big-company
      group: fit
      points: 20
      when:
        - field: lead.company.size
          gte: 200
reps:
  - id: ana
    name: Ana Silva
    email: ana@example.com
    timezone: Europe/Lisbon
  - id: dev
    name: Dev Patel
    email: dev@example.com
    timezone: Asia/Kolkata
teams:
  - name: enterprise
    manager: {name: Grace Lee, email: grace@example.com}
    reps: [ana]
  - name: smb
    manager: {name: Henry Moore, email: henry@example.com}
    reps: [dev]
routing:
  version: "t1"
  fallback_team: smb
  rules:
    - name: enterprise-size
      team: enterprise
      when:
        - field: lead.company.size
          gte: 1000
    - name: india-to-dev
      rep: dev
      when:
        - field: lead.country
          equals: IN
sla:
  policies:
    - name: hot-mql
      window: 5m
      tiers: [mql]
"""


def write(tmp_path: Path, text: str) -> Path:
    """`text` saved as a YAML file in the test's directory."""
    path = tmp_path / "leadflow.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def broken(old: str, new: str) -> str:
    """The valid configuration with exactly one occurrence of `old` replaced by `new`."""
    assert VALID.count(old) == 1, f"{old!r} must occur once in VALID"
    return VALID.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the only line of `text` that contains `needle`."""
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(lines) == 1, f"{needle!r} must occur on exactly one line"
    return lines[0]


def load_problems(tmp_path: Path, text: str) -> list[str]:
    """The problems `load_config` reports for `text` (it must refuse it)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as caught:
        load_config(path)
    assert caught.value.path == path
    assert str(caught.value) == f"{path}: " + "; ".join(caught.value.problems)
    return caught.value.problems


def test_example_configuration_loads() -> None:
    config = load_config(EXAMPLE)

    assert {name: source.kind for name, source in config.sources.items()} == {
        "web": "standard",
        "crm": "standard",
        "hubspot": "hubspot",
        "ivr": "twilio",
        "callrail": "callrail",
        "marketo": "marketo",
        "import": "standard",
    }
    assert {name for name, source in config.sources.items() if source.lane == "bulk"} == {"import"}
    assert sorted(config.sources["ivr"].questions) == ["authority", "budget", "need", "timeframe"]
    assert (config.scoring.mql_threshold, config.scoring.watch_threshold) == (60, 40)
    assert config.scoring.hand_raise_activities == ["demo_request"]
    assert [rule.name for rule in config.scoring.rules][:8] == [
        "senior-title",
        "manager-title",
        "mid-market-or-larger",
        "target-industry",
        "demo-request",
        "pricing-page",
        "content-download",
        "webinar",
    ]
    assert [rule.name for rule in config.scoring.rules if rule.disqualify] == [
        "competitor",
        "existing-customer",
        "student",
        "academic-email",
        "throwaway-email",
        "link-in-name",
    ]
    assert [rep.id for rep in config.reps] == [
        "ana",
        "ben",
        "chloe",
        "dev",
        "emma",
        "felix",
        "iris",
    ]
    assert config.rep("chloe").name == "Chloé Martin"
    assert config.rep("dev").timezone == "Asia/Kolkata"
    assert config.team("enterprise").reps == ["ana", "ben", "chloe"]
    team_of_felix = config.team_of("felix")
    assert team_of_felix is not None
    assert team_of_felix.name == "smb"
    assert config.team_of("nobody") is None
    assert [(r.name, r.team, r.rep) for r in config.routing.rules] == [
        ("watch-list", "inside-sales", None),
        ("enterprise-size", "enterprise", None),
        ("dach-to-felix", None, "felix"),
        ("everyone-else", "smb", None),
    ]
    assert config.routing.tiers == ["mql", "watch"]
    assert config.routing.fallback_team == "smb"
    assert config.routing.rules[3].when == []
    assert [(p.name, p.window, p.tiers) for p in config.sla.policies] == [
        ("hot-mql", timedelta(minutes=5), ["mql"])
    ]


def test_the_small_valid_configuration_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))

    assert [rep.id for rep in config.reps] == ["ana", "dev"]
    assert config.routing.rules[1].when[0].equals == "IN"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("250ms", timedelta(milliseconds=250)),
        (" 10 m ", timedelta(minutes=10)),
        ("0s", timedelta(0)),
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        (0, timedelta(0)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
def test_parse_duration(value: Any, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("5 minutes", "'5 minutes'"),
        ("5", "'5'"),
        ("", "''"),
        ("m", "'m'"),
        ("-5m", "'-5m'"),
        ("1,5h", "'1,5h'"),
        ("5M", "'5M'"),
        ("2w", "'2w'"),
        ("1h30m", "'1h30m'"),
        (True, "True"),
        (None, "None"),
    ],
)
def test_parse_duration_refuses_what_is_not_a_duration(value: Any, shown: str) -> None:
    with pytest.raises(ValueError, match="is not a duration") as caught:
        parse_duration(value)

    assert str(caught.value) == f"{shown} is not a duration; write e.g. 30s, 5m, 1h or 2d."


@pytest.mark.parametrize("value", [-300, -0.5])
def test_parse_duration_refuses_negative_numbers(value: float) -> None:
    # "-5m" is refused; the same negative window written as a number must be too.
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("old", "new", "needle", "problem"),
    [
        pytest.param(
            "timezone: Asia/Kolkata",
            "timezone: Mars/Olympus",
            "Mars/Olympus",
            "reps.1.timezone: 'Mars/Olympus' is not an IANA time zone (e.g. Europe/Lisbon).",
            id="bad-timezone",
        ),
        pytest.param(
            "window: 5m",
            "window: soon",
            "window: soon",
            "sla.policies.0.window: 'soon' is not a duration; write e.g. 30s, 5m, 1h or 2d.",
            id="bad-duration",
        ),
        pytest.param(
            "    kind: standard",
            "    kind: zapier",
            "kind: zapier",
            "sources.web.kind: Input should be 'standard', 'hubspot', 'twilio', 'callrail' "
            "or 'marketo'",
            id="unknown-kind",
        ),
        pytest.param(
            "    kind: standard",
            "    kind: standard\n    lane: later",
            "lane: later",
            "sources.web.lane: Input should be 'live' or 'bulk'",
            id="unknown-lane",
        ),
        pytest.param(
            "      points: 20",
            "      points: twenty",
            "points: twenty",
            "scoring.rules.0.points: Input should be a valid integer, unable to parse string "
            "as an integer",
            id="bad-points",
        ),
        pytest.param(
            "          equals: IN",
            "          equals: IN\n          prefix: I",
            "- field: lead.country",
            "routing.rules.1.when.0: condition on 'lead.country' has several operators "
            "(equals, prefix); only numeric bounds (gte/gt/lte/lt) can be combined.",
            id="two-operators",
        ),
        pytest.param(
            "    name: Dev Patel",
            "    name: Dev Patel\n    colour: blue",
            "colour: blue",
            "reps.1.colour: Extra inputs are not permitted",
            id="extra-key",
        ),
        pytest.param(
            "  - id: dev",
            "  - id: Dev",
            "id: Dev",
            "reps.1.id: String should match pattern '^[a-z][a-z0-9_-]*$'",
            id="bad-rep-id",
        ),
    ],
)
def test_field_errors_point_at_their_line(
    tmp_path: Path, old: str, new: str, needle: str, problem: str
) -> None:
    text = broken(old, new)

    assert load_problems(tmp_path, text) == [f"line {line_of(text, needle)}: {problem}"]


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        pytest.param(
            "      team: enterprise",
            "      team: enterprize",
            "team: enterprize",
            "routing rule 'enterprise-size' names unknown team 'enterprize'.",
            id="unknown-team",
        ),
        pytest.param(
            "      rep: dev",
            "      rep: zoe",
            "rep: zoe",
            "routing rule 'india-to-dev' names unknown rep 'zoe'.",
            id="unknown-rep-in-rule",
        ),
        pytest.param(
            "    reps: [dev]",
            "    reps: [dev, zoe]",
            "reps: [dev, zoe]",
            "team 'smb' lists unknown rep 'zoe'.",
            id="unknown-rep-in-team",
        ),
        pytest.param(
            "  fallback_team: smb",
            "  fallback_team: nobody",
            "fallback_team: nobody",
            "routing.fallback_team 'nobody' is not a team.",
            id="unknown-fallback-team",
        ),
        pytest.param(
            "  watch_threshold: 40",
            "  watch_threshold: 70",
            "watch_threshold: 70",
            "watch_threshold must be below mql_threshold.",
            id="watch-above-mql",
        ),
    ],
)
def test_cross_reference_errors_point_at_the_offending_line(
    tmp_path: Path, old: str, new: str, needle: str, message: str
) -> None:
    text = broken(old, new)

    [problem] = load_problems(tmp_path, text)

    assert problem.split(":", 1)[0] == f"line {line_of(text, needle)}"
    assert problem.endswith(message)


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = broken("timezone: Asia/Kolkata", "timezone: Nowhere").replace(
        "window: 5m", "window: later"
    )

    assert load_problems(tmp_path, text) == [
        f"line {line_of(text, 'Nowhere')}: reps.1.timezone: 'Nowhere' is not an IANA time "
        "zone (e.g. Europe/Lisbon).",
        f"line {line_of(text, 'later')}: sla.policies.0.window: 'later' is not a duration; "
        "write e.g. 30s, 5m, 1h or 2d.",
    ]


def test_missing_section_points_at_the_top_level(tmp_path: Path) -> None:
    text = VALID.split("sla:")[0]

    assert load_problems(tmp_path, text) == [
        f"line {line_of(text, 'sources:')}: sla: Field required"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("sources: [unclosed\n", "line 2, column 1: is not valid YAML: expected ',' or ']'"),
        (
            "sources:\n  web: standard\n    kind: standard\n",
            "line 3, column 9: is not valid YAML: mapping values are not allowed here",
        ),
    ],
)
def test_invalid_yaml_names_the_line_on_one_line(tmp_path: Path, text: str, problem: str) -> None:
    [reported] = load_problems(tmp_path, text)

    assert reported.startswith(problem)
    # The file is named by the error (`load_problems`), not PyYAML's `<unicode string>`.
    assert "<unicode string>" not in reported
    assert "\n" not in reported


@pytest.mark.parametrize("text", ["", "- sources\n- scoring\n", "just a sentence\n"])
def test_configuration_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    assert load_problems(tmp_path, text) == [
        "must be a YAML mapping with sources, scoring, teams, ..."
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigFileError) as caught:
        load_config(path)

    assert caught.value.problems == ["cannot read the file (No such file or directory)"]
    assert str(caught.value) == f"{path}: cannot read the file (No such file or directory)"


def config_data() -> dict[str, Any]:
    """The smallest valid configuration, as data."""
    return {
        "sources": {"web": {"kind": "standard"}},
        "scoring": {"version": "t1", "mql_threshold": 60},
        "reps": [{"id": "ana", "name": "Ana", "email": "ana@example.com"}],
        "teams": [
            {"name": "smb", "manager": {"name": "M", "email": "m@example.com"}, "reps": ["ana"]}
        ],
        "routing": {"version": "t1", "fallback_team": "smb"},
        "sla": {"policies": [{"name": "any", "window": "1h"}]},
    }


def test_defaults() -> None:
    config = LeadflowConfig.model_validate(config_data())

    assert config.rep("ana").timezone == "UTC"
    assert config.rep("ana").active is True
    assert config.scoring.watch_threshold is None
    assert config.scoring.hand_raise_activities == ["demo_request"]
    assert config.team("smb").distribution == "round_robin"
    assert config.routing.tiers == ["mql"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sources": {"Web Forms": {"kind": "standard"}}}, "source name 'Web Forms' must be"),
        (
            {"reps": [{"id": "ana", "name": "A", "email": "a@x"}] * 2},
            "rep id 'ana' is used twice.",
        ),
        ({"sla": {"policies": []}}, "List should have at least 1 item"),
    ],
)
def test_invalid_configuration_data(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LeadflowConfig.model_validate({**config_data(), **change})


def test_scoring_rule_names_must_be_unique() -> None:
    rule = {"name": "r", "group": "fit", "points": 1, "when": [{"field": "a", "exists": True}]}

    with pytest.raises(ValidationError, match=r"scoring rule 'r' is defined twice."):
        Scoring.model_validate({"version": "1", "mql_threshold": 10, "rules": [rule, rule]})


@pytest.mark.parametrize("watch", [60, 61])
def test_watch_threshold_must_be_below_mql_threshold(watch: int) -> None:
    with pytest.raises(
        ValidationError, match=re.escape("watch_threshold must be below mql_threshold.")
    ):
        Scoring(version="1", mql_threshold=60, watch_threshold=watch)


@pytest.mark.parametrize(
    "target",
    [{}, {"team": "smb", "rep": "ana"}],
)
def test_routing_rule_needs_exactly_one_target(target: dict[str, str]) -> None:
    with pytest.raises(
        ValidationError, match=re.escape("routing rule 'r' needs exactly one of team or rep.")
    ):
        RoutingRule.model_validate({"name": "r", **target})


SLA = Sla(
    policies=[
        SlaPolicy(name="enterprise-mql", window=timedelta(minutes=5), tiers=["mql"], teams=["ent"]),
        SlaPolicy(name="any-mql", window=timedelta(minutes=15), tiers=["mql"]),
        SlaPolicy(name="catch-all", window=timedelta(hours=4)),
    ]
)


@pytest.mark.parametrize(
    ("tier", "team", "expected"),
    [
        ("mql", "ent", "enterprise-mql"),
        ("mql", "smb", "any-mql"),
        ("watch", "ent", "catch-all"),
        ("nurture", "smb", "catch-all"),
    ],
)
def test_first_applicable_sla_policy_wins(tier: str, team: str, expected: str) -> None:
    policy = SLA.policy_for(tier, team)

    assert policy is not None
    assert policy.name == expected


def test_no_sla_policy_applies() -> None:
    sla = Sla(policies=[SlaPolicy(name="mql-only", window=timedelta(minutes=5), tiers=["mql"])])

    assert sla.policy_for("watch", "smb") is None
