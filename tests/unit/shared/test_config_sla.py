"""SLA configuration: reps' working hours and holidays, policy ladders, alert webhooks."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from leadflow.config import Rep, Sla, SlaPolicy, load_config
from tests.unit.shared.test_config import VALID, line_of, load_problems, write


def rep(**fields: Any) -> Rep:
    return Rep.model_validate({"id": "ana", "name": "Ana", "email": "a@x.example", **fields})


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"working_hours": [{"days": ["monday"], "start": "09:00", "end": "17:00"}]}, "days"),
        ({"working_hours": [{"start": "nine", "end": "five"}]}, "start"),
        ({"country": "XX"}, "not a country the holidays calendar knows"),
    ],
)
def test_bad_rep_calendars_are_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        rep(**fields)


def test_a_policy_ladder() -> None:
    policy = SlaPolicy.model_validate(
        {
            "name": "hot",
            "window": "5m",
            "clock": "business",
            "warn_at_percent": 80,
            "escalate_after": "10m",
            "max_escalations": 2,
            "sources": ["web"],
            "rules": ["enterprise-size"],
        }
    )

    assert policy.escalate_after == timedelta(minutes=10)
    assert policy.applies("mql", "any", "web", "enterprise-size")
    assert not policy.applies("mql", "any", "ivr", "enterprise-size")
    assert not policy.applies("mql", "any", "web", "everyone-else")
    assert not policy.applies("mql", "any")  # an unknown source does not match a source list


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"warn_at_percent": 0}, "greater than 0"),
        ({"warn_at_percent": 100}, "less than 100"),
        ({"max_escalations": -1}, "greater than or equal to 0"),
        ({"clock": "lunar"}, "'wall' or 'business'"),
        ({"window": "0s"}, "window must be longer than zero"),
        ({"escalate_after": "soon"}, "is not a duration"),
    ],
)
def test_bad_policies_are_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        SlaPolicy.model_validate({"name": "p", "window": "5m", **fields})


def test_policy_by_source_and_rule() -> None:
    sla = Sla.model_validate(
        {
            "policies": [
                {"name": "ivr-calls", "window": "2m", "sources": ["ivr"]},
                {"name": "named-accounts", "window": "15m", "rules": ["account-owner"]},
                {"name": "rest", "window": "1h"},
            ]
        }
    )

    def name(source: str | None, rule: str | None) -> str | None:
        policy = sla.policy_for("mql", "smb", source, rule)
        return policy.name if policy else None

    assert name("ivr", "account-owner") == "ivr-calls"
    assert name("web", "account-owner") == "named-accounts"
    assert name("web", "everyone-else") == "rest"
    assert sla.policy("rest") is not None
    assert sla.policy("gone") is None


def test_alert_webhooks() -> None:
    sla = Sla.model_validate(
        {
            "policies": [{"name": "p", "window": "5m"}],
            "webhooks": [
                {"url": "https://hooks.example/a"},
                {"url": "https://hooks.slack.example/b", "format": "slack", "stages": ["warning"]},
            ],
        }
    )

    assert sla.email is True
    assert sla.webhooks[0].stages == ["breached", "escalated"]
    assert sla.webhooks[0].wants("escalated", "smb")
    assert not sla.webhooks[1].wants("breached", "smb")


@pytest.mark.parametrize(
    ("hook", "problem"),
    [
        ({"url": "ftp://x"}, "String should match pattern"),
        ({"url": "https://x", "format": "teams"}, "'json' or 'slack'"),
        ({"url": "https://x", "stages": []}, "at least 1 item"),
        ({"url": "https://x", "secret_env": "lower"}, "String should match pattern"),
    ],
)
def test_bad_webhooks_are_refused(hook: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Sla.model_validate({"policies": [{"name": "p", "window": "5m"}], "webhooks": [hook]})


def test_unknown_teams_in_sla_policies_and_webhooks_point_at_their_line(tmp_path: Path) -> None:
    text = VALID.replace("      tiers: [mql]\n", "      tiers: [mql]\n      teams: [enterprize]\n")

    [problem] = load_problems(tmp_path, text)

    assert problem == (
        f"line {line_of(text, 'enterprize')}: sla.policies.0.teams.0: "
        "SLA policy 'hot-mql' names unknown team 'enterprize'."
    )
    text = VALID + "  webhooks:\n    - url: https://hooks.example/x\n      teams: [nobody]\n"
    [problem] = load_problems(tmp_path, text)
    assert problem.endswith("sla.webhooks.0.teams.0: SLA webhook names unknown team 'nobody'.")


def test_a_full_sla_section_loads(tmp_path: Path) -> None:
    text = VALID.replace(
        "    timezone: Europe/Lisbon\n",
        "    timezone: Europe/Lisbon\n    country: PT\n"
        "    working_hours: [{days: [mon, tue], start: '09:00', end: '17:00'}]\n",
    ).replace(
        "      tiers: [mql]\n",
        "      tiers: [mql]\n      clock: business\n      warn_at_percent: 80\n"
        "      escalate_after: 10m\n      max_escalations: 2\n",
    )

    config = load_config(write(tmp_path, text))

    [shift] = config.rep("ana").working_hours
    assert (shift.days, shift.start, shift.end) == (["mon", "tue"], time(9), time(17))
    policy = config.sla.policies[0]
    assert (policy.clock, policy.warn_at_percent, policy.max_escalations) == ("business", 80, 2)
