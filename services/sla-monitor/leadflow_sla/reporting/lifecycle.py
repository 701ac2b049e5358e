"""A person's lifecycle, folded from their events (pure: no IO, no clock).

Events of one person arrive on four topics that interleave, so every fold here is
order-independent: firsts are minimums, lasts are maximums with a deterministic tie-break,
counts and sums add up. Applying the same events in any order gives the same lifecycle.
Redeliveries never reach `apply` (the consumer's inbox drops them). When two keys turn out
to mean one person, `combine` folds the absorbed key's lifecycle into the survivor's
exactly as if each of its facts had been applied there, so a merge may come before or
after the facts it joins (`people.fold`).
"""

from __future__ import annotations

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
    # Whether the owner holds the lead from a first assignment (not a later hand-off).
    owner_first: bool = False
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
        return cls(**{k: v for k, v in row.items() if v is not None and k in _COLUMNS})


# Reports read every lifecycle of a period: the dataclass's fields are asked for once.
_COLUMNS = frozenset(f.name for f in fields(Lifecycle))


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
    """The lead was given to a rep (`reassignment` when it was taken from another; `first`
    when it is the lead's first assignment, with no rep before it)."""

    at: datetime
    team: str
    rep_id: str
    reassignment: bool
    first: bool = False


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
        reassigned = event.type == "lead.reassigned"
        first = not reassigned and not data.previous_rep_ids
        return Handoff(data.assigned_at, data.team, data.rep_id, reassigned, first)
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


def combine(survivor: Lifecycle, absorbed: Lifecycle) -> Lifecycle:
    """The survivor's lifecycle after the absorbed one's facts, as if each had been applied to
    it: the earliest first touch and its source, the latest last touch, counts and sums
    added, the earliest moment of each stage."""
    lc = replace(
        survivor,
        touches=survivor.touches + absorbed.touches,
        reassignments=survivor.reassignments + absorbed.reassignments,
        contacts=survivor.contacts + absorbed.contacts,
        won_deals=survivor.won_deals + absorbed.won_deals,
        revenue=survivor.revenue + absorbed.revenue,
        reported_profit=survivor.reported_profit + absorbed.reported_profit,
        revenue_without_profit=survivor.revenue_without_profit + absorbed.revenue_without_profit,
        mql_at=_earlier(survivor.mql_at, absorbed.mql_at),
        ready_at=_earlier(survivor.ready_at, absorbed.ready_at),
        assigned_at=_earlier(survivor.assigned_at, absorbed.assigned_at),
        contacted_at=_earlier(survivor.contacted_at, absorbed.contacted_at),
        accepted_at=_earlier(survivor.accepted_at, absorbed.accepted_at),
        converted_at=_earlier(survivor.converted_at, absorbed.converted_at),
        won_at=_earlier(survivor.won_at, absorbed.won_at),
    )
    if absorbed.first_touch_at is not None:
        lc = _first_touch(lc, _first_of(absorbed))
    if absorbed.last_touch_at is not None:
        lc = _last_touch(lc, _last_of(absorbed))
    if absorbed.tier is not None and absorbed.tier_at is not None:
        lc = _tier(lc, absorbed.tier, absorbed.tier_at)
    if absorbed.owner_since is not None and absorbed.rep_id is not None:
        owner = _Owner(absorbed.owner_first, absorbed.owner_since, absorbed.rep_id, absorbed.team)
        lc = _owner(lc, owner)
    if absorbed.rejected_at is not None:
        lc = _rejected(lc, absorbed.rejected_at, absorbed.rejection_reason)
    if absorbed.lost_at is not None:
        lc = _lost(lc, absorbed.lost_at, absorbed.lost_reason)
    return lc


def _touch(lc: Lifecycle, touch: Touch) -> Lifecycle:
    return _last_touch(_first_touch(replace(lc, touches=lc.touches + 1), touch), touch)


def _first_of(lc: Lifecycle) -> Touch:
    assert lc.first_touch_at is not None
    source, segment = lc.first_source or "", lc.first_segment or ""
    return Touch(lc.first_touch_at, source, lc.first_campaign, segment)


def _last_of(lc: Lifecycle) -> Touch:
    assert lc.last_touch_at is not None
    source, segment = lc.last_source or "", lc.last_segment or ""
    return Touch(lc.last_touch_at, source, lc.last_campaign, segment)


def _order(touch: Touch) -> tuple[datetime, str, str, str]:
    return (touch.at, touch.source, touch.campaign or "", touch.segment)


def _first_touch(lc: Lifecycle, touch: Touch) -> Lifecycle:
    if lc.first_touch_at is not None and _order(touch) >= _order(_first_of(lc)):
        return lc
    return replace(
        lc,
        first_touch_at=touch.at,
        first_source=touch.source,
        first_campaign=touch.campaign,
        first_segment=touch.segment,
    )


def _last_touch(lc: Lifecycle, touch: Touch) -> Lifecycle:
    if lc.last_touch_at is not None and _order(touch) <= _order(_last_of(lc)):
        return lc
    return replace(
        lc,
        last_touch_at=touch.at,
        last_source=touch.source,
        last_campaign=touch.campaign,
        last_segment=touch.segment,
    )


def _scoring(lc: Lifecycle, scoring: Scoring) -> Lifecycle:
    lc = _tier(lc, scoring.tier, scoring.at)
    if scoring.qualified:
        lc = replace(
            lc,
            mql_at=_earliest(lc.mql_at, scoring.at),
            ready_at=_earliest(lc.ready_at, scoring.touch_at),
        )
    return lc


def _tier(lc: Lifecycle, tier: str, at: datetime) -> Lifecycle:
    rank = TIER_RANK.get(tier, -1)
    if lc.tier_at is None or (at, rank) > (lc.tier_at, TIER_RANK.get(lc.tier or "", -1)):
        lc = replace(lc, tier=tier, tier_at=at)
    return lc


@dataclass(frozen=True)
class _Owner:
    first: bool
    since: datetime
    rep_id: str
    team: str | None


def _owner(lc: Lifecycle, candidate: _Owner) -> Lifecycle:
    """The lead's owner after one more hand-off: a later hand-off (a reassignment) beats
    a first assignment, the latest of later hand-offs wins, and of first assignments the
    earliest, the one the router keeps when two profiles with live assignments merge."""
    if lc.owner_since is not None and lc.rep_id is not None:
        current = _Owner(lc.owner_first, lc.owner_since, lc.rep_id, lc.team)
        mine = (candidate.since, candidate.rep_id, candidate.team or "")
        theirs = (current.since, current.rep_id, current.team or "")
        if candidate.first != current.first:
            better = current.first
        else:
            better = mine < theirs if candidate.first else mine > theirs
        if not better:
            return lc
    return replace(
        lc,
        owner_first=candidate.first,
        owner_since=candidate.since,
        rep_id=candidate.rep_id,
        team=candidate.team,
    )


def _handoff(lc: Lifecycle, handoff: Handoff) -> Lifecycle:
    lc = replace(
        lc,
        assigned_at=_earliest(lc.assigned_at, handoff.at),
        reassignments=lc.reassignments + (1 if handoff.reassignment else 0),
    )
    return _owner(lc, _Owner(handoff.first, handoff.at, handoff.rep_id, handoff.team))


def _outcome(lc: Lifecycle, outcome: Outcome) -> Lifecycle:
    at = outcome.at
    if outcome.kind == "contacted":
        return replace(lc, contacted_at=_earliest(lc.contacted_at, at), contacts=lc.contacts + 1)
    if outcome.kind == "accepted":
        return replace(lc, accepted_at=_earliest(lc.accepted_at, at))
    if outcome.kind == "converted":
        return replace(lc, converted_at=_earliest(lc.converted_at, at))
    if outcome.kind == "rejected":
        return _rejected(lc, at, outcome.reason)
    if outcome.kind == "lost":
        return _lost(lc, at, outcome.reason)
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


def _rejected(lc: Lifecycle, at: datetime, reason: str | None) -> Lifecycle:
    # The latest screening verdict stands (a recycled lead can be rejected again).
    if lc.rejected_at is None or (at, reason or "") > (lc.rejected_at, lc.rejection_reason or ""):
        lc = replace(lc, rejected_at=at, rejection_reason=reason)
    return lc


def _lost(lc: Lifecycle, at: datetime, reason: str | None) -> Lifecycle:
    if lc.lost_at is None or (at, reason or "") > (lc.lost_at, lc.lost_reason or ""):
        lc = replace(lc, lost_at=at, lost_reason=reason)
    return lc


def _earlier(current: datetime | None, other: datetime | None) -> datetime | None:
    return current if other is None else _earliest(current, other)


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _clip(value: str | None, length: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:length] or None
