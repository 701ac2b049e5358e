"""Routing decisions: pure functions of the lead, the configuration and the rotation state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from leadflow.conditions import all_match
from leadflow.config import LeadflowConfig, RoutingRule
from leadflow.events import LeadScored

FALLBACK_RULE = "fallback"


@dataclass(frozen=True)
class Decision:
    """Who gets the lead, through which rule, and why every other candidate did not."""

    outcome: Literal["assigned", "queued"]
    rule: str
    team: str
    rep_id: str | None
    candidates: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    by_rotation: bool = False


def routing_document(scored: LeadScored, now: datetime) -> dict[str, Any]:
    """What routing conditions can look at: the lead, its score, its source and the time."""
    return {
        "lead": scored.lead.model_dump(mode="json", exclude_none=True),
        "score": {
            "score": scored.score,
            "fit": scored.fit,
            "engagement": scored.engagement,
            "tier": scored.tier,
        },
        "source": scored.source,
        "time": {"hour": now.hour, "weekday": now.isoweekday()},
    }


def first_match(rules: list[RoutingRule], doc: Mapping[str, Any]) -> RoutingRule | None:
    """The first rule whose conditions all hold."""
    return next((rule for rule in rules if all_match(rule.when, doc)), None)


def next_in_rotation(
    reps: list[str], last: str | None, unavailable: Mapping[str, str]
) -> tuple[str | None, dict[str, str]]:
    """The next available rep after `last` in the team's order, and the reps passed over."""
    start = reps.index(last) + 1 if last in reps else 0
    skipped: dict[str, str] = {}
    for i in range(len(reps)):
        rep = reps[(start + i) % len(reps)]
        if rep in unavailable:
            skipped[rep] = unavailable[rep]
            continue
        return rep, skipped
    return None, skipped


def unavailable_reps(
    config: LeadflowConfig,
    reps: list[str],
    exclude: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, str]:
    """Reps who cannot take a lead now, with the reason."""
    result: dict[str, str] = {}
    for rep_id in reps:
        if rep_id in exclude:
            result[rep_id] = "already missed this lead's follow-up"
        elif not config.rep(rep_id).active:
            result[rep_id] = "inactive"
    return result


def route(
    config: LeadflowConfig,
    scored: LeadScored,
    now: datetime,
    last_by_team: Mapping[str, str | None],
) -> Decision:
    """Pick the rule, then the rep: a named rep, or the team's next rep in rotation."""
    doc = routing_document(scored, now)
    rule = first_match(config.routing.rules, doc)
    if rule is not None and rule.rep is not None:
        rep = config.rep(rule.rep)
        team = config.team_of(rep.id)
        team_name = team.name if team else config.routing.fallback_team
        if rep.active:
            return Decision(
                "assigned",
                rule.name,
                team_name,
                rep.id,
                [rep.id],
                reason=f"rule {rule.name!r} names {rep.name}",
            )
        return Decision(
            "queued",
            rule.name,
            team_name,
            None,
            [rep.id],
            {rep.id: "inactive"},
            reason=f"rule {rule.name!r} names {rep.name}, who is inactive",
        )
    rule_name = rule.name if rule is not None else FALLBACK_RULE
    team = config.team(
        rule.team if rule is not None and rule.team else config.routing.fallback_team
    )
    unavailable = unavailable_reps(config, team.reps)
    rep_id, skipped = next_in_rotation(team.reps, last_by_team.get(team.name), unavailable)
    how = f"rule {rule_name!r} sends it to team {team.name!r}"
    if rep_id is None:
        return Decision(
            "queued",
            rule_name,
            team.name,
            None,
            list(team.reps),
            skipped,
            reason=f"{how}, where nobody can take it now; queued",
        )
    return Decision(
        "assigned",
        rule_name,
        team.name,
        rep_id,
        list(team.reps),
        skipped,
        reason=f"{how}; round robin gives {config.rep(rep_id).name} the next turn",
        by_rotation=True,
    )
