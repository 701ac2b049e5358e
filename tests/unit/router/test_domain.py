"""Routing decisions: rule order, round robin, named reps, fallback and queueing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from leadflow.config import LeadflowConfig, RoutingRule
from leadflow.events import Company, Lead, LeadScored, Tier
from leadflow_router.domain import (
    FALLBACK_RULE,
    Decision,
    first_match,
    next_in_rotation,
    route,
    routing_document,
    unavailable_reps,
)

# A Thursday.
NOW = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)

REPS = {
    "ana": "Ana Silva",
    "ben": "Ben Carter",
    "chloe": "Chloé Martin",
    "dev": "Dev Patel",
    "emma": "Emma Jones",
    "felix": "Felix Wagner",
    "gus": "Gus Ortega",
}


def make_config(inactive: frozenset[str] = frozenset()) -> LeadflowConfig:
    """Enterprise (ana, ben, chloe), smb (dev, emma) and two reps outside any team."""
    return LeadflowConfig.model_validate(
        {
            "sources": {"web": {"kind": "standard"}},
            "scoring": {"version": "t1", "mql_threshold": 60},
            "reps": [
                {"id": rep_id, "name": name, "email": f"{rep_id}@example.com"}
                | ({"active": False} if rep_id in inactive else {})
                for rep_id, name in REPS.items()
            ],
            "teams": [
                {
                    "name": "enterprise",
                    "manager": {"name": "Grace Lee", "email": "grace@example.com"},
                    "reps": ["ana", "ben", "chloe"],
                },
                {
                    "name": "smb",
                    "manager": {"name": "Henry Moore", "email": "henry@example.com"},
                    "reps": ["dev", "emma"],
                },
            ],
            "routing": {
                "version": "t1",
                "fallback_team": "smb",
                "rules": [
                    {
                        "name": "enterprise-size",
                        "team": "enterprise",
                        "when": [{"field": "lead.company.size", "gte": 1000}],
                    },
                    {
                        "name": "dach-to-felix",
                        "rep": "felix",
                        "when": [{"field": "lead.country", "in": ["DE", "AT", "CH"]}],
                    },
                    {
                        "name": "german-to-dev",
                        "rep": "dev",
                        "when": [{"field": "lead.language", "equals": "de"}],
                    },
                    {
                        "name": "partners-to-gus",
                        "rep": "gus",
                        "when": [{"field": "source", "equals": "partner"}],
                    },
                ],
            },
            "sla": {"policies": [{"name": "hot", "window": "5m"}]},
        }
    )


CONFIG = make_config()


def scored(
    lead: Lead | None = None, *, source: str = "web", tier: Tier = "mql", score: int = 70
) -> LeadScored:
    """A scored lead (by default an MQL from a small company in Portugal)."""
    return LeadScored(
        lead_key="lk_test",
        model_version="t1",
        score=score,
        fit=score - 40,
        engagement=40,
        tier=tier,
        qualified=tier == "mql",
        newly_qualified=tier == "mql",
        reasons=[],
        scored_at=NOW,
        received_at=NOW,
        source=source,
        lead=lead or Lead(country="PT", company=Company(size=50)),
    )


def test_routing_document() -> None:
    lead = Lead(email="ana@example.com", country="DE", company=Company(size=1200))

    assert routing_document(scored(lead, source="crm", tier="watch", score=45), NOW) == {
        "lead": {
            "email": "ana@example.com",
            "country": "DE",
            "company": {"size": 1200},
            "utm": {},
            "answers": {},
            "custom": {},
        },
        "score": {"score": 45, "fit": 5, "engagement": 40, "tier": "watch"},
        "source": "crm",
        "time": {"hour": 14, "weekday": 4},
    }


def rules(*specs: tuple[str, list[dict[str, Any]]]) -> list[RoutingRule]:
    """Rules to team `t`, each with its conditions."""
    return [RoutingRule.model_validate({"name": n, "team": "t", "when": w}) for n, w in specs]


ORDERED = rules(
    ("big", [{"field": "lead.company.size", "gte": 1000}]),
    (
        "big-german",
        [{"field": "lead.company.size", "gte": 1000}, {"field": "lead.country", "equals": "DE"}],
    ),
    ("german", [{"field": "lead.country", "equals": "DE"}]),
    ("business-hours", [{"field": "time.hour", "gte": 9}, {"field": "time.hour", "lt": 18}]),
)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"lead": {"company": {"size": 5000}, "country": "DE"}}, "big"),
        ({"lead": {"company": {"size": 10}, "country": "DE"}}, "german"),
        ({"lead": {"country": "de"}, "time": {"hour": 10}}, "german"),
        ({"lead": {"country": "FR"}, "time": {"hour": 10}}, "business-hours"),
        ({"lead": {"country": "FR"}, "time": {"hour": 18}}, None),
        ({}, None),
    ],
)
def test_first_match_takes_rules_in_order(doc: dict[str, Any], expected: str | None) -> None:
    rule = first_match(ORDERED, doc)

    assert (rule.name if rule else None) == expected


def test_rule_without_conditions_matches_everything() -> None:
    catch_all = rules(("never", [{"field": "x", "exists": True}]), ("always", []))

    rule = first_match(catch_all, {})

    assert rule is not None
    assert rule.name == "always"


def test_first_match_of_no_rules() -> None:
    assert first_match([], {"lead": {}}) is None


@pytest.mark.parametrize(
    ("last", "unavailable", "expected", "skipped"),
    [
        pytest.param(None, {}, "a", {}, id="first-turn"),
        pytest.param("a", {}, "b", {}, id="next"),
        pytest.param("b", {}, "c", {}, id="next-again"),
        pytest.param("c", {}, "a", {}, id="wraps"),
        pytest.param("z", {}, "a", {}, id="unknown-last-restarts"),
        pytest.param("a", {"b": "inactive"}, "c", {"b": "inactive"}, id="skips"),
        pytest.param("b", {"c": "inactive"}, "a", {"c": "inactive"}, id="skips-and-wraps"),
        pytest.param(
            "a", {"b": "inactive", "c": "away"}, "a", {"b": "inactive", "c": "away"}, id="back"
        ),
        pytest.param(None, {"a": "inactive"}, "b", {"a": "inactive"}, id="skips-first"),
        pytest.param("b", {"b": "inactive"}, "c", {}, id="last-now-unavailable"),
        pytest.param(
            "c",
            {"a": "x", "b": "y", "c": "z"},
            None,
            {"a": "x", "b": "y", "c": "z"},
            id="nobody",
        ),
    ],
)
def test_next_in_rotation(
    last: str | None, unavailable: dict[str, str], expected: str | None, skipped: dict[str, str]
) -> None:
    rep, passed_over = next_in_rotation(["a", "b", "c"], last, unavailable)

    assert rep == expected
    assert list(passed_over.items()) == list(skipped.items())


def test_next_in_rotation_of_an_empty_team() -> None:
    assert next_in_rotation([], None, {}) == (None, {})


def test_unavailable_reps() -> None:
    config = make_config(inactive=frozenset({"ben"}))

    assert unavailable_reps(config, ["ana", "ben", "chloe"], exclude={"chloe"}) == {
        "ben": "inactive",
        "chloe": "already missed this lead's follow-up",
    }
    assert unavailable_reps(config, ["ana", "dev"]) == {}


def test_named_rep_outside_any_team_is_assigned_within_the_fallback_team() -> None:
    decision = route(CONFIG, scored(Lead(country="AT")), NOW, {})

    assert decision == Decision(
        outcome="assigned",
        rule="dach-to-felix",
        team="smb",
        rep_id="felix",
        candidates=["felix"],
        reason="rule 'dach-to-felix' names Felix Wagner",
    )


def test_named_rep_is_assigned_within_their_team() -> None:
    decision = route(CONFIG, scored(Lead(language="de")), NOW, {"smb": "dev"})

    assert decision == Decision(
        outcome="assigned",
        rule="german-to-dev",
        team="smb",
        rep_id="dev",
        candidates=["dev"],
        reason="rule 'german-to-dev' names Dev Patel",
    )


def test_inactive_named_rep_queues_the_lead() -> None:
    decision = route(
        make_config(inactive=frozenset({"felix"})), scored(Lead(country="CH")), NOW, {}
    )

    assert decision == Decision(
        outcome="queued",
        rule="dach-to-felix",
        team="smb",
        rep_id=None,
        candidates=["felix"],
        skipped={"felix": "inactive"},
        reason="rule 'dach-to-felix' names Felix Wagner, who is inactive",
    )


def test_rule_on_the_source() -> None:
    decision = route(CONFIG, scored(source="partner"), NOW, {})

    assert (decision.rule, decision.rep_id) == ("partners-to-gus", "gus")


def test_earlier_rule_wins() -> None:
    big_german = Lead(country="DE", language="de", company=Company(size=5000))

    decision = route(CONFIG, scored(big_german), NOW, {})

    assert (decision.rule, decision.team, decision.rep_id) == (
        "enterprise-size",
        "enterprise",
        "ana",
    )


@pytest.mark.parametrize(
    ("last", "expected", "name"),
    [
        (None, "ana", "Ana Silva"),
        ("ana", "ben", "Ben Carter"),
        ("ben", "chloe", "Chloé Martin"),
        ("chloe", "ana", "Ana Silva"),
    ],
)
def test_team_rule_uses_round_robin(last: str | None, expected: str, name: str) -> None:
    big = Lead(company=Company(size=1000))

    decision = route(CONFIG, scored(big), NOW, {"enterprise": last, "smb": "dev"})

    assert decision == Decision(
        outcome="assigned",
        rule="enterprise-size",
        team="enterprise",
        rep_id=expected,
        candidates=["ana", "ben", "chloe"],
        reason=f"rule 'enterprise-size' sends it to team 'enterprise'; round robin gives {name} "
        "the next turn",
        by_rotation=True,
    )


def test_round_robin_skips_inactive_reps() -> None:
    config = make_config(inactive=frozenset({"ben"}))

    decision = route(config, scored(Lead(company=Company(size=2000))), NOW, {"enterprise": "ana"})

    assert (decision.outcome, decision.rep_id) == ("assigned", "chloe")
    assert decision.skipped == {"ben": "inactive"}
    assert decision.by_rotation is True


def test_fallback_team_when_no_rule_matches() -> None:
    decision = route(CONFIG, scored(), NOW, {"smb": "dev", "enterprise": "ana"})

    assert decision == Decision(
        outcome="assigned",
        rule=FALLBACK_RULE,
        team="smb",
        rep_id="emma",
        candidates=["dev", "emma"],
        reason="rule 'fallback' sends it to team 'smb'; round robin gives Emma Jones the next turn",
        by_rotation=True,
    )


def test_queued_when_every_rep_of_the_team_is_inactive() -> None:
    config = make_config(inactive=frozenset({"dev", "emma"}))

    decision = route(config, scored(), NOW, {"smb": "emma"})

    assert decision == Decision(
        outcome="queued",
        rule=FALLBACK_RULE,
        team="smb",
        rep_id=None,
        candidates=["dev", "emma"],
        skipped={"dev": "inactive", "emma": "inactive"},
        reason="rule 'fallback' sends it to team 'smb', where nobody can take it now; queued",
    )


def test_rotation_state_of_another_team_is_ignored() -> None:
    decision = route(CONFIG, scored(), NOW, {"enterprise": "dev"})

    assert decision.rep_id == "dev"
