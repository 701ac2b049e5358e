"""Identity resolution rules: which identifiers an event carries, which profile survives a merge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from leadflow.events import LeadReceived, lead_key_for
from leadflow_scoring.profile import phone_facts

IdentifierKind = Literal["email", "phone", "key"]


@dataclass(frozen=True)
class Identifier:
    """One way to recognise a person: the lead key of their email or of their phone."""

    key: str
    kind: IdentifierKind


@dataclass(frozen=True)
class ProfileHead:
    """What choosing a merge survivor looks at."""

    lead_key: str
    first_seen_at: datetime
    qualified_at: datetime | None


def identifiers_of(received: LeadReceived) -> list[Identifier]:
    """Every identifier of an event (email key, phone key, and the event's own key), sorted.

    A phone that is not a valid number (kept on a lead that has an email) identifies
    nobody: "+1 415 555" typed by two people must not make them one person.
    """
    found: dict[str, IdentifierKind] = {}
    if received.lead.email:
        found[lead_key_for(received.lead.email)] = "email"
    if received.lead.phone and phone_facts(received.lead.phone)[1]:
        found.setdefault(lead_key_for(received.lead.phone), "phone")
    found.setdefault(received.lead_key, "key")
    return [Identifier(key, kind) for key, kind in sorted(found.items())]


def survivor(profiles: Sequence[ProfileHead]) -> ProfileHead:
    """The profile whose key the merged person keeps.

    A qualified profile wins (it may already be routed under its key; the earliest
    qualification first), then the oldest, then the smallest key: the same profiles
    always give the same survivor.
    """
    return min(
        profiles,
        key=lambda p: (
            p.qualified_at is None,
            p.qualified_at or p.first_seen_at,
            p.first_seen_at,
            p.lead_key,
        ),
    )
