"""Scoring a batch at once on real SQLite and PostgreSQL: what one event per transaction gives.

A batch is loaded in a few statements, applied in memory in order and saved in bulk; the
rows and the `lead.scored` events must be exactly those of applying its events one by one
(merges, chains of merges, redeliveries, people folded again after a rule change
included), the statements must not grow with the batch, and two instances scoring one
person through two of their keys must not lose an update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import delete, select
from sqlalchemy.event import listen, remove
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.config import Scoring
from leadflow.db.engine import session_factory
from leadflow.db.tables import outbox
from leadflow.events import Envelope, LeadMerged, LeadReceived, LeadScored
from leadflow.outbox import enqueue_many
from leadflow_intake.canonical import LeadBody, to_event
from leadflow_scoring import aggregate, service
from leadflow_scoring.memory import InMemoryProfileStore
from leadflow_scoring.replay import Replay
from leadflow_scoring.repository import SqlProfileStore
from leadflow_scoring.store import Claims, People
from leadflow_scoring.tables import lead_identifiers, lead_profiles, lead_touches
from tests.fixtures.keys import KEYS, lead_key_for
from tests.unit.scoring.test_replay import EXAMPLE

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=2)
MODEL = EXAMPLE.scoring
X, Y, Z = "x@chain.example", "+16135559999", "z@chain.example"


def received(envelope: Envelope) -> LeadReceived:
    """The event's `lead.received`."""
    assert isinstance(envelope.data, LeadReceived)
    return envelope.data


def event(lead: dict[str, Any], activity: str, hours: float, delivery: str) -> Envelope:
    """The `lead.received` the intake publishes for a webhook, `hours` after T0."""
    body = LeadBody.model_validate({"event": "lead", "activity": activity, "lead": lead})
    return to_event(
        body, keys=KEYS, source="web", delivery_id=delivery, now=T0 + timedelta(hours=hours)
    )


def email(n: int) -> dict[str, Any]:
    """A person's email alone."""
    return {"email": f"buyer{n}@northwind.example"}


def phone(n: int) -> dict[str, Any]:
    """A person's phone alone."""
    return {"phone": f"+1613555{n:04d}"}


def full(n: int) -> dict[str, Any]:
    """A form lead with email, phone and the details that give fit points."""
    return {
        **email(n),
        **phone(n),
        "job_title": "Operations Manager",
        "company": {"size": 150, "industry": "logistics"},
        "country": "CA",
    }


def scenario() -> list[list[Envelope]]:
    """Batches with every way events of one batch meet: see each line."""
    stored_before = [
        event(email(3), "webinar", 0, "c-email"),
        event(email(4), "page_visit", 0, "d-email"),
        event(phone(4), "demo_request", 1, "d-phone"),
        event({"email": X}, "webinar", 0, "ch-x"),
        event({"phone": Y}, "webinar", 1, "ch-y"),
        event({"email": Z}, "demo_request", 2, "ch-z"),
    ]
    one_batch = [
        # A new person twice: one profile, the second event sees the first.
        event(email(1), "pricing_page", 2, "a-1"),
        event({**email(1), "job_title": "Head of Operations"}, "free_trial", 3, "a-2"),
        # Two new profiles of one person, then the event that links them.
        event(phone(2), "demo_request", 2, "b-phone"),
        event(email(2), "webinar", 3, "b-email"),
        event(full(2), "webinar", 4, "b-full"),
        # A stored profile and a new one, linked in the batch.
        event(phone(3), "inbound_call", 2, "c-phone"),
        event(full(3), "pricing_page", 1, "c-full"),  # out of order: older than c-phone
        # Two stored profiles linked (the qualified one survives), then scored again.
        event(full(4), "webinar", 5, "d-full"),
        event(email(4), "pricing_page", 6, "d-again"),
        # A chain: Y merges into X, then X (with Y) into Z, which qualified first.
        event({"email": X, "phone": Y}, "webinar", 3, "ch-xy"),
        event({"email": Z, "phone": Y}, "webinar", 4, "ch-zy"),
    ]
    redelivered = [one_batch[0], event(email(1), "webinar", 7, "a-3")]
    return [stored_before, one_batch, redelivered]


async def apply(
    engine: AsyncEngine, batch: Sequence[Envelope], model: Scoring = MODEL
) -> list[LeadScored]:
    """Score a batch in one transaction, as the consumer does."""
    async with session_factory(engine)() as session, session.begin():
        return await service.score_events(session, batch, model, KEYS, NOW)


async def tables(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    """Every row scoring wrote (touch ids aside), in a stable order."""
    async with engine.connect() as conn:
        profiles = await conn.execute(select(lead_profiles).order_by(lead_profiles.c.lead_key))
        identifiers = await conn.execute(
            select(lead_identifiers).order_by(lead_identifiers.c.identifier)
        )
        touches = await conn.execute(
            select(*[c for c in lead_touches.c if c.name != "id"]).order_by(lead_touches.c.event_id)
        )
        sent = await conn.execute(select(outbox.c.key, outbox.c.payload).order_by(outbox.c.id))
        return {
            "profiles": [dict(r._mapping) for r in profiles],
            "identifiers": [dict(r._mapping) for r in identifiers],
            "touches": [dict(r._mapping) for r in touches],
            "outbox": [{"key": r.key, "payload": bytes(r.payload)} for r in sent],
        }


async def wipe(engine: AsyncEngine) -> None:
    """Remove what scoring wrote."""
    async with engine.begin() as conn:
        for table in (lead_profiles, lead_identifiers, lead_touches, outbox):
            await conn.execute(delete(table))


async def test_a_batch_writes_what_its_events_write_one_by_one(engine: AsyncEngine) -> None:
    batches = scenario()
    alone = [s for batch in batches for e in batch for s in await apply(engine, [e])]
    expected = await tables(engine)
    await wipe(engine)

    together = [s for batch in batches for s in await apply(engine, batch)]

    assert together == alone
    assert await tables(engine) == expected
    replay = Replay(MODEL, KEYS)
    assert [replay.apply(received(e), e.id, NOW) for b in batches for e in b] == alone
    store = InMemoryProfileStore()
    in_memory = [e for b in batches for e in await service.score_batch(store, b, MODEL, KEYS, NOW)]
    assert service.scores(in_memory) == alone
    # The merges published beside the scores: one per event that gave a person a new key,
    # in the outbox with the scores, bound for leads.activity under the survivor's key.
    merges = [e.data for e in in_memory if isinstance(e.data, LeadMerged)]
    outbox_events = [(r["key"], Envelope.from_bytes(r["payload"])) for r in expected["outbox"]]
    published = [(key, e.data) for key, e in outbox_events if isinstance(e.data, LeadMerged)]
    assert [m for _, m in published] == merges
    assert all(key == m.survivor for key, m in published)
    chain = sorted([lead_key_for(X), lead_key_for(Y)])
    assert (lead_key_for(Z), chain) in [(m.survivor, m.absorbed) for m in merges]
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.topic, outbox.c.payload))
        topics = {
            r.topic for r in rows if Envelope.from_bytes(bytes(r.payload)).type == "lead.merged"
        }
    assert topics == {"leads.activity"}
    # What the batch did: one profile per person, merges reported on the surviving key.
    scored = {
        received(e).delivery_id: s
        for e, s in zip(batches[1], together[len(batches[0]) :], strict=False)
    }
    assert scored["a-2"].lead_key == scored["a-1"].lead_key
    assert scored["a-2"].touches == 2
    assert scored["b-full"].merged_from == [scored["b-email"].lead_key]
    assert scored["b-full"].lead_key == scored["b-phone"].lead_key
    assert scored["ch-zy"].lead_key == lead_key_for(Z)
    assert scored["ch-zy"].merged_from == sorted([lead_key_for(X), lead_key_for(Y)])
    assert len(scored["ch-zy"].identifiers) == 3
    assert [s.newly_qualified for s in together].count(True) == len(
        {s.lead_key for s in together if s.qualified}
    )
    merged = {p["lead_key"]: p["merged_into"] for p in expected["profiles"]}
    assert merged[lead_key_for(Y)] == lead_key_for(Z)
    assert len([key for key, into in merged.items() if into is None]) == 5


async def test_a_person_folded_again_in_a_batch_that_merges_them(engine: AsyncEngine) -> None:
    """After the engagement rules change, a person with tallied touches is folded again from
    every touch, those of a profile the batch merges into them included."""
    many = aggregate.RECENT_TOUCHES + 10
    history = [
        event(email(7), ["page_visit", "pricing_page", "webinar"][i % 3], i, f"h{i}")
        for i in range(many)
    ]
    before = [
        history,
        [event(phone(7), "inbound_call", 1, "p7"), event(email(8), "webinar", 1, "o")],
    ]
    rules = [
        r.model_copy(update={"points": 7}) if r.name == "pricing-page" else r for r in MODEL.rules
    ]
    changed = MODEL.model_copy(update={"rules": rules})
    batch = [
        event(email(8), "pricing_page", many + 1, "o-2"),
        event(full(7), "pricing_page", many + 2, "link"),
        event(phone(7), "webinar", many + 3, "after"),
    ]
    for b in before:
        await apply(engine, b)
    folds = REGISTRY.get_sample_value("leadflow_scoring_aggregates_refolded_total") or 0.0
    alone = [s for e in batch for s in await apply(engine, [e], changed)]
    expected = await tables(engine)
    await wipe(engine)
    for b in before:
        await apply(engine, b)

    together = await apply(engine, batch, changed)

    assert together == alone
    assert await tables(engine) == expected
    assert REGISTRY.get_sample_value("leadflow_scoring_aggregates_refolded_total") == folds + 2
    assert together[1].touches == many + 2
    assert together[1].merged_from


@contextmanager
def counted(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements sent through `engine` meanwhile (a many-row statement once)."""
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        remove(engine.sync_engine, "before_cursor_execute", count)


async def statements(engine: AsyncEngine, batch: list[Envelope]) -> int:
    """How many statements scoring a batch sends."""
    with counted(engine) as sent:
        await apply(engine, batch)
    return len(sent)


async def test_statements_do_not_grow_with_the_batch(engine: AsyncEngine) -> None:
    def people(start: int, n: int, lead: Any, activity: str, tag: str) -> list[Envelope]:
        return [event(lead(start + i), activity, 1, f"{tag}{start + i}") for i in range(n)]

    # New people; returning ones (one profile each); linking events (a merge each).
    counts = {}
    for size, start in ((1, 1000), (100, 2000)):
        new = await statements(engine, people(start, size, email, "webinar", "n"))
        await apply(engine, people(start, size, phone, "page_visit", "p"))
        returning = await statements(engine, people(start, size, email, "pricing_page", "r"))
        merging = await statements(engine, people(start, size, full, "free_trial", "m"))
        counts[size] = (new, returning, merging)

    for one, hundred in zip(counts[1], counts[100], strict=True):
        assert hundred <= one + 2, counts
    async with engine.connect() as conn:
        merged = await conn.execute(
            select(lead_profiles.c.lead_key).where(lead_profiles.c.merged_into.is_not(None))
        )
        assert len(merged.all()) == 101


class SlowStore(SqlProfileStore):
    """The database store, pausing after it loaded a batch: the other instance may load then."""

    async def load(self, claims: Claims, now: datetime) -> People:
        people = await super().load(claims, now)
        await asyncio.sleep(0.3)
        return people


async def apply_slowly(engine: AsyncEngine, batch: Sequence[Envelope]) -> None:
    """Score a batch as the consumer does, with a pause between loading and saving."""
    async with session_factory(engine)() as session, session.begin():
        emitted = await service.score_batch(SlowStore(session), batch, MODEL, KEYS, NOW)
        await enqueue_many(session, service.PRODUCER, emitted, NOW)


async def test_two_instances_scoring_people_through_two_keys_lose_nothing(
    engine: AsyncEngine,
) -> None:
    """Two consumers, each a batch about the same people through another of their keys.

    Without the locks on live profiles, both would load the people before either saved,
    and the second to save would drop the first one's touches."""
    people = range(30, 40)
    await apply(engine, [event(full(n), "form_fill", 0, f"f{n}") for n in people])
    by_email = [event(email(n), "free_trial", 1, f"e{n}") for n in people]
    by_phone = [event(phone(n), "free_trial", 1, f"p{n}") for n in reversed(people)]

    await asyncio.gather(apply_slowly(engine, by_email), apply_slowly(engine, by_phone))

    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))
        scored = [Envelope.from_bytes(bytes(r.payload)).data for r in rows]
        live = await conn.execute(
            select(lead_profiles.c.lead_key, lead_profiles.c.qualified_at).where(
                lead_profiles.c.merged_into.is_(None)
            )
        )
        profiles = live.all()
    # Each person's email and phone were linked by their first form: nothing new after.
    merges = [s for s in scored if isinstance(s, LeadMerged)]
    assert sorted(m.survivor for m in merges) == sorted(e.subject for e in by_email)
    assert all(isinstance(s, LeadScored) for s in scored[2 * len(people) :])
    newly = sorted(s.lead_key for s in scored if isinstance(s, LeadScored) and s.newly_qualified)
    assert newly == sorted(e.subject for e in by_email)
    assert len(profiles) == len(people)
    final = {s.lead_key: s for s in scored if isinstance(s, LeadScored)}
    assert {final[e.subject].touches for e in by_email} == {3}
