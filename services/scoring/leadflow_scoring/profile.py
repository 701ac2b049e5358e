"""A person's profile as a pure function of their touches, and the facts rules can test.

The profile is folded from every touch in time order, never from the order events
were processed in, so out-of-order delivery (a person's events on two partitions)
always ends in the same profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import phonenumbers

from leadflow.events import Lead, TouchPoint
from leadflow.scoring_model import Domains

_PHONE_TYPES = {
    value: name.lower()
    for name, value in vars(phonenumbers.PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}


@dataclass(frozen=True)
class Touch:
    """One thing the person did: a form fill, a download, a call."""

    activity: str
    source: str
    occurred_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """The merged view of a person: latest field values, first and last touch."""

    fields: dict[str, Any]
    first_touch: TouchPoint
    last_touch: TouchPoint
    touches: int


def touch_order(touch: Touch) -> tuple[datetime, str]:
    """Touches sort by when they happened, then by event id (a total, stable order)."""
    return (touch.occurred_at, touch.event_id)


def touch_detail(lead: Lead) -> dict[str, Any]:
    """What of the event itself (not the person) engagement rules may look at."""
    detail: dict[str, Any] = {
        "campaign": lead.campaign,
        "content_asset": lead.content_asset,
        "call_duration_s": lead.call_duration_s,
        "utm": lead.utm,
        "answers": lead.answers,
        "product_interest": lead.product_interest,
        # What the sender said of this touch beyond the canonical fields (a call answered
        # or missed, a first-time caller): `custom.*` on the touch, not the person's latest.
        "custom": lead.custom,
    }
    return {k: v for k, v in detail.items() if v not in (None, {}, "")}


def lead_fields(lead: Lead) -> dict[str, Any]:
    """A lead's given values (what one event says about the person)."""
    return lead.model_dump(mode="json", exclude_none=True)


def merge_fields(current: Mapping[str, Any], update: Lead) -> dict[str, Any]:
    """The profile's fields after a new event: the latest non-empty value of each field wins."""
    return merge_values(current, lead_fields(update))


def merge_values(current: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`current` updated by `update`: nested mappings key by key, empty values ignored."""
    merged = dict(current)
    for name, value in update.items():
        if isinstance(value, dict):
            merged[name] = {**merged.get(name, {}), **value}
        elif name == "phone" and _mistyped_over_valid(merged.get(name), value):
            continue  # a later typo must not cost the person the number that works
        elif value not in ("", []):
            merged[name] = value
    return merged


def _mistyped_over_valid(current: Any, update: Any) -> bool:
    return (
        isinstance(current, str)
        and isinstance(update, str)
        and phone_facts(current)[1]
        and not phone_facts(update)[1]
    )


def build_profile(touches: Iterable[Touch]) -> Profile:
    """Fold touches, oldest first, into the person's profile (at least one touch)."""
    ordered = sorted(touches, key=touch_order)
    if not ordered:
        raise ValueError("a profile needs at least one touch.")
    fields: dict[str, Any] = {}
    for touch in ordered:
        fields = merge_values(fields, touch.fields)
    return Profile(
        fields=fields,
        first_touch=touch_point(ordered[0]),
        last_touch=touch_point(ordered[-1]),
        touches=len(ordered),
    )


def touch_point(touch: Touch) -> TouchPoint:
    """The attribution of one touch."""
    utm = touch.detail.get("utm") or {}
    return TouchPoint(
        source=touch.source,
        activity=touch.activity,
        occurred_at=touch.occurred_at,
        campaign=touch.detail.get("campaign"),
        utm_source=utm.get("source") if isinstance(utm, dict) else None,
    )


def facts(domains: Domains, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Derived facts about a profile that rules test as `facts.*`."""
    lists = _domain_lists(domains)
    email = str(fields.get("email") or "")
    email_domain = email.rpartition("@")[2].lower() if "@" in email else None
    company = fields.get("company") or {}
    company_domain = _bare_domain(company.get("domain")) if isinstance(company, dict) else None
    email_type = _email_type(lists, email_domain)
    account_domains = [d for d in (company_domain, email_domain) if d]
    if email_type != "business":
        account_domains = [d for d in account_domains if d != email_domain]
    phone_type, phone_valid = _phone(fields.get("phone"))
    return {
        "email_domain": email_domain,
        "email_type": email_type,
        "company_domain": company_domain,
        "priority_account": _any_in(account_domains, lists.priority_accounts),
        "competitor": _any_in(account_domains, lists.competitors),
        "customer": _any_in(account_domains, lists.customers),
        "phone_type": phone_type,
        "phone_valid": phone_valid,
    }


@dataclass(frozen=True, slots=True)
class _DomainLists:
    """A model's domain lists as sets (looked up once per suffix, not scanned)."""

    personal: frozenset[str]
    disposable: frozenset[str]
    competitors: frozenset[str]
    customers: frozenset[str]
    priority_accounts: frozenset[str]


_LISTS: dict[int, tuple[Domains, _DomainLists]] = {}


def _domain_lists(domains: Domains) -> _DomainLists:
    cached = _LISTS.get(id(domains))
    if cached is not None and cached[0] is domains:
        return cached[1]
    lists = _DomainLists(
        personal=frozenset(domains.personal),
        disposable=frozenset(domains.disposable),
        competitors=frozenset(domains.competitors),
        customers=frozenset(domains.customers),
        priority_accounts=frozenset(domains.priority_accounts),
    )
    if len(_LISTS) > 64:
        _LISTS.clear()
    # The entry keeps `domains` alive, so its id cannot be reused by another while cached.
    _LISTS[id(domains)] = (domains, lists)
    return lists


def _email_type(lists: _DomainLists, domain: str | None) -> str:
    if domain is None:
        return "none"
    if _in_list(domain, lists.disposable):
        return "disposable"
    if _in_list(domain, lists.personal):
        return "personal"
    return "business"


def _bare_domain(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower().split("://")[-1].split("/")[0]
    return text.removeprefix("www.") or None


def _in_list(domain: str, listed: frozenset[str]) -> bool:
    """Whether `domain` is a listed domain or under one (`a.b.com` is under `b.com`)."""
    if not listed:
        return False
    if domain in listed:
        return True
    # `domain` ends with "." + d exactly when d is what follows one of its dots.
    dot = domain.find(".")
    while dot >= 0:
        if domain[dot + 1 :] in listed:
            return True
        dot = domain.find(".", dot + 1)
    return False


def _any_in(candidates: Sequence[str], listed: frozenset[str]) -> bool:
    return any(_in_list(d, listed) for d in candidates)


def _phone(value: Any) -> tuple[str | None, bool | None]:
    """The phone's line type and validity (None when the profile has no phone)."""
    if not isinstance(value, str) or not value:
        return None, None
    return phone_facts(value)


@lru_cache(maxsize=4096)
def phone_facts(value: str) -> tuple[str | None, bool]:
    """An E.164 phone's line type and whether it is a valid number."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return "unknown", False
    if not phonenumbers.is_valid_number(number):
        return "unknown", False
    return _PHONE_TYPES.get(phonenumbers.number_type(number), "unknown"), True
