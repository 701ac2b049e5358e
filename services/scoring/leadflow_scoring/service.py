"""Scoring orchestration: resolve the person, record the touch, re-score, emit `lead.scored`.

A person is scored from their aggregate (`lead_profiles.aggregate`), updated with the new
touch: the work of an event does not grow with the person's touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.config import Scoring
from leadflow.events import Envelope, LeadReceived, LeadScored, derived_event_id, new_event
from leadflow.outbox import enqueue
from leadflow_scoring import aggregate, identity, repository, snapshot
from leadflow_scoring.aggregate import Aggregate
from leadflow_scoring.metrics import MERGES, QUALIFIED, REFOLDS, SCORED
from leadflow_scoring.profile import Touch, lead_fields, touch_detail
from leadflow_scoring.replay import scored_event

PRODUCER = "scoring"


@dataclass(frozen=True)
class Resolved:
    """The person an event belongs to: their live profile key, its row, and what merged into it."""

    lead_key: str
    row: dict[str, Any] | None
    absorbed: list[dict[str, Any]] = field(default_factory=list)


async def resolve(
    session: AsyncSession, received: LeadReceived, event_id: str, now: datetime
) -> Resolved:
    """Find (or start) the one profile of the event's person, merging profiles it links.

    Identifier rows are locked first, in key order, then the live profiles they lead
    to, in key order; a profile merged meanwhile by another transaction is followed
    to its survivor.
    """
    identifiers = identity.identifiers_of(received)
    owners = await repository.claim_identifiers(session, identifiers, event_id, now)
    direct = {key for key in owners.values() if key} | {i.key for i in identifiers}
    pending = sorted(await repository.roots(session, direct))
    live: dict[str, dict[str, Any]] = {}
    while pending:
        key = pending.pop(0)
        if key in live:
            continue
        row = await repository.lock_profile(session, key)
        if row is None:
            continue
        if row["merged_into"] is not None:
            pending.append(row["merged_into"])
            continue
        live[key] = row
    if not live:
        root, current, absorbed = received.lead_key, None, []
    else:
        heads = [
            identity.ProfileHead(key, row["first_seen_at"], row["qualified_at"])
            for key, row in live.items()
        ]
        root = identity.survivor(heads).lead_key
        current = live[root]
        absorbed = [row for key, row in sorted(live.items()) if key != root]
        if absorbed:
            await repository.merge_profiles(
                session, root, [row["lead_key"] for row in absorbed], now
            )
            MERGES.inc(len(absorbed))
    await repository.attach_identifiers(session, [i.key for i in identifiers], root)
    return Resolved(root, current, absorbed)


async def person_state(
    session: AsyncSession, person: Resolved, touch: Touch | None, model: Scoring
) -> Aggregate:
    """The person's aggregate (merged from every profile resolved), with `touch` applied.

    Their touches are read only when an aggregate cannot be used: one tallied under
    other engagement rules, or none stored.
    """
    states: list[Aggregate] = []
    for row in (r for r in [person.row, *person.absorbed] if r is not None):
        state = _stored(row, model)
        if state is None:
            REFOLDS.inc()
            # merge_profiles moved every absorbed touch here, and the new touch is in too.
            return aggregate.fold(await repository.touches(session, person.lead_key), model)
        states.append(state)
    merged = states[0] if states else Aggregate()
    for state in states[1:]:
        merged = aggregate.merge(merged, state, model)
    return aggregate.apply(merged, touch, model) if touch is not None else merged


def _stored(row: dict[str, Any], model: Scoring) -> Aggregate | None:
    """A profile row's aggregate with its pending touches folded; None if it cannot be used."""
    document = row.get("aggregate")
    if document is None:
        return None
    state, pending = snapshot.load(document)
    if not aggregate.is_current(state, model):
        return None
    return aggregate.fold(pending, model, state) if pending else state


async def score_received(
    session: AsyncSession, event: Envelope, model: Scoring, now: datetime
) -> LeadScored:
    """Apply a `lead.received`: resolve the person, record the touch, re-score, and emit."""
    received = event.data
    assert isinstance(received, LeadReceived)
    person = await resolve(session, received, event.id, now)
    touch = Touch(
        activity=received.activity,
        source=received.source,
        occurred_at=received.received_at,
        detail=touch_detail(received.lead),
        event_id=event.id,
        fields=lead_fields(received.lead),
    )
    added = await repository.add_touch(session, person.lead_key, touch)
    state = await person_state(session, person, touch if added else None, model)
    profile, result = aggregate.evaluate(state, model, now)
    earlier = [
        row["qualified_at"]
        for row in [person.row, *person.absorbed]
        if row is not None and row["qualified_at"] is not None
    ]
    newly_qualified = result.qualified and not earlier
    qualified_at = min(earlier) if earlier else (now if result.qualified else None)
    await repository.save_profile(
        session,
        {
            "lead_key": person.lead_key,
            "fields": profile.fields,
            "first_source": profile.first_touch.source,
            "last_source": profile.last_touch.source,
            "first_seen_at": profile.first_touch.occurred_at,
            "last_seen_at": profile.last_touch.occurred_at,
            "score": result.total,
            "fit": result.fit,
            "engagement": result.engagement,
            "tier": result.tier,
            "grade": result.grade,
            "model_version": model.version,
            "qualified_at": qualified_at,
            "reasons": [r.model_dump(mode="json") for r in result.reasons],
            "first_touch": profile.first_touch.model_dump(mode="json"),
            "last_touch": profile.last_touch.model_dump(mode="json"),
            "aggregate": snapshot.dump(state),
        },
        exists=person.row is not None,
        now=now,
    )
    identifiers, merged = await repository.aliases(session, person.lead_key)
    scored = scored_event(
        model,
        person.lead_key,
        received,
        profile,
        result,
        newly_qualified=newly_qualified,
        identifiers=identifiers,
        merged_from=merged,
        now=now,
    )
    await enqueue(
        session,
        PRODUCER,
        new_event(
            "lead.scored",
            scored,
            source="/leadflow/scoring",
            time=now,
            event_id=derived_event_id("lead.scored", event.id),
        ),
        now,
    )
    SCORED.labels(result.tier).inc()
    if newly_qualified:
        QUALIFIED.labels(result.qualified_by or "unknown").inc()
    return scored
