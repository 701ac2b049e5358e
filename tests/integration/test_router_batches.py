"""Router batches on SQLite and PostgreSQL: a batch decides as its events one at a time do, in
the same few statements for one lead or a hundred; routers lock only the pools they route to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import LeadflowConfig
from leadflow.db.engine import create_engine, session_factory
from leadflow.db.tables import notifications, outbox, processed_events
from leadflow.events import (
    Company,
    Envelope,
    Lead,
    LeadActivity,
    SlaAlert,
    Tier,
    derived_event_id,
    new_event,
)
from leadflow.metrics import consumer_metrics
from leadflow.processing import EventProcessor
from leadflow.settings import Settings
from leadflow_router import service
from leadflow_router.domain import Decision
from leadflow_router.tables import (
    assignments,
    round_robin_pointers,
    routed_leads,
    routing_decisions,
)
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.locks import waiting_for_pool
from tests.fixtures.routing import make_config, scored

# Thursday 10:00 UTC.
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
BIG = Company(name="Bigco", size=5000)
SMALL = Company(name="Smallco", size=10)
ROUTER_TABLES = (
    assignments,
    routing_decisions,
    round_robin_pointers,
    routed_leads,
    outbox,
    notifications,
    processed_events,
)


def config() -> LeadflowConfig:
    """Enterprise shares by round robin; smb by least load, each rep with one open lead at most."""
    return make_config(
        reps={"dev": {"max_open": 1}, "emma": {"max_open": 1}},
        teams={"smb": {"distribution": "least_loaded"}},
    )


def score(lead_key: str, company: Company, event_id: str | None = None) -> Envelope:
    data = scored(Lead(company=company, email=f"{lead_key}@example.com"), lead_key=lead_key, at=T0)
    return new_event("lead.scored", data, source="/test", time=T0, event_id=event_id or lead_key)


def outcome(lead_key: str, kind: str) -> Envelope:
    data = LeadActivity(lead_key=lead_key, activity=kind, occurred_at=T0, source="crm")
    return new_event(f"lead.{kind}", data, source="/test", time=T0, event_id=f"{kind}-{lead_key}")


def escalation(lead_key: str, rep_id: str) -> Envelope:
    """The SLA monitor escalating the first assignment of the lead scored by event `lead_key`."""
    alert = SlaAlert(
        lead_key=lead_key,
        assignment_id=derived_event_id("assignment", lead_key),
        stage="escalated",
        policy="hot",
        rep_id=rep_id,
        rep_name=rep_id,
        team="enterprise",
        manager_email="grace@example.com",
        assigned_at=T0,
        due_at=T0,
        fired_at=T0,
        late_by_s=60,
        message="escalated",
    )
    return new_event("sla.escalated", alert, source="/test", time=T0, event_id=f"esc-{lead_key}")


# Each event sees the ones before it: turns, caps freed by outcomes, leads assigned earlier.
MIXED = [
    score("e0", BIG),  # ana, turn 1
    score("s0", SMALL),  # dev (least loaded; ties go in rotation order)
    score("e1", BIG),  # ben, turn 2
    score("s1", SMALL),  # emma
    score("s2", SMALL),  # queued: dev and emma each hold their one open lead
    score("e0", BIG, event_id="e0-again"),  # already routed: nothing
    outcome("s0", "rejected"),  # frees dev
    score("s3", SMALL),  # dev
    escalation("e0", "ana"),  # chloe, turn 3 (ana missed it)
    outcome("e1", "converted"),
    score("e2", BIG),  # ana, turn 4
    outcome("s1", "won"),  # frees emma
    score("s4", SMALL),  # emma
]


async def apply(engine: AsyncEngine, events: Sequence[Envelope]) -> list[Decision | None]:
    async with session_factory(engine)() as session, session.begin():
        return await service.apply_events(session, events, config(), T0)


async def snapshot(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    """What routing wrote, in the order it was written (row ids left out)."""
    tables = ROUTER_TABLES[:-1]
    found: dict[str, list[dict[str, Any]]] = {}
    async with engine.connect() as conn:
        for table in tables:
            order = table.c.id if "id" in table.c else next(iter(table.primary_key))
            rows = await conn.execute(select(table).order_by(order))
            found[table.name] = [
                {k: v for k, v in r._mapping.items() if k != "id"} for r in rows.all()
            ]
    return found


async def clear(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        for table in ROUTER_TABLES:
            await session.execute(delete(table))


async def test_a_batch_decides_as_its_events_one_at_a_time(engine: AsyncEngine) -> None:
    batched = await apply(engine, MIXED)
    together = await snapshot(engine)
    await clear(engine)
    alone = [(await apply(engine, [e]))[0] for e in MIXED]

    assert batched == alone
    assert together == await snapshot(engine)
    rows = together["assignments"]
    assert [(a["lead_key"], a["seq"], a["rep_id"], a["turn"]) for a in rows] == [
        ("e0", 1, "ana", 1),
        ("s0", 1, "dev", 1),
        ("e1", 1, "ben", 2),
        ("s1", 1, "emma", 2),
        ("s2", 1, None, None),
        ("s3", 1, "dev", 3),
        ("e0", 2, "chloe", 3),
        ("e2", 1, "ana", 4),
        ("s4", 1, "emma", 4),
    ]
    closed = {(a["lead_key"], a["seq"]): a["close_reason"] for a in rows if a["closed_at"]}
    assert closed == {
        ("e0", 1): "escalated",
        ("s0", 1): "rejected",
        ("e1", 1): "converted",
        ("s1", 1): "won",
    }
    converted = {(a["lead_key"], a["seq"]) for a in rows if a["converted_at"] is not None}
    assert converted == {("e1", 1), ("s1", 1)}
    assert [e["key"] for e in together["outbox"]] == [
        "e0", "s0", "e1", "s1", "s2", "s3", "e0", "e2", "s4"
    ]  # fmt: skip
    assert together["round_robin_pointers"] == [
        {"team": "enterprise", "last_rep_id": "ana", "turns": 4},
        {"team": "smb", "last_rep_id": "emma", "turns": 4},
    ]


async def test_a_batch_closes_and_converts_stored_assignments_once(engine: AsyncEngine) -> None:
    await apply(engine, [score("e0", BIG), score("e1", BIG)])
    # An outcome reported twice, and a later conversion of a closed assignment.
    await apply(engine, [outcome("e0", "rejected"), outcome("e0", "lost"), outcome("e1", "won")])
    await apply(engine, [outcome("e0", "converted")])

    rows = (await snapshot(engine))["assignments"]
    found = [(a["lead_key"], a["close_reason"], a["converted_at"]) for a in rows]
    assert found == [("e0", "rejected", T0), ("e1", "won", T0)]


def processor(engine: AsyncEngine, routing: LeadflowConfig | None = None) -> EventProcessor:
    """The router's consumer as it runs in the service: inbox, batch handler, one commit."""

    async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        await service.apply_events(session, events, routing or config(), now)

    return EventProcessor(
        consumer="leadflow-router",
        engine=engine,
        handlers=dict.fromkeys(("lead.scored", "sla.escalated", *service.OUTCOMES), handle),
        dead_letters=InMemoryBus(),
        settings=Settings(),
        metrics=consumer_metrics("router_batches_test"),
        clock=lambda: T0,
    )


async def statements(
    engine: AsyncEngine, events: Sequence[Envelope], routing: LeadflowConfig | None = None
) -> int:
    """How many statements the router's consumer sends for one batch of `events`."""
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    records = [
        Record("leads.scored", 0, i, e.subject.encode(), e.to_bytes()) for i, e in enumerate(events)
    ]
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        await processor(engine, routing).process(records)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    return len(sent)


async def test_statements_per_batch_do_not_grow_with_the_batch(engine: AsyncEngine) -> None:
    await statements(engine, [score("warm-e", BIG), score("warm-s", SMALL)])
    one = await statements(engine, [score("one", BIG)])
    hundred = await statements(
        engine,
        [score(f"big-{i}", BIG) if i % 2 else score(f"small-{i}", SMALL) for i in range(100)],
    )
    # 14 before people were locked and looked up in the aliases (PostgreSQL: 2 more), one
    # more for the erasure records of the batch's keys, one for the batch positions taken
    # at the batch's instant.
    assert one <= 18
    assert hundred <= one + 2
    async with engine.connect() as conn:
        count = await conn.execute(
            select(assignments.c.id).where(assignments.c.lead_key.like("big-%"))
        )
        assert len(count.all()) == 50

    # Scores that call for no routing cost the inbox, the erasure records and nothing else.
    watched = [
        new_event("lead.scored", scored(tier="watch", lead_key=f"w{i}"), source="/t", time=T0)
        for i in range(100)
    ]
    assert await statements(engine, watched) <= 3  # SQLite's BEGIN IMMEDIATE is one

    # Escalations and outcomes go through the same batch: still the same few statements.
    big = [f"big-{i}" for i in range(1, 100, 2)]
    mixed = [escalation(k, "x") for k in big[:30]] + [outcome(k, "won") for k in big[30:]]
    assert await statements(engine, [*mixed, score("last", BIG)]) <= one + 3


async def test_watch_list_routing_and_upgrades_cost_the_same_few_statements(
    engine: AsyncEngine,
) -> None:
    """Watch-tier scores load their people's routed leads to tell a first entry, a re-score
    and an upgrade apart: one statement for a batch of any size."""
    watching = make_config(routing={"tiers": ["mql", "watch"]})

    def tiered(key: str, tier: Tier, n: int) -> Envelope:
        data = scored(Lead(company=BIG), lead_key=key, tier=tier, at=T0)
        return new_event("lead.scored", data, source="/t", time=T0, event_id=f"{key}-{n}")

    async def counted(events: list[Envelope]) -> int:
        return await statements(engine, events, watching)

    await counted([tiered("warm", "watch", 0)])
    cost: dict[str, list[int]] = {}
    for size in (1, 100):
        keys = [f"w{size}-{i}" for i in range(size)]
        cost[f"watch {size}"] = [await counted([tiered(k, "watch", 1) for k in keys])]
        cost[f"again {size}"] = [await counted([tiered(k, "watch", 2) for k in keys])]
        cost[f"mql {size}"] = [await counted([tiered(k, "mql", 3) for k in keys])]
    assert cost["watch 1"] == cost["watch 100"], cost
    assert cost["again 1"] == cost["again 100"], cost
    # An upgrade closes the watch assignments and replaces the routed leads: three more.
    assert cost["mql 1"] == cost["mql 100"], cost
    assert cost["mql 1"][0] <= cost["watch 1"][0] + 3, cost
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(assignments.c.close_reason).where(assignments.c.lead_key.like("w100-%"))
        )
        reasons = [r.close_reason for r in rows]
    assert sorted(reasons, key=str) == [None] * 100 + ["upgraded"] * 100


async def test_sticky_rules_cost_one_statement_more_for_any_batch(engine: AsyncEngine) -> None:
    """Who holds open leads of the batch's companies is one read, whatever their number;
    a configuration without sticky rules does not make it."""
    sticky = make_config(
        rules=[
            {
                "name": "enterprise-size",
                "team": "enterprise",
                "sticky": True,
                "when": [{"field": "lead.company.size", "gte": 1000}],
            }
        ]
    )

    def company(key: str, n: int) -> Envelope:
        lead = Lead(company=Company(size=5000, domain=f"c{n}.example"))
        return new_event("lead.scored", scored(lead, lead_key=key, at=T0), source="/t", time=T0)

    await statements(engine, [company("warm", 0)], sticky)
    one = await statements(engine, [company("one", 1)], sticky)
    # A hundred leads of fifty companies, half of which already have an owner.
    hundred = await statements(engine, [company(f"many-{i}", i % 50) for i in range(100)], sticky)
    plain = await statements(engine, [company("plain", 1)])

    assert hundred == one
    assert one == plain + 1
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(routing_decisions.c.method).where(routing_decisions.c.lead_key.like("many-%"))
        )
        methods = sorted(str(m) for m in rows.scalars())
    # c2..c49: the first lead takes a turn, the second follows it; c0's and c1's both
    # follow the rep who already holds one.
    assert methods.count("sticky") == 52, methods


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A migrated PostgreSQL database (the only one where routers lock pools of their own)."""
    yield from migrated_database_url("postgres", tmp_path)


@pytest.fixture
async def postgres_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    yield engine
    await engine.dispose()


@pytest.mark.postgres
async def test_routers_of_different_pools_never_wait_for_each_other(
    postgres_url: str, postgres_engine: AsyncEngine
) -> None:
    sessions = session_factory(postgres_engine)
    async with asyncio.timeout(60):  # a router waiting for the wrong lock would hang here
        async with sessions() as first, first.begin():
            [held] = await service.apply_events(first, [score("e0", BIG)], config(), T0)
            assert held is not None
            assert held.rep_id == "ana"  # team:enterprise is held until this transaction ends

            # A second router routes to smb meanwhile, and commits.
            [small] = await apply(postgres_engine, [score("s0", SMALL)])
            assert small is not None
            assert (small.team, small.rep_id) == ("smb", "dev")

            # One routing to enterprise waits for the first to end.
            second = asyncio.create_task(apply(postgres_engine, [score("e1", BIG)]))
            await waiting_for_pool(postgres_url, "team:enterprise")
            assert not second.done()
        [after] = await second

    assert after is not None
    assert (after.rep_id, after.rule) == ("ben", "enterprise-size")  # it saw the first turn
    rows = (await snapshot(postgres_engine))["assignments"]
    assert sorted((a["team"], a["turn"], a["rep_id"]) for a in rows) == [
        ("enterprise", 1, "ana"),
        ("enterprise", 2, "ben"),
        ("smb", 1, "dev"),
    ]
