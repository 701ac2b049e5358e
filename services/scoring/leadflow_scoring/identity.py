"""Identity resolution rules: which identifiers an event carries, which profile survives a merge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from leadflow.events import LeadReceived
from leadflow.keys import LeadKeys
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


def identifiers_of(received: LeadReceived, keys: LeadKeys) -> list[Identifier]:
    """Every identifier of an event (email keys, phone keys, and the event's own key), sorted.

    A phone that is not a valid number (kept on a lead that has an email) identifies
    nobody: "+1 415 555" typed by two people must not make them one person. During a key
    rotation, the email's and the phone's keys under the previous secrets are identifiers
    too: they reach the person known before, who keeps their key and gains the new one.
    """
    found: dict[str, IdentifierKind] = {}
    if received.lead.email:
        found.update(dict.fromkeys(keys.candidates(received.lead.email), "email"))
    if received.lead.phone and phone_facts(received.lead.phone)[1]:
        for key in keys.candidates(received.lead.phone):
            found.setdefault(key, "phone")
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
