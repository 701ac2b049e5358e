"""Which rule takes a lead: the routing document, first-match rules and account matching (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from leadflow.conditions import Condition, conjunction, lookup_path
from leadflow.config import Account, RoutingRule
from leadflow.events import Lead, LeadScored
from leadflow.schedules import WEEKDAYS, normalize_domain


def routing_document(
    scored: LeadScored, now: datetime, zone: str = "UTC", *, with_time: bool = True
) -> dict[str, Any]:
    """What routing conditions can look at: the lead, its score, its source and the time.

    `time.*` is the decision's moment in `zone` (the routing configuration's time zone); it
    is left out with `with_time=False`, for rules that do not read it (see `reads_time`).
    """
    doc: dict[str, Any] = {
        "lead": scored.lead.model_dump(mode="json", exclude_none=True),
        "score": {
            "score": scored.score,
            "fit": scored.fit,
            "engagement": scored.engagement,
            "tier": scored.tier,
        },
        "source": scored.source,
    }
    if with_time:
        local = now.astimezone(ZoneInfo(zone))
        doc["time"] = {
            "hour": local.hour,
            "minute": local.minute,
            "hhmm": f"{local.hour:02d}:{local.minute:02d}",
            "weekday": local.isoweekday(),
            "day": WEEKDAYS[local.weekday()],
            "date": local.date().isoformat(),
        }
    return doc


def reads_time(rules: Sequence[RoutingRule]) -> bool:
    """Whether any of the rules' conditions reads `time.*` of the routing document."""
    return _table(rules).reads_time


def rule_matches(rule: RoutingRule, doc: Mapping[str, Any], now: datetime) -> bool:
    """Whether every condition of the rule holds, and its time windows allow `now`."""
    return _compiled(rule).matches(doc, now)


def matching_rules(
    rules: Sequence[RoutingRule], doc: Mapping[str, Any], now: datetime
) -> Iterator[RoutingRule]:
    """The rules that match, in configuration order, evaluated lazily (the first one wins)."""
    return (c.rule for c in _table(rules).candidates(doc) if c.matches(doc, now))


def first_match(
    rules: Sequence[RoutingRule], doc: Mapping[str, Any], now: datetime
) -> RoutingRule | None:
    """The first rule that matches."""
    return next(matching_rules(rules, doc, now), None)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A routing rule with its conditions compiled into one test."""

    rule: RoutingRule
    test: Callable[[Mapping[str, Any]], bool]

    def matches(self, doc: Mapping[str, Any], now: datetime) -> bool:
        rule = self.rule
        if rule.during and not any(window.contains(now) for window in rule.during):
            return False
        if rule.outside and any(window.contains(now) for window in rule.outside):
            return False
        return self.test(doc)


def _compiled(rule: RoutingRule) -> _Compiled:
    return _Compiled(rule, conjunction(rule.when))


@dataclass(frozen=True, slots=True)
class _Table:
    """Rules compiled, and indexed by the text one field must equal (or be among) to match.

    Rules typically start with `lead.country equals DE` or `source in [...]`: a lead only
    needs to be tested against the rules its value of that field allows, in their order.
    """

    rules: Sequence[RoutingRule]
    compiled: tuple[_Compiled, ...]
    reads_time: bool
    gate: tuple[str, ...] | None = None
    by_value: dict[str, tuple[_Compiled, ...]] = field(default_factory=dict)
    # The rules that do not name a value of the field.
    open: tuple[_Compiled, ...] = ()

    def candidates(self, doc: Mapping[str, Any]) -> tuple[_Compiled, ...]:
        """The rules that can match `doc`, in order (each still tested in full)."""
        if self.gate is None:
            return self.compiled
        value = lookup_path(doc, self.gate)
        if isinstance(value, str):
            return self.by_value.get(value.strip().lower(), self.open)
        if value is None:  # a missing field equals nothing
            return self.open
        return self.compiled


def _gate_values(condition: Condition) -> frozenset[str] | None:
    """The texts a field must equal (after trimming and lowercasing) for `condition` to hold."""
    if isinstance(condition.equals, str):
        return frozenset([condition.equals.strip().lower()])
    if condition.in_ is not None and all(isinstance(v, str) for v in condition.in_):
        return frozenset(v.strip().lower() for v in condition.in_)
    return None


def _index(rules: Sequence[RoutingRule]) -> _Table:
    compiled = tuple(_compiled(rule) for rule in rules)
    reads_time = any(c.path[0] == "time" for rule in rules for c in rule.when)
    gates: list[dict[tuple[str, ...], frozenset[str]]] = []
    for rule in rules:
        gated: dict[tuple[str, ...], frozenset[str]] = {}
        for condition in rule.when:
            values = _gate_values(condition)
            if values is not None:
                gated[condition.path] = gated.get(condition.path, values) & values
        gates.append(gated)
    counts = Counter(path for gated in gates for path in gated)
    if not counts or counts.most_common(1)[0][1] < 2:
        return _Table(rules, compiled, reads_time)
    gate = counts.most_common(1)[0][0]
    pairs = list(zip(compiled, gates, strict=True))
    named = {v for gated in gates if gate in gated for v in gated[gate]}
    return _Table(
        rules,
        compiled,
        reads_time,
        gate,
        by_value={
            value: tuple(c for c, g in pairs if gate not in g or value in g[gate])
            for value in named
        },
        open=tuple(c for c, g in pairs if gate not in g),
    )


# Rule lists are read once per configuration: compile them once (keyed by the list object;
# a changed configuration is a new object). The entry keeps the list alive, so its id cannot
# be reused by another while cached.
_TABLES: dict[int, _Table] = {}


def _table(rules: Sequence[RoutingRule]) -> _Table:
    cached = _TABLES.get(id(rules))
    if cached is not None and cached.rules is rules:
        return cached
    table = _index(rules)
    if len(_TABLES) > 64:
        _TABLES.clear()
    _TABLES[id(rules)] = table
    return table


def lead_domains(lead: Lead) -> list[str]:
    """The domains a lead can be matched to an account by: company domain, then email domain."""
    domains: list[str] = []
    if lead.company.domain:
        domains.append(normalize_domain(lead.company.domain))
    if lead.email and "@" in lead.email:
        domains.append(normalize_domain(lead.email.rpartition("@")[2]))
    return list(dict.fromkeys(d for d in domains if d))


# Account lists are read once per configuration; index them once (keyed by the list object).
_INDEXES: dict[int, tuple[Sequence[Account], dict[str, Account]]] = {}


def _accounts(accounts: Sequence[Account]) -> dict[str, Account]:
    cached = _INDEXES.get(id(accounts))
    if cached is not None and cached[0] is accounts:
        return cached[1]
    index = {domain: account for account in accounts for domain in account.domains}
    if len(_INDEXES) > 64:
        _INDEXES.clear()
    _INDEXES[id(accounts)] = (accounts, index)
    return index


def match_account(accounts: Sequence[Account], lead: Lead) -> tuple[Account, str] | None:
    """The account whose domain (or a parent domain of it) the lead's domain is, and that domain."""
    if not accounts:
        return None
    index = _accounts(accounts)
    for domain in lead_domains(lead):
        labels = domain.split(".")
        for i in range(len(labels) - 1):
            candidate = ".".join(labels[i:])
            account = index.get(candidate)
            if account is not None:
                return account, candidate
    return None


def company_domain(lead: Lead, personal: Collection[str] = ()) -> str | None:
    """The company a lead belongs to, as a domain sticky ownership groups leads by: its
    company's domain, else its email's domain; never a free mailbox's (`personal`,
    normalized): an address there says nothing about the employer."""
    if lead.company.domain:
        domain = normalize_domain(lead.company.domain)
        if domain and domain not in personal:
            return domain
    if lead.email and "@" in lead.email:
        domain = normalize_domain(lead.email.rpartition("@")[2])
        if domain and domain not in personal:
            return domain
    return None
