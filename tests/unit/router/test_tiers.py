"""Routing every tier the configuration names: a watch list, upgrades, priority accounts.

Run on the in-memory store (the router's own use case); `tests/integration/test_router_tiers.py`
runs the same on the database.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from leadflow.config import tier_rank
from leadflow.coroutines import complete
from leadflow.events import Company, Envelope, Lead, LeadAssigned, SlaAlert, Tier, new_event
from leadflow_router.replay import Replay
from tests.fixtures.routing import NOW, make_config, scored

BIG = Company(size=5000)  # enterprise by size: ana, ben, chloe by round robin
WATCH_RULE: dict[str, Any] = {
    "name": "watch-to-smb",
    "team": "smb",
    "when": [{"field": "score.tier", "equals": "watch"}],
}
SIZE_RULE: dict[str, Any] = {
    "name": "enterprise-size",
    "team": "enterprise",
    "when": [{"field": "lead.company.size", "gte": 1000}],
}
ACCOUNTS = [
    {"name": "Globex", "domains": ["globex.com"], "owner": "felix", "priority": True},
    {"name": "Initech", "domains": ["initech.com"], "owner": "gus"},
]


def config(**routing: Any) -> Any:
    return make_config(
        rules=[WATCH_RULE, SIZE_RULE],
        routing={"tiers": ["mql", "watch"], **routing},
        accounts=ACCOUNTS,
    )


def score(
    key: str,
    tier: Tier,
    minutes: float = 0,
    *,
    newly: bool | None = None,
    email: str | None = None,
) -> Envelope:
    at = NOW + timedelta(minutes=minutes)
    data = scored(Lead(company=BIG, email=email), lead_key=key, tier=tier, at=at)
    if newly is not None:
        data = data.model_copy(update={"newly_qualified": newly})
    return new_event("lead.scored", data, source="/test", time=at, event_id=f"{key}-{minutes}")


def rows(replay: Replay) -> list[tuple[str, int, str | None, str, str | None]]:
    """Every assignment as (lead key, seq, rep, team, close reason)."""
    return [(r.lead_key, r.seq, r.rep_id, r.team, r.close_reason) for r in replay.store.assignments]


def routed_tier(replay: Replay, key: str) -> str:
    return complete(replay.store.routed_leads([key]))[key].tier


def run(replay: Replay, *events: Envelope) -> None:
    for event in events:
        replay.apply([event], event.time)


def test_tiers_rank_mql_above_watch_above_nurture() -> None:
    assert tier_rank("mql") > tier_rank("watch") > tier_rank("nurture") > tier_rank("disqualified")
    assert tier_rank("unheard-of") < tier_rank("disqualified")


def test_a_watch_lead_is_routed_once_and_an_upgrade_routes_it_again() -> None:
    replay = Replay(config())
    run(replay, score("w", "watch"), score("w", "watch", 1), score("w", "nurture", 2))
    assert rows(replay) == [("w", 1, "dev", "smb", None)]

    run(replay, score("w", "mql", 3))

    assert rows(replay) == [
        ("w", 1, "dev", "smb", "upgraded"),
        ("w", 2, "ana", "enterprise", None),
    ]
    assert replay.store.assignments[0].closed_at == NOW + timedelta(minutes=3)
    upgrade = replay.store.events[-1]
    assert upgrade.type == "lead.assigned"
    assert isinstance(upgrade.data, LeadAssigned)
    assert (upgrade.data.tier, upgrade.data.rule) == ("mql", "enterprise-size")
    # Consumers end the watch rep's follow-up and start the MQL rep's, as on a reassignment.
    assert upgrade.data.previous_rep_ids == ["dev"]
    decided = replay.store.decided[-1]
    assert decided.decision.trace[0] == "upgraded from tier watch to mql: routed again"
    assert routed_tier(replay, "w") == "mql"

    # Re-scores within or below the tier routed last change nothing.
    run(replay, score("w", "mql", 4, newly=True), score("w", "watch", 5))
    assert len(rows(replay)) == 2


def test_an_upgrade_in_the_same_batch_as_the_first_routing_replaces_it() -> None:
    replay = Replay(config())
    replay.apply([score("w", "watch"), score("w", "mql", 1)], NOW + timedelta(minutes=1))

    assert rows(replay) == [
        ("w", 1, "dev", "smb", "upgraded"),
        ("w", 2, "ana", "enterprise", None),
    ]
    assert routed_tier(replay, "w") == "mql"


def test_an_upgrade_closes_a_queued_watch_entry() -> None:
    replay = Replay(
        make_config(
            reps={"dev": {"max_open": 0}, "emma": {"max_open": 0}},
            rules=[WATCH_RULE, SIZE_RULE],
            routing={"tiers": ["mql", "watch"]},
        )
    )
    run(replay, score("w", "watch"))
    assert rows(replay) == [("w", 1, None, "smb", None)]

    run(replay, score("w", "mql", 1))

    assert rows(replay) == [
        ("w", 1, None, "smb", "upgraded"),
        ("w", 2, "ana", "enterprise", None),
    ]
    event = replay.store.events[-1]
    assert isinstance(event.data, LeadAssigned)
    assert event.data.previous_rep_ids == []


def test_an_mql_is_not_routed_again_when_it_falls_to_watch() -> None:
    replay = Replay(config())
    run(replay, score("m", "mql"), score("m", "watch", 1), score("m", "mql", 2, newly=False))

    assert rows(replay) == [("m", 1, "ana", "enterprise", None)]


def test_an_escalation_after_an_upgrade_decides_by_the_mql_lead() -> None:
    replay = Replay(config())
    run(replay, score("w", "watch"), score("w", "mql", 1))
    upgraded = replay.store.assignments[1]
    alert = SlaAlert(
        lead_key="w",
        assignment_id=upgraded.assignment_id,
        stage="escalated",
        policy="hot",
        rep_id="ana",
        rep_name="Ana Silva",
        team="enterprise",
        manager_email="grace@example.com",
        assigned_at=upgraded.assigned_at,
        due_at=upgraded.assigned_at + timedelta(minutes=5),
        fired_at=NOW + timedelta(minutes=8),
        late_by_s=180,
        message="escalated",
    )
    at = NOW + timedelta(minutes=8)
    run(replay, new_event("sla.escalated", alert, source="/test", time=at, event_id="esc"))

    # The MQL rules again (enterprise), not the watch list's team; dev and ana excluded.
    assert rows(replay)[2] == ("w", 3, "ben", "enterprise", None)


def test_watch_leads_are_not_routed_unless_the_tier_is() -> None:
    replay = Replay(make_config(rules=[WATCH_RULE, SIZE_RULE]))
    run(replay, score("w", "watch"), score("w", "mql", 1))

    assert rows(replay) == [("w", 1, "ana", "enterprise", None)]
    assert replay.store.decided[0].decision.trace[0].startswith("rule 'enterprise-size'")


@pytest.mark.parametrize(
    ("email", "tier", "expected"),
    [
        # A priority account's lead is routed at the tiers named for them, to its owner.
        ("a@globex.com", "nurture", [("p", 1, "felix", "smb", None)]),
        ("a@globex.com", "disqualified", []),
        # A named account that is not a priority one, or no account, waits for the bar.
        ("a@initech.com", "nurture", []),
        ("a@example.com", "nurture", []),
    ],
)
def test_priority_accounts_are_routed_at_their_own_tiers(
    email: str, tier: Tier, expected: list[Any]
) -> None:
    replay = Replay(config(priority_account_tiers=["nurture"]))
    run(replay, score("p", tier, email=email))

    assert rows(replay) == expected


def test_a_priority_account_lead_routed_below_the_bar_is_routed_again_as_an_mql() -> None:
    replay = Replay(config(tiers=["mql"], priority_account_tiers=["watch", "nurture"]))
    email = "a@globex.com"
    run(
        replay,
        score("p", "nurture", email=email),
        score("p", "watch", 1, email=email),
        score("p", "watch", 2, email=email),
        score("p", "mql", 3, email=email),
    )

    assert [(seq, rep, why) for _, seq, rep, _, why in rows(replay)] == [
        (1, "felix", "upgraded"),
        (2, "felix", "upgraded"),
        (3, "felix", None),
    ]


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        (
            {"tiers": ["mql", "hot"]},
            "routing.tiers names tiers that do not exist: 'hot'; "
            "use mql, watch, nurture, disqualified.",
        ),
        (
            {"priority_account_tiers": ["warm"]},
            "routing.priority_account_tiers names tiers that do not exist: 'warm'",
        ),
        ({"tiers": []}, "List should have at least 1 item"),
    ],
)
def test_routing_refuses_tiers_that_do_not_exist(routing: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace(".", r"\.").replace("(", r"\(")):
        make_config(routing=routing)


def test_sla_policies_refuse_tiers_that_do_not_exist() -> None:
    with pytest.raises(ValidationError, match="tiers names tiers that do not exist: 'MQL'"):
        make_config(sla={"policies": [{"name": "hot", "window": "5m", "tiers": ["MQL"]}]})
