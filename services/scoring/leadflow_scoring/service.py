"""Scoring a batch of `lead.received`: resolve each person, record the touch, re-score, emit.

`score_batch` is the one use case: the consumer runs it on the database
(`repository.SqlProfileStore`), `leadflow simulate` and tests on memory
(`memory.InMemoryProfileStore`). It loads the batch's people once, applies the events one
by one in Kafka order (an event sees what the earlier ones did: two events of one new
person make one profile, an event linking two profiles merges them), and saves once.
A person is scored from their aggregate (`lead_profiles.aggregate`) updated with the new
touch: the work of an event does not grow with the person's touches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.config import Scoring
from leadflow.events import (
    Envelope,
    Lead,
    LeadMerged,
    LeadReceived,
    LeadScored,
    derived_event_id,
    new_event,
)
from leadflow.keys import LeadKeys
from leadflow.outbox import enqueue_many
from leadflow.processing import PoisonEvent
from leadflow.topics import Lane
from leadflow_scoring import aggregate, domain, identity
from leadflow_scoring.aggregate import Aggregate
from leadflow_scoring.metrics import MERGES, QUALIFIED, REFOLDS, SCORED
from leadflow_scoring.profile import Profile, Touch, lead_fields, touch_detail
from leadflow_scoring.repository import SqlProfileStore
from leadflow_scoring.store import Claim, Claims, People, ProfileStore, Record, Scored

PRODUCER = "scoring"
SOURCE = "/leadflow/scoring"


async def score_events(
    session: AsyncSession,
    events: Sequence[Envelope],
    model: Scoring,
    keys: LeadKeys,
    now: datetime,
    lane: Lane = "live",
) -> list[LeadScored]:
    """Score a batch on the database and add its events to the outbox, on the lane the
    batch came in on (`lead.merged` always travels on `leads.activity`); its scores."""
    emitted = await score_batch(SqlProfileStore(session), events, model, keys, now)
    await enqueue_many(session, PRODUCER, emitted, now, lane)
    return scores(emitted)


async def score_received(
    session: AsyncSession, event: Envelope, model: Scoring, keys: LeadKeys, now: datetime
) -> LeadScored:
    """Score one `lead.received` on the database (a batch of one)."""
    [scored] = await score_events(session, [event], model, keys, now)
    return scored


async def score_batch(
    store: ProfileStore,
    events: Sequence[Envelope],
    model: Scoring,
    keys: LeadKeys,
    now: datetime,
) -> list[Envelope]:
    """Apply `lead.received` events in order; the events to publish, in order: each event's
    `lead.scored`, preceded by a `lead.merged` when it gave its person more keys (merged
    profiles, or an identifier attached: see `LeadMerged`)."""
    batch = [(event.id, _received(event)) for event in events]
    carried = [identity.identifiers_of(received, keys) for _, received in batch]
    claims: dict[str, Claim] = {}
    for (event_id, _), identifiers in zip(batch, carried, strict=True):
        for i in identifiers:
            claims.setdefault(i.key, Claim(i.kind, event_id))
    named = [[i.key for i in identifiers] for identifiers in carried]
    people = await store.load(Claims(claims, [event_id for event_id, _ in batch]), now)
    stale = _to_fold_again(people, named, model)
    if stale:
        people.history = await store.touches(stale)
    emitted: list[Envelope] = []
    for (event_id, received), carries in zip(batch, named, strict=True):
        scored, merged = _score(people, event_id, received, carries, model, now)
        if merged is not None:
            emitted.append(
                new_event(
                    "lead.merged",
                    merged,
                    source=SOURCE,
                    time=now,
                    event_id=derived_event_id("lead.merged", event_id),
                )
            )
        emitted.append(
            new_event(
                "lead.scored",
                scored,
                source=SOURCE,
                time=now,
                event_id=derived_event_id("lead.scored", event_id),
            )
        )
    await store.save(people, now)
    return emitted


def _received(event: Envelope) -> LeadReceived:
    if not isinstance(event.data, LeadReceived):
        raise PoisonEvent(f"scoring takes lead.received events, not {event.type}.")
    return event.data


def _score(
    people: People,
    event_id: str,
    received: LeadReceived,
    identifiers: list[str],
    model: Scoring,
    now: datetime,
) -> tuple[LeadScored, LeadMerged | None]:
    """Apply one event to the people in memory: resolve, merge, record the touch, re-score;
    the score, and the merge to publish when the person has more keys than before."""
    live = people.reached(identifiers)
    if live:
        heads = [identity.ProfileHead(r.lead_key, r.first_seen_at, r.qualified_at) for r in live]
        root = people.records[identity.survivor(heads).lead_key]
        known = _keys(people, root.lead_key)
        absorbed = [r for r in live if r is not root]
        if absorbed:
            people.merge(root, absorbed)
            MERGES.inc(len(absorbed))
        earlier = [r.qualified_at for r in live if r.qualified_at is not None]
    else:
        root, absorbed, earlier = people.start(received.lead_key, received.received_at), [], []
        known = {root.lead_key}
    people.attach(identifiers, root.lead_key)
    touch = Touch(
        activity=received.activity,
        source=received.source,
        occurred_at=received.received_at,
        detail=touch_detail(received.lead),
        event_id=event_id,
        fields=lead_fields(received.lead),
    )
    added = people.record_touch(root.lead_key, touch)
    state = _state(people, [root, *absorbed], touch if added else None, model)
    profile, result = aggregate.evaluate(state, model, now)
    newly_qualified = result.qualified and not earlier
    root.qualified_at = min(earlier) if earlier else (now if result.qualified else None)
    root.first_seen_at = profile.first_touch.occurred_at
    root.state, root.pending = state, ()
    root.scored = Scored(profile, result, model.version)
    identifiers_now, merged = people.aliases(root.lead_key)
    SCORED.labels(result.tier).inc()
    if newly_qualified:
        QUALIFIED.labels(result.qualified_by or "unknown").inc()
    linked = None
    if not _keys(people, root.lead_key) <= known:
        linked = LeadMerged(
            survivor=root.lead_key,
            absorbed=merged,
            identifiers=identifiers_now,
            merged_at=now,
        )
    return scored_event(
        model,
        root.lead_key,
        received,
        profile,
        result,
        newly_qualified=newly_qualified,
        identifiers=identifiers_now,
        merged_from=merged,
        now=now,
    ), linked


def _keys(people: People, lead_key: str) -> set[str]:
    """Every key that means the person of a live profile: its own, its identifiers', and
    those of the profiles merged into it."""
    identifiers, merged = people.aliases(lead_key)
    return {lead_key, *identifiers, *merged}


def _state(people: People, person: list[Record], touch: Touch | None, model: Scoring) -> Aggregate:
    """The person's aggregate (merged from every profile resolved), with `touch` applied.

    Their touches are read only when an aggregate cannot be used: one tallied under other
    engagement rules, or none stored.
    """
    states: list[Aggregate] = []
    for record in person:
        state = _usable(record, model)
        if state is None:
            REFOLDS.inc()
            # Every touch of the person, the new one included (if it is new).
            return aggregate.fold(people.every_touch(person[0].lead_key), model)
        states.append(state)
    merged = states[0]
    for state in states[1:]:
        merged = aggregate.merge(merged, state, model)
    return aggregate.apply(merged, touch, model) if touch is not None else merged


def _usable(record: Record, model: Scoring) -> Aggregate | None:
    """A profile's aggregate with its pending touches folded; None if it cannot be used."""
    if record.state is None or not aggregate.is_current(record.state, model):
        return None
    if record.pending:
        return aggregate.fold(record.pending, model, record.state)
    return record.state


def _current(record: Record, model: Scoring) -> bool:
    """Whether a profile's stored aggregate can be used under `model`."""
    return record.state is not None and aggregate.is_current(record.state, model)


def _to_fold_again(people: People, events: list[list[str]], model: Scoring) -> set[str]:
    """The stored profiles whose touches the batch needs: those of every person it will
    score with an aggregate it cannot use, and of every profile merged into such a person."""
    stale = {key for key, r in people.records.items() if not _current(r, model)}
    if not stale:
        return set()
    # The profiles one event reaches become one person: group them across the batch.
    group: dict[str, str] = {}

    def find(key: str) -> str:
        while group.setdefault(key, key) != key:
            group[key] = group[group[key]]
            key = group[key]
        return key

    for identifiers in events:
        keys = set(identifiers) | {r.lead_key for r in people.reached(identifiers)}
        first, *rest = sorted(keys)
        for key in rest:
            group[find(key)] = find(first)
    needed = {find(key) for key in stale}
    return {key for key, r in people.records.items() if r.stored and find(key) in needed}


def scores(emitted: Sequence[Envelope]) -> list[LeadScored]:
    """The `lead.scored` payloads among events `score_batch` emitted, in order."""
    return [e.data for e in emitted if isinstance(e.data, LeadScored)]


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
