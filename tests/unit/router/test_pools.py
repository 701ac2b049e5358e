"""Routing pools: which teams and reps a decision may touch, and the locks that cover them."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.config import LeadflowConfig
from leadflow.events import Company, Lead
from leadflow_router.availability import RepLoad
from leadflow_router.domain import RoutingState, route
from leadflow_router.pools import Pools, lock_key, reach, union
from tests.fixtures.routing import NOW, REPS, make_config, scored

ACCOUNTS = [{"name": "Acme", "domains": ["acme.com"], "owner": "felix", "priority": True}]


def test_teams_that_share_a_rep_are_one_pool_and_a_rep_in_no_team_is_their_own() -> None:
    config = make_config(teams={"smb": {"reps": ["dev", "emma", "chloe"]}})
    alone = make_config()

    assert Pools(config).of_team("smb") == Pools(config).of_team("enterprise") == "team:enterprise"
    assert Pools(config).of_rep("dev") == "team:enterprise"
    assert Pools(alone).of_team("smb") == "team:smb"
    assert Pools(alone).of_rep("ana") == "team:enterprise"
    assert Pools(alone).of_rep("felix") == "rep:felix"


def test_a_rule_that_queues_where_it_points_never_reaches_the_fallback() -> None:
    where = reach(make_config(), scored(Lead(company=Company(size=5000))), NOW)

    assert where.teams == {"enterprise"}
    assert where.reps == {"ana", "ben", "chloe"}
    assert where.pools == {"team:enterprise"}


def test_a_lead_no_rule_takes_reaches_the_fallback_team_only() -> None:
    where = reach(make_config(), scored(Lead(company=Company(size=10))), NOW)

    assert where.teams == {"smb"}
    assert where.pools == {"team:smb"}


def test_overflowing_rules_and_the_account_owner_are_all_reached() -> None:
    config = make_config(
        accounts=ACCOUNTS,
        rules=[
            {
                "name": "dach-to-felix",
                "rep": "felix",
                "when": [{"field": "lead.country", "equals": "DE"}],
                "when_unavailable": "next_rule",
            },
            {
                "name": "big",
                "team": "enterprise",
                "when": [{"field": "lead.company.size", "gte": 1000}],
                "when_unavailable": "next_rule",
            },
        ],
    )
    lead = Lead(email="cto@acme.com", country="DE", company=Company(size=5000))

    where = reach(config, scored(lead), NOW)

    assert where.teams == {"enterprise", "smb"}
    assert where.reps == {"felix", "ana", "ben", "chloe", "dev", "emma"}
    assert where.pools == {"rep:felix", "team:enterprise", "team:smb"}


def test_lock_keys_are_stable_signed_64_bit_numbers() -> None:
    keys = {lock_key(p) for p in ("team:enterprise", "team:smb", "rep:felix")}

    assert len(keys) == 3
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert lock_key("team:smb") == lock_key("team:smb")
    assert union([]).pools == frozenset()


RULES: list[dict[str, Any]] = [
    {"name": "big", "team": "enterprise", "when": [{"field": "lead.company.size", "gte": 1000}]},
    {"name": "dach", "rep": "felix", "when": [{"field": "lead.country", "equals": "DE"}]},
    {"name": "german", "rep": "dev", "when": [{"field": "lead.language", "equals": "de"}]},
    {"name": "partners", "rep": "gus", "when": [{"field": "source", "equals": "partner"}]},
    {"name": "small", "team": "smb", "when": [{"field": "lead.company.size", "lt": 50}]},
]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[LeadflowConfig, Lead, str, dict[str, RepLoad]]:
    """A configuration (rule order, overflow, caps, shared reps), a lead and the reps' loads."""
    rules = [
        rule | {"when_unavailable": draw(st.sampled_from(["queue", "next_rule"]))}
        for rule in draw(st.permutations(RULES))[: draw(st.integers(0, len(RULES)))]
    ]
    reps = {
        rep: {"max_open": 1, "active": draw(st.booleans())} for rep in REPS if draw(st.booleans())
    }
    smb = ["dev", "emma", "ben"] if draw(st.booleans()) else ["dev", "emma"]
    config = make_config(
        reps=reps,
        teams={
            "smb": {
                "reps": smb,
                "distribution": draw(st.sampled_from(["round_robin", "least_loaded"])),
            }
        },
        rules=rules,
        accounts=ACCOUNTS if draw(st.booleans()) else [],
    )
    lead = Lead(
        email=draw(st.sampled_from([None, "cto@acme.com", "a@b.example"])),
        country=draw(st.sampled_from([None, "DE", "PT"])),
        language=draw(st.sampled_from([None, "de", "en"])),
        company=Company(size=draw(st.sampled_from([10, 100, 5000]))),
    )
    loads = {rep: RepLoad(open=draw(st.integers(0, 1))) for rep in REPS}
    return config, lead, draw(st.sampled_from(["web", "partner"])), loads


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_a_decision_reads_and_changes_only_what_its_reach_holds(
    world: tuple[LeadflowConfig, Lead, str, dict[str, RepLoad]],
) -> None:
    config, lead, source, loads = world
    lead_scored = scored(lead, source=source)
    where = reach(config, lead_scored, NOW)
    everyone = RoutingState({r.id: r for r in config.reps}, loads)
    only_reach = RoutingState(
        {r: everyone.reps[r] for r in where.reps}, {r: loads[r] for r in where.reps}
    )

    decision = route(config, lead_scored, NOW, only_reach)

    assert decision == route(config, lead_scored, NOW, everyone)
    if decision.rep_id is not None:
        assert decision.rep_id in where.reps
    if decision.by_rotation:
        assert decision.team in where.teams
    assert where.pools == union([where]).pools
