"""Routing pools: what one decision may read and change, and the locks that cover it (pure).

A round-robin turn belongs to a team and a cap to a rep, so two decisions can conflict
only through a team or a rep they both may touch. Teams that share a rep form one pool
(the rep's caps and loads are the same in every team they sit in); a rep in no team is a
pool of their own. Routers lock the pools a batch's decisions may touch, in one sorted
order, so decisions about different pools run at once and decisions about one pool take
turns: no turn is given twice and no cap is passed, across any number of routers.

What a decision may touch follows the walk in `domain.route`: the account owner (when the
lead matches an account), then each matching rule in order up to the first one that always
places the lead (`when_unavailable: queue`), and the fallback team only when no such rule
matched. A lead sent to enterprise by a rule that queues there never locks the fallback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from leadflow.config import LeadflowConfig
from leadflow.events import LeadScored
from leadflow_router.rules import match_account, matching_rules, routing_document


@dataclass(frozen=True, slots=True)
class Reach:
    """The reps a decision may read, the teams whose distribution it may use, their pools."""

    reps: frozenset[str]
    teams: frozenset[str]
    pools: frozenset[str]


class Pools:
    """Which pool each team and rep of a configuration belongs to."""

    def __init__(self, config: LeadflowConfig) -> None:
        parent = {team.name: team.name for team in config.teams}

        def root(name: str) -> str:
            while parent[name] != name:
                parent[name] = parent[parent[name]]
                name = parent[name]
            return name

        first_team: dict[str, str] = {}
        for team in config.teams:
            for rep in team.reps:
                if rep in first_team:
                    a, b = root(first_team[rep]), root(team.name)
                    parent[max(a, b)] = min(a, b)
                else:
                    first_team[rep] = team.name
        self._teams = {name: f"team:{root(name)}" for name in parent}
        self._reps = {rep: self._teams[team] for rep, team in first_team.items()}

    def of_team(self, name: str) -> str:
        """The pool of a team (named after the first team of it, by name)."""
        return self._teams[name]

    def of_rep(self, rep_id: str) -> str:
        """The pool of a rep: their teams', or their own when they sit in no team."""
        return self._reps.get(rep_id, f"rep:{rep_id}")


# Configurations are read many times each; compute their pools once (keyed by the object).
_POOLS: dict[int, tuple[LeadflowConfig, Pools]] = {}


def pools_of(config: LeadflowConfig) -> Pools:
    """The pools of `config` (computed once per configuration object)."""
    cached = _POOLS.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    pools = Pools(config)
    _POOLS[id(config)] = (config, pools)
    return pools


def reach(config: LeadflowConfig, scored: LeadScored, now: datetime) -> Reach:
    """Every rep and team the decision for this lead at `now` may read or change."""
    reps: set[str] = set()
    teams: set[str] = set()
    matched = match_account(config.accounts, scored.lead)
    if matched is not None:
        reps.add(matched[0].owner)
    doc = routing_document(scored, now, config.routing.timezone)
    placed = False
    for rule in matching_rules(config.routing.rules, doc, now):
        if rule.rep is not None:
            reps.add(rule.rep)
        elif rule.team is not None:
            teams.add(rule.team)
        if rule.when_unavailable != "next_rule":
            placed = True  # this rule assigns or queues: the walk ends here
            break
    if not placed:
        teams.add(config.routing.fallback_team)
    for name in teams:
        reps.update(config.team(name).reps)
    pools = pools_of(config)
    return Reach(
        frozenset(reps),
        frozenset(teams),
        frozenset({pools.of_rep(r) for r in reps} | {pools.of_team(t) for t in teams}),
    )


def union(reaches: Iterable[Reach]) -> Reach:
    """What a batch of decisions may touch together."""
    reps: set[str] = set()
    teams: set[str] = set()
    pools: set[str] = set()
    for one in reaches:
        reps |= one.reps
        teams |= one.teams
        pools |= one.pools
    return Reach(frozenset(reps), frozenset(teams), frozenset(pools))


def lock_key(pool: str) -> int:
    """The 64-bit advisory lock key of a pool (the same in every router process)."""
    digest = hashlib.blake2b(f"leadflow-router:{pool}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
