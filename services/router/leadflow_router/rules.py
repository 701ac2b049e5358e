"""Which rule takes a lead: the routing document, first-match rules and account matching (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from leadflow.conditions import all_match
from leadflow.config import Account, RoutingRule
from leadflow.events import Lead, LeadScored
from leadflow.schedules import WEEKDAYS, normalize_domain


def routing_document(scored: LeadScored, now: datetime, zone: str = "UTC") -> dict[str, Any]:
    """What routing conditions can look at: the lead, its score, its source and the time.

    `time.*` is the decision's moment in `zone` (the routing configuration's time zone).
    """
    local = now.astimezone(ZoneInfo(zone))
    return {
        "lead": scored.lead.model_dump(mode="json", exclude_none=True),
        "score": {
            "score": scored.score,
            "fit": scored.fit,
            "engagement": scored.engagement,
            "tier": scored.tier,
        },
        "source": scored.source,
        "time": {
            "hour": local.hour,
            "minute": local.minute,
            "hhmm": f"{local:%H:%M}",
            "weekday": local.isoweekday(),
            "day": WEEKDAYS[local.weekday()],
            "date": local.date().isoformat(),
        },
    }


def rule_matches(rule: RoutingRule, doc: Mapping[str, Any], now: datetime) -> bool:
    """Whether every condition of the rule holds, and its time windows allow `now`."""
    if rule.during and not any(window.contains(now) for window in rule.during):
        return False
    if any(window.contains(now) for window in rule.outside):
        return False
    return all_match(rule.when, doc)


def matching_rules(
    rules: Sequence[RoutingRule], doc: Mapping[str, Any], now: datetime
) -> Iterator[RoutingRule]:
    """The rules that match, in configuration order, evaluated lazily (the first one wins)."""
    return (rule for rule in rules if rule_matches(rule, doc, now))


def first_match(
    rules: Sequence[RoutingRule], doc: Mapping[str, Any], now: datetime
) -> RoutingRule | None:
    """The first rule that matches."""
    return next((rule for rule in rules if rule_matches(rule, doc, now)), None)


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


def _index(accounts: Sequence[Account]) -> dict[str, Account]:
    cached = _INDEXES.get(id(accounts))
    if cached is not None and cached[0] is accounts:
        return cached[1]
    index = {domain: account for account in accounts for domain in account.domains}
    _INDEXES[id(accounts)] = (accounts, index)
    return index


def match_account(accounts: Sequence[Account], lead: Lead) -> tuple[Account, str] | None:
    """The account whose domain (or a parent domain of it) the lead's domain is, and that domain."""
    if not accounts:
        return None
    index = _index(accounts)
    for domain in lead_domains(lead):
        labels = domain.split(".")
        for i in range(len(labels) - 1):
            candidate = ".".join(labels[i:])
            account = index.get(candidate)
            if account is not None:
                return account, candidate
    return None
