"""Routing decisions: account owner, then ordered rules, then a team's distribution (pure).

A decision is a function of the scored lead, the configuration (with run-time overrides
applied), the reps' loads and rotation state, and `now`; it records why every rep that was
considered and not chosen was skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from leadflow.config import LeadflowConfig, Rep, RoutingRule, Team
from leadflow.events import LeadScored
from leadflow.schedules import normalize_domain
from leadflow_router.availability import Occasion, RepLoad, cannot_take, skip_kind
from leadflow_router.distribution import pick
from leadflow_router.rules import (
    company_domain,
    match_account,
    matching_rules,
    reads_time,
    routing_document,
)

FALLBACK_RULE = "fallback"
ACCOUNT_RULE = "account-owner"
DISTRIBUTIONS = ("round_robin", "weighted", "least_loaded")

Method = Literal[
    "account_owner",
    "named_rep",
    "sticky",
    "round_robin",
    "weighted",
    "least_loaded",
    "queue",
    "pool",
    "claim",
]
# What a decision did with the lead: gave it to a rep, queued it for a team nobody in can
# take it now, or left it in a team's pool for its reps to claim.
Outcome = Literal["assigned", "queued", "pooled"]
# What sticky ownership overrides: the rep who works a company keeps its leads above caps.
STICKY_OVERRIDES = frozenset({"daily_cap", "open_cap"})


@dataclass(frozen=True, slots=True)
class Decision:
    """Who gets the lead, through which rule, and why every other candidate did not."""

    outcome: Outcome
    rule: str
    team: str
    rep_id: str | None
    candidates: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    method: Method = "queue"
    account: str | None = None
    priority_account: bool = False
    trace: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def by_rotation(self) -> bool:
        """Whether a team distribution chose the rep (so the team's turn moves on)."""
        return self.method in DISTRIBUTIONS


@dataclass(frozen=True, slots=True)
class RoutingState:
    """What a decision reads besides the lead and the configuration."""

    reps: Mapping[str, Rep]
    loads: Mapping[str, RepLoad] = field(default_factory=dict)
    last_turn: Mapping[str, str | None] = field(default_factory=dict)
    recent: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    conversions: Mapping[str, Mapping[str, tuple[int, int]]] = field(default_factory=dict)
    excluded: frozenset[str] = frozenset()
    # Per company domain, the reps holding an open lead of it, the earliest first.
    owners: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def rep(self, rep_id: str) -> Rep:
        """The rep as it stands now (configuration plus run-time overrides)."""
        return self.reps[rep_id]


@dataclass(frozen=True)
class InPlay:
    """The reps and teams a lead may reach: what the service must load before deciding."""

    reps: set[str]
    teams: set[str]


def in_play(config: LeadflowConfig, scored: LeadScored, now: datetime) -> InPlay:
    """Every rep and team the decision for this lead can look at."""
    doc = _document(config, scored, now)
    reps: set[str] = set()
    teams: set[str] = {config.routing.fallback_team}
    matched = match_account(config.accounts, scored.lead)
    if matched is not None:
        reps.add(matched[0].owner)
    roster = _roster(config)
    for rule in matching_rules(config.routing.rules, doc, now):
        if rule.rep is not None:
            reps.add(rule.rep)
            team = roster.team_of.get(rule.rep)
            if team is not None:
                teams.add(team.name)
        elif rule.team is not None:
            teams.add(rule.team)
    for name in teams:
        reps.update(roster.teams[name].reps)
    return InPlay(reps, teams)


@dataclass(frozen=True, slots=True)
class _Roster:
    """A configuration's teams by name, and each rep's first team (`team`, `team_of`)."""

    config: LeadflowConfig
    teams: dict[str, Team]
    team_of: dict[str, Team]
    personal: frozenset[str] = frozenset()


_ROSTERS: dict[int, _Roster] = {}


def _roster(config: LeadflowConfig) -> _Roster:
    cached = _ROSTERS.get(id(config))
    if cached is not None and cached.config is config:
        return cached
    team_of: dict[str, Team] = {}
    for team in config.teams:
        for rep_id in team.reps:
            team_of.setdefault(rep_id, team)
    personal = frozenset(normalize_domain(d) for d in config.scoring.domains.personal)
    roster = _Roster(config, {team.name: team for team in config.teams}, team_of, personal)
    if len(_ROSTERS) > 64:
        _ROSTERS.clear()
    # The entry keeps the configuration alive, so its id cannot be reused while cached.
    _ROSTERS[id(config)] = roster
    return roster


def sticky_domain(config: LeadflowConfig, scored: LeadScored) -> str | None:
    """The company domain sticky ownership keeps this lead's company by (`rules.company_domain`,
    the configuration's free-mail domains excluded)."""
    return company_domain(scored.lead, _roster(config).personal)


def sticky(config: LeadflowConfig) -> bool:
    """Whether any routing rule keeps a company's leads with its rep."""
    return any(rule.sticky for rule in config.routing.rules)


_NO_LOAD = RepLoad()


def _document(config: LeadflowConfig, scored: LeadScored, now: datetime) -> dict[str, Any]:
    rules = config.routing.rules
    return routing_document(scored, now, config.routing.timezone, with_time=reads_time(rules))


class _Walk:
    """One decision being built: the steps taken and the reps skipped so far."""

    def __init__(
        self, config: LeadflowConfig, scored: LeadScored, now: datetime, state: RoutingState
    ) -> None:
        self.config = config
        self.roster = _roster(config)
        self.scored = scored
        self.now = now
        self.occasion = Occasion(now, scored.lead)
        self.state = state
        self.skipped: dict[str, str] = {}
        self.trace: list[str] = []
        self.account: str | None = None
        self.priority = False
        self.into_pool = True

    def why_not(self, rep: Rep, skills: Sequence[str] = ()) -> str | None:
        reason = cannot_take(
            rep,
            self.now,
            self.state.loads.get(rep.id, _NO_LOAD),
            lead=self.scored.lead,
            skills=skills,
            excluded=self.state.excluded,
            occasion=self.occasion,
        )
        if reason is not None:
            self.skipped[rep.id] = reason
        return reason

    def decision(self, outcome: Outcome, **kwargs: Any) -> Decision:
        return Decision(
            outcome,
            skipped=dict(self.skipped),
            account=self.account,
            priority_account=self.priority,
            trace=list(self.trace),
            **kwargs,
        )

    def queue_team_of(self, rep_id: str) -> str:
        team = self.roster.team_of.get(rep_id)
        return team.name if team is not None else self.config.routing.fallback_team

    def account_owner(self) -> Decision | None:
        matched = match_account(self.config.accounts, self.scored.lead)
        if matched is None:
            return None
        account, domain = matched
        self.account, self.priority = account.name, account.priority
        owner = self.state.rep(account.owner)
        kind = "priority account" if account.priority else "named account"
        reason = self.why_not(owner)
        if reason is not None:
            self.trace.append(
                f"{kind} {account.name} (domain {domain}) is owned by {owner.name}, "
                f"who cannot take it: {reason}; trying the rules"
            )
            return None
        self.trace.append(f"{kind} {account.name} matched on domain {domain}")
        return self.decision(
            "assigned",
            rule=ACCOUNT_RULE,
            team=self.queue_team_of(owner.id),
            rep_id=owner.id,
            candidates=[owner.id],
            reason=f"{kind} {account.name} (domain {domain}) is owned by {owner.name}",
            method="account_owner",
        )

    def named_rep(self, rule: RoutingRule, rep_id: str) -> Decision | None:
        rep = self.state.rep(rep_id)
        reason = self.why_not(rep)
        team = self.queue_team_of(rep.id)
        if reason is None:
            self.trace.append(f"rule {rule.name!r} matched and names {rep.name}")
            return self.decision(
                "assigned",
                rule=rule.name,
                team=team,
                rep_id=rep.id,
                candidates=[rep.id],
                reason=f"rule {rule.name!r} names {rep.name}",
                method="named_rep",
            )
        self.trace.append(f"rule {rule.name!r} matched and names {rep.name}: {reason}")
        if rule.when_unavailable == "next_rule":
            return None
        return self.decision(
            "queued",
            rule=rule.name,
            team=team,
            rep_id=None,
            candidates=[rep.id],
            reason=f"rule {rule.name!r} names {rep.name}, who cannot take it ({reason}); "
            f"queued for team {team!r}",
        )

    def sticky(self, rule: RoutingRule, team: Team) -> tuple[Decision | None, str]:
        """The rep who works the lead's company keeps it (rule `sticky`): the owner of its
        account, then the reps holding an open lead of its domain, the earliest first, each
        when in the rule's team and able to take it but for caps. Returns the decision, or
        None and why nobody kept it (for the distribution's reason)."""
        domain = sticky_domain(self.config, self.scored)
        matched = match_account(self.config.accounts, self.scored.lead)
        owners: list[tuple[str, str]] = []
        if matched is not None:
            owners.append((matched[0].owner, f"owner of account {matched[0].name}"))
        if domain is not None:
            owners.extend((r, f"owner of {domain}") for r in self.state.owners.get(domain, ()))
        seen: set[str] = set()
        refused: list[str] = []
        for rep_id, why in owners:
            if rep_id in seen or rep_id not in team.reps:
                continue
            seen.add(rep_id)
            rep = self.state.rep(rep_id)
            reason = cannot_take(
                rep,
                self.now,
                self.state.loads.get(rep_id, _NO_LOAD),
                lead=self.scored.lead,
                skills=team.skills,
                excluded=self.state.excluded,
                occasion=self.occasion,
            )
            if reason is not None and skip_kind(reason) not in STICKY_OVERRIDES:
                self.skipped[rep_id] = reason
                refused.append(f"{rep.name} ({why}) cannot take it: {reason}")
                continue
            above = f" (above the cap: {reason})" if reason is not None else ""
            self.trace.append(f"rule {rule.name!r} is sticky: {rep.name} is the {why}{above}")
            return self.decision(
                "assigned",
                rule=rule.name,
                team=team.name,
                rep_id=rep_id,
                candidates=[rep_id],
                reason=f"sticky: {why} is {rep.name}{above}",
                method="sticky",
                details={"domain": domain} if domain is not None else {},
            ), ""
        if refused:
            note = "sticky: " + "; ".join(refused)
        elif domain is None:
            note = "sticky: no company domain (none given, or a free-mail one)"
        else:
            note = f"sticky: nobody in team {team.name!r} works {domain} yet"
        self.trace.append(f"rule {rule.name!r}: {note}")
        return None, note

    def team(
        self, rule_name: str, team: Team, *, overflow: bool, note: str = ""
    ) -> Decision | None:
        how = (
            f"no rule matched; the fallback sends it to team {team.name!r}"
            if rule_name == FALLBACK_RULE
            else f"rule {rule_name!r} sends it to team {team.name!r}"
        )
        first = f"{note}; " if note else ""
        if team.pool is not None and self.into_pool:
            self.trace.append(f"{how}, a pool: it waits there for one of its reps to claim it")
            return self.decision(
                "pooled",
                rule=rule_name,
                team=team.name,
                rep_id=None,
                candidates=list(team.reps),
                reason=f"{first}{how}; it waits in the team's pool for a rep to claim it",
                method="pool",
            )
        available = [r for r in team.reps if self.why_not(self.state.rep(r), team.skills) is None]
        if available:
            chosen = pick(
                team,
                available,
                reps=self.state.reps,
                last=self.state.last_turn.get(team.name),
                open_leads={r: self.state.loads.get(r, _NO_LOAD).open for r in team.reps},
                recent=self.state.recent.get(team.name, {}),
                conversions=self.state.conversions.get(team.name, {}),
            )
            name = self.state.rep(chosen.rep_id).name
            self.trace.append(f"{how}; {len(available)} of {len(team.reps)} reps can take it")
            return self.decision(
                "assigned",
                rule=rule_name,
                team=team.name,
                rep_id=chosen.rep_id,
                candidates=list(team.reps),
                reason=f"{first}{how}; {chosen.how.format(rep=name)}",
                method=team.distribution,
                details=chosen.details,
            )
        self.trace.append(f"{how}, where nobody can take it now")
        if overflow:
            return None
        return self.decision(
            "queued",
            rule=rule_name,
            team=team.name,
            rep_id=None,
            candidates=list(team.reps),
            reason=f"{first}{how}, where nobody can take it now; queued for the team",
        )


def route(
    config: LeadflowConfig,
    scored: LeadScored,
    now: datetime,
    state: RoutingState,
    *,
    into_pool: bool = True,
) -> Decision:
    """Account owner first, then the first matching rule that can place the lead, then the
    fallback team; a lead nobody can take is queued, never dropped. A team that is a pool
    keeps the lead for its reps to claim (`into_pool`; escalations and queue retries, which
    must give the lead to someone, pass False and use the team's distribution)."""
    walk = _Walk(config, scored, now, state)
    walk.into_pool = into_pool
    decision = walk.account_owner()
    if decision is not None:
        return decision
    doc = _document(config, scored, now)
    for rule in matching_rules(config.routing.rules, doc, now):
        overflow = rule.when_unavailable == "next_rule"
        if rule.rep is not None:
            decision = walk.named_rep(rule, rule.rep)
        else:
            assert rule.team is not None
            team = walk.roster.teams[rule.team]
            note = ""
            if rule.sticky:
                decision, note = walk.sticky(rule, team)
                if decision is not None:
                    return decision
            decision = walk.team(rule.name, team, overflow=overflow, note=note)
        if decision is not None:
            return decision
    fallback_team = walk.roster.teams[config.routing.fallback_team]
    fallback = walk.team(FALLBACK_RULE, fallback_team, overflow=False)
    assert fallback is not None
    return fallback


def distribute(
    config: LeadflowConfig,
    scored: LeadScored,
    now: datetime,
    state: RoutingState,
    *,
    team: str,
    rule: str,
    note: str,
) -> Decision:
    """Give a lead through `team`'s distribution, as `rule` sent it there (a pool's lead
    nobody claimed in time): a rep of the team who can take it now, else the team's queue.
    `note` opens the reason (why the distribution decides)."""
    walk = _Walk(config, scored, now, state)
    walk.into_pool = False
    walk.trace.append(note)
    decision = walk.team(rule, walk.roster.teams[team], overflow=False, note=note)
    assert decision is not None
    return decision
