"""Scoring in memory: the service's resolve -> touch -> score steps with no database.

`leadflow simulate` replays historical leads through it; it follows the same rules as
`service.score_received` (identity merge survivor, the person's aggregate and its
score, exactly-once qualification), so a simulation predicts what the service would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from leadflow.config import Scoring
from leadflow.events import Lead, LeadReceived, LeadScored
from leadflow_scoring import aggregate, domain, identity
from leadflow_scoring.aggregate import Aggregate
from leadflow_scoring.profile import Profile, Touch, lead_fields, touch_detail


@dataclass
class _Person:
    lead_key: str
    first_seen_at: datetime
    state: Aggregate = field(default_factory=Aggregate)
    qualified_at: datetime | None = None
    merged: list[str] = field(default_factory=list)


class Replay:
    """Profiles, identifiers and touches of many people, kept in memory."""

    def __init__(self, model: Scoring) -> None:
        self.model = model
        self._owner: dict[str, str] = {}
        self._people: dict[str, _Person] = {}

    def apply(self, received: LeadReceived, event_id: str, now: datetime) -> LeadScored:
        """Score one `lead.received` at `now`, exactly as the service would."""
        ids = identity.identifiers_of(received)
        live = {self._owner[i.key] for i in ids if i.key in self._owner}
        people = [self._people[key] for key in sorted(live)]
        if people:
            heads = [
                identity.ProfileHead(p.lead_key, p.first_seen_at, p.qualified_at) for p in people
            ]
            root = self._people[identity.survivor(heads).lead_key]
        else:
            root = _Person(received.lead_key, received.received_at)
            self._people[root.lead_key] = root
        earlier = [p.qualified_at for p in people if p.qualified_at is not None]
        for other in people:
            if other is not root:
                root.state = aggregate.merge(root.state, other.state, self.model)
                root.merged += [other.lead_key, *other.merged]
                del self._people[other.lead_key]
                for key, owner in self._owner.items():
                    if owner == other.lead_key:
                        self._owner[key] = root.lead_key
        for i in ids:
            self._owner[i.key] = root.lead_key
        touch = Touch(
            activity=received.activity,
            source=received.source,
            occurred_at=received.received_at,
            detail=touch_detail(received.lead),
            event_id=event_id,
            fields=lead_fields(received.lead),
        )
        root.state = aggregate.apply(root.state, touch, self.model)
        profile, result = aggregate.evaluate(root.state, self.model, now)
        root.first_seen_at = profile.first_touch.occurred_at
        newly = result.qualified and not earlier
        if earlier:
            root.qualified_at = min(earlier)
        elif result.qualified:
            root.qualified_at = now
        owned = sorted(k for k, owner in self._owner.items() if owner == root.lead_key)
        return scored_event(
            self.model,
            root.lead_key,
            received,
            profile,
            result,
            newly_qualified=newly,
            identifiers=owned,
            merged_from=sorted(root.merged),
            now=now,
        )


def scored_event(
    model: Scoring,
    lead_key: str,
    received: LeadReceived,
    profile: Profile,
    result: domain.Score,
    *,
    newly_qualified: bool,
    identifiers: list[str],
    merged_from: list[str],
    now: datetime,
) -> LeadScored:
    """The `lead.scored` payload for a scored profile."""
    return LeadScored(
        lead_key=lead_key,
        model_version=model.version,
        score=result.total,
        fit=result.fit,
        engagement=result.engagement,
        tier=result.tier,
        qualified=result.qualified,
        newly_qualified=newly_qualified,
        reasons=result.reasons,
        scored_at=now,
        received_at=received.received_at,
        source=received.source,
        lead=Lead.model_validate(profile.fields),
        grade=result.grade,
        fit_grade=result.fit_grade,
        engagement_grade=result.engagement_grade,
        qualified_by=result.qualified_by,
        disqualified_by=result.disqualified_by,
        activity=received.activity,
        identifiers=identifiers,
        merged_from=merged_from,
        first_touch=profile.first_touch,
        last_touch=profile.last_touch,
        touches=profile.touches,
    )
