"""A lead's lifecycle, folded from its events (pure: no IO, no clock).

Events of one lead arrive on four topics that interleave, so every fold here is
order-independent: firsts are minimums, lasts are maximums with a deterministic tie-break,
counts and sums add up. Applying the same events in any order gives the same lifecycle.
Redeliveries never reach `apply` (the consumer's inbox drops them). `fold` applies a whole
batch of facts, lead by lead in the batch's order, to the lifecycles loaded for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from leadflow.conditions import all_match
from leadflow.config import Reporting
from leadflow.events import Envelope, LeadActivity, LeadAssigned, LeadReceived, LeadScored

TIER_RANK = {"disqualified": 0, "nurture": 1, "watch": 2, "mql": 3}
REASON_MAX = 500


@dataclass(frozen=True)
class Lifecycle:
    """Everything reports need to know about one lead, one row per lead."""

    lead_key: str
    touches: int = 0
    first_touch_at: datetime | None = None
    first_source: str | None = None
    first_campaign: str | None = None
    first_segment: str | None = None
    last_touch_at: datetime | None = None
    last_source: str | None = None
    last_campaign: str | None = None
    last_segment: str | None = None
    tier: str | None = None
    tier_at: datetime | None = None
    mql_at: datetime | None = None
    ready_at: datetime | None = None
    assigned_at: datetime | None = None
    team: str | None = None
    rep_id: str | None = None
    owner_since: datetime | None = None
    reassignments: int = 0
    contacted_at: datetime | None = None
    contacts: int = 0
    accepted_at: datetime | None = None
    rejected_at: datetime | None = None
    rejection_reason: str | None = None
    converted_at: datetime | None = None
    won_at: datetime | None = None
    won_deals: int = 0
    revenue: float = 0.0
    reported_profit: float = 0.0
    revenue_without_profit: float = 0.0
    lost_at: datetime | None = None
    lost_reason: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The lifecycle as column values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Lifecycle:
        """A lifecycle from column values (unknown columns are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names and v is not None})


@dataclass(frozen=True)
class Touch:
    """The lead arrived (a form, a download, a call): where from and in which segment."""

    at: datetime
    source: str
    campaign: str | None
    segment: str


@dataclass(frozen=True)
class Scoring:
    """The lead was (re)scored; `touch_at` is the arrival of the touch that was scored."""

    at: datetime
    touch_at: datetime
    tier: str
    qualified: bool


@dataclass(frozen=True)
class Handoff:
    """The lead was given to a rep (`reassignment` when it was taken from another)."""

    at: datetime
    team: str
    rep_id: str
    reassignment: bool


@dataclass(frozen=True)
class Outcome:
    """A CRM outcome: contacted, accepted, rejected, converted (SQL), won or lost."""

    kind: str
    at: datetime
    reason: str | None = None
    amount: float | None = None
    profit: float | None = None


Fact = Touch | Scoring | Handoff | Outcome


def segment_of(reporting: Reporting, document: dict[str, Any]) -> str:
    """The first segment whose conditions hold on `document`, else the catch-all segment."""
    for segment in reporting.segments:
        if all_match(segment.when, document):
            return segment.name
    return reporting.other_segment


def fact_of(event: Envelope, reporting: Reporting) -> Fact | None:
    """What an event tells the lifecycle, or None when it tells it nothing."""
    data = event.data
    if isinstance(data, LeadReceived):
        lead = data.lead
        document = {
            "lead": lead.model_dump(mode="json", exclude_none=True),
            "source": data.source,
            "activity": data.activity,
        }
        return Touch(
            at=data.received_at,
            source=_clip(lead.utm.get("source"), 128) or data.source,
            campaign=_clip(lead.campaign or lead.utm.get("campaign"), 200),
            segment=segment_of(reporting, document),
        )
    if isinstance(data, LeadScored):
        return Scoring(data.scored_at, data.received_at, data.tier, data.qualified)
    if isinstance(data, LeadAssigned):
        return Handoff(data.assigned_at, data.team, data.rep_id, event.type == "lead.reassigned")
    if isinstance(data, LeadActivity):
        return Outcome(
            data.activity,
            data.occurred_at,
            _clip(" ".join(data.reason.split()) if data.reason else None, REASON_MAX),
            data.amount,
            data.profit,
        )
    return None


def apply(lifecycle: Lifecycle, fact: Fact) -> Lifecycle:
    """The lifecycle after one more fact (commutative: the order of facts does not matter)."""
    if isinstance(fact, Touch):
        return _touch(lifecycle, fact)
    if isinstance(fact, Scoring):
        return _scoring(lifecycle, fact)
    if isinstance(fact, Handoff):
        return _handoff(lifecycle, fact)
    return _outcome(lifecycle, fact)


def fold(
    lifecycles: Mapping[str, Lifecycle], facts: Iterable[tuple[str, Fact]]
) -> dict[str, Lifecycle]:
    """The lifecycles the facts touched, by lead key, after applying the facts in order.

    A lead missing from `lifecycles` starts empty; a lead with several facts sees each one
    after the ones before it, as it would one event at a time.
    """
    folded: dict[str, Lifecycle] = {}
    for lead_key, fact in facts:
        current = folded.get(lead_key) or lifecycles.get(lead_key) or Lifecycle(lead_key)
        folded[lead_key] = apply(current, fact)
    return folded


def _touch(lc: Lifecycle, touch: Touch) -> Lifecycle:
    mine = (touch.at, touch.source, touch.campaign or "", touch.segment)
    first = lc.first_touch_at is None or mine < (
        lc.first_touch_at,
        lc.first_source or "",
        lc.first_campaign or "",
        lc.first_segment or "",
    )
    last = lc.last_touch_at is None or mine > (
        lc.last_touch_at,
        lc.last_source or "",
        lc.last_campaign or "",
        lc.last_segment or "",
    )
    lc = replace(lc, touches=lc.touches + 1)
    if first:
        lc = replace(
            lc,
            first_touch_at=touch.at,
            first_source=touch.source,
            first_campaign=touch.campaign,
            first_segment=touch.segment,
        )
    if last:
        lc = replace(
            lc,
            last_touch_at=touch.at,
            last_source=touch.source,
            last_campaign=touch.campaign,
            last_segment=touch.segment,
        )
    return lc


def _scoring(lc: Lifecycle, scoring: Scoring) -> Lifecycle:
    rank = TIER_RANK.get(scoring.tier, -1)
    if lc.tier_at is None or (scoring.at, rank) > (lc.tier_at, TIER_RANK.get(lc.tier or "", -1)):
        lc = replace(lc, tier=scoring.tier, tier_at=scoring.at)
    if scoring.qualified:
        lc = replace(
            lc,
            mql_at=_earliest(lc.mql_at, scoring.at),
            ready_at=_earliest(lc.ready_at, scoring.touch_at),
        )
    return lc


def _handoff(lc: Lifecycle, handoff: Handoff) -> Lifecycle:
    lc = replace(
        lc,
        assigned_at=_earliest(lc.assigned_at, handoff.at),
        reassignments=lc.reassignments + (1 if handoff.reassignment else 0),
    )
    mine = (handoff.at, handoff.rep_id, handoff.team)
    if lc.owner_since is None or mine > (lc.owner_since, lc.rep_id or "", lc.team or ""):
        lc = replace(lc, owner_since=handoff.at, rep_id=handoff.rep_id, team=handoff.team)
    return lc


def _outcome(lc: Lifecycle, outcome: Outcome) -> Lifecycle:
    at = outcome.at
    if outcome.kind == "contacted":
        return replace(lc, contacted_at=_earliest(lc.contacted_at, at), contacts=lc.contacts + 1)
    if outcome.kind == "accepted":
        return replace(lc, accepted_at=_earliest(lc.accepted_at, at))
    if outcome.kind == "converted":
        return replace(lc, converted_at=_earliest(lc.converted_at, at))
    if outcome.kind == "rejected":
        # The latest screening verdict stands (a recycled lead can be rejected again).
        if lc.rejected_at is None or (at, outcome.reason or "") > (
            lc.rejected_at,
            lc.rejection_reason or "",
        ):
            lc = replace(lc, rejected_at=at, rejection_reason=outcome.reason)
        return lc
    if outcome.kind == "lost":
        if lc.lost_at is None or (at, outcome.reason or "") > (lc.lost_at, lc.lost_reason or ""):
            lc = replace(lc, lost_at=at, lost_reason=outcome.reason)
        return lc
    if outcome.kind == "won":
        amount = outcome.amount or 0.0
        return replace(
            lc,
            won_at=_earliest(lc.won_at, at),
            won_deals=lc.won_deals + 1,
            revenue=lc.revenue + amount,
            reported_profit=lc.reported_profit + (outcome.profit or 0.0),
            revenue_without_profit=lc.revenue_without_profit
            + (amount if outcome.profit is None else 0.0),
        )
    return lc


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _clip(value: str | None, length: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:length] or None
