"""The general pool on SQLite and PostgreSQL: what waits in a pool through the API, claims
with reps' own tokens (every refusal), two claimers at once of whom exactly one wins, and
the pool timer acting once on a lead nobody claimed even when two routers run it at once.

The same use cases run in memory in `tests/unit/router/test_general_pool.py`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.auth import Authenticator, TokenEntry, TokenSet, install, token_hash
from leadflow.config import LeadflowConfig
from leadflow.db.engine import session_factory
from leadflow.db.tables import notifications
from leadflow.events import Company, Envelope, Lead, LeadAssigned, new_event
from leadflow.problems import install_problem_handlers
from leadflow.runtime import get_runtime
from leadflow_router import api, claims, pool_api, service
from leadflow_router.book_repository import SqlRoutingStore
from leadflow_router.claims import ClaimRefused
from leadflow_router.memory import InMemoryRoutingStore
from leadflow_router.store import RoutingStore
from leadflow_router.tables import admin_audit, assignments, pooled_leads
from tests.fixtures.routing import make_config, scored
from tests.integration.test_routing_service import emitted, rows

CONFIG = make_config(teams={"enterprise": {"pool": {"unclaimed_after": "15m"}}})
BIG = Lead(company=Company(size=5000, name="Northwind"))


def _token(name: str, scopes: tuple[Any, ...], **extra: Any) -> tuple[str, TokenEntry]:
    token = f"lf_{name}-" + "t" * 30
    return token, TokenEntry(name=name, sha256=token_hash(token), scopes=scopes, **extra)


TOKENS = {
    "ana": _token("ana", ("leads:claim",), rep="ana"),
    "ben": _token("ben", ("leads:claim",), rep="ben"),
    "dev": _token("dev", ("leads:claim",), rep="dev"),
    "kiosk": _token("kiosk", ("leads:claim",)),  # claims, but speaks for no rep
    "manager": _token("manager", ("leads:read",), teams=("enterprise",)),
    "smb-manager": _token("smb-manager", ("leads:read",), teams=("smb",)),
}


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[name][0]}"}


def app_for(engine: AsyncEngine, config: LeadflowConfig) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install(app, Authenticator(TokenSet(entry for _, entry in TOKENS.values())))
    app.include_router(pool_api.router)
    app.include_router(api.router)
    runtime = SimpleNamespace(
        settings=SimpleNamespace(app=config), sessions=session_factory(engine)
    )
    app.dependency_overrides[get_runtime] = lambda: runtime
    return app


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_for(engine, CONFIG))
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        yield client


def now() -> datetime:
    return datetime.now(UTC)


def scored_event(key: str, at: datetime) -> Envelope:
    return new_event(
        "lead.scored",
        scored(BIG, lead_key=key, at=at),
        source="/t",
        time=at,
        event_id=str(uuid.uuid4()),
    )


async def pool_lead(engine: AsyncEngine, key: str, at: datetime, config: LeadflowConfig) -> None:
    async with session_factory(engine)() as session, session.begin():
        await service.apply_events(session, [scored_event(key, at)], config, at)


async def test_a_rep_claims_a_lead_from_the_pool_and_the_second_claimer_is_refused(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    await pool_lead(engine, "lk_first", now() - timedelta(minutes=9), CONFIG)
    await pool_lead(engine, "lk_second", now() - timedelta(minutes=2), CONFIG)

    listed = await client.get("/v1/pools/enterprise", headers=bearer("manager"))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert (body["team"], body["sla_starts"], body["unclaimed_after_s"], body["fallback"]) == (
        "enterprise",
        "claim",
        900.0,
        "distribute",
    )
    assert [one["lead_key"] for one in body["leads"]] == ["lk_first", "lk_second"]
    first = body["leads"][0]
    assert 9 * 60 <= first["waiting_s"] < 10 * 60
    assert (first["tier"], first["company"], first["unclaimed"]) == ("mql", "Northwind", False)

    taken = await client.post("/v1/leads/lk_first/claim", headers=bearer("ben"))
    assert taken.status_code == 200, taken.text
    assert {k: taken.json()[k] for k in ("lead_key", "rep_id", "team", "seq")} == {
        "lead_key": "lk_first",
        "rep_id": "ben",
        "team": "enterprise",
        "seq": 2,
    }

    second = await client.post("/v1/leads/lk_first/claim", headers=bearer("ana"))
    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["type"].endswith("/already-claimed")
    assert "already claimed by Ben Carter (ben)" in second.json()["detail"]

    why = await client.get("/v1/leads/lk_second/routing", headers=bearer("manager"))
    assert why.json()["summary"].startswith(
        "Waiting in team enterprise's pool for a rep to claim it: rule 'enterprise-size'"
    )
    assert why.json()["decisions"][0]["method"] == "pool"
    left = await client.get("/v1/pools/enterprise", headers=bearer("manager"))
    assert [one["lead_key"] for one in left.json()["leads"]] == ["lk_second"]
    events = [e for e in await emitted(engine) if e.subject == "lk_first"]
    assert [e.type for e in events] == ["lead.pooled", "lead.assigned"]
    assert isinstance(events[1].data, LeadAssigned)
    assert events[1].data.rep_id == "ben"
    assert events[1].data.reason.startswith("claimed by Ben Carter from team 'enterprise''s pool")
    [audit] = await rows(engine, admin_audit)
    assert (audit["actor"], audit["action"], audit["rep_id"]) == ("ben", "lead.claim", "ben")
    assert audit["before"]["lead_key"] == "lk_first"


@pytest.mark.parametrize(
    ("path", "token", "status", "problem"),
    [
        ("/v1/leads/lk_first/claim", "dev", 403, "not-in-team"),
        ("/v1/leads/lk_first/claim", "kiosk", 403, "not-a-rep"),
        ("/v1/leads/lk_first/claim", "manager", 403, "missing-scope"),
        ("/v1/leads/lk_nobody/claim", "ana", 404, "not-pooled"),
    ],
)
async def test_claims_that_are_refused_change_nothing(
    engine: AsyncEngine, client: httpx.AsyncClient, path: str, token: str, status: int, problem: str
) -> None:
    await pool_lead(engine, "lk_first", now(), CONFIG)
    before = (await rows(engine, assignments), len(await emitted(engine)))

    refused = await client.post(path, headers=bearer(token))

    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith(f"/{problem}")
    assert refused.json()["detail"]
    assert (await rows(engine, assignments), len(await emitted(engine))) == before


async def test_the_pool_is_shown_only_to_callers_who_see_the_team(
    client: httpx.AsyncClient,
) -> None:
    hidden = await client.get("/v1/pools/enterprise", headers=bearer("smb-manager"))
    assert hidden.status_code == 403
    assert hidden.json()["type"].endswith("/team-not-visible")
    assert (await client.get("/v1/pools/enterprise", headers=bearer("ana"))).status_code == 403
    assert (await client.get("/v1/pools/enterprise")).status_code == 401
    unknown = await client.get("/v1/pools/nowhere", headers=bearer("manager"))
    assert unknown.status_code == 404
    assert "No team 'nowhere'" in unknown.json()["detail"]
    empty = await client.get("/v1/pools/smb", headers=bearer("smb-manager"))
    assert (empty.status_code, empty.json()["leads"], empty.json()["sla_starts"]) == (
        200,
        [],
        None,
    )


async def test_two_reps_claiming_at_once_exactly_one_wins(engine: AsyncEngine) -> None:
    keys = [f"lk_race_{i}" for i in range(5)]
    for key in keys:
        await pool_lead(engine, key, now(), CONFIG)
    sessions = session_factory(engine)

    async def claim(key: str, rep_id: str) -> str:
        try:
            async with sessions() as session, session.begin():
                await claims.claim_lead(SqlRoutingStore(session), CONFIG, key, rep_id, now())
        except ClaimRefused as refused:
            return refused.code
        return rep_id

    results = await asyncio.gather(*(claim(k, r) for k in keys for r in ("ana", "ben")))

    for key, (a, b) in zip(keys, zip(results[::2], results[1::2], strict=True), strict=True):
        assert sorted([a, b]) in (["already_claimed", "ana"], ["already_claimed", "ben"]), key
    held = [r for r in await rows(engine, assignments) if r["status"] == "assigned"]
    assert sorted(r["lead_key"] for r in held) == keys  # one assignment per lead
    assert len([e for e in await emitted(engine) if e.type == "lead.assigned"]) == 5


async def test_the_conditional_claim_lets_one_of_two_open_transactions_through(
    engine: AsyncEngine,
) -> None:
    """The step two claimers race on, without the people's locks: the second transaction's
    update waits for the first and then finds the entry closed."""
    await pool_lead(engine, "lk_cond", now(), CONFIG)
    [entry] = await rows(engine, assignments)
    sessions = session_factory(engine)
    async with sessions() as first, first.begin():
        assert await SqlRoutingStore(first).claim(entry["assignment_id"], now())

        async def second() -> bool:
            async with sessions() as session, session.begin():
                return await SqlRoutingStore(session).claim(entry["assignment_id"], now())

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not racing.done()  # it waits on the first transaction's row (or write lock)
    assert await racing is False
    [closed] = await rows(engine, assignments)
    assert closed["close_reason"] == "claimed"


async def test_two_routers_act_once_on_a_lead_nobody_claimed(engine: AsyncEngine) -> None:
    config = make_config(
        teams={"enterprise": {"pool": {"unclaimed_after": "15m", "sla_starts": "arrival"}}}
    )
    arrived = now() - timedelta(minutes=20)
    await pool_lead(engine, "lk_late", arrived, config)
    await pool_lead(engine, "lk_fresh", now() - timedelta(minutes=1), config)
    sessions = session_factory(engine)

    async def tick() -> claims.Unclaimed:
        async with sessions() as session, session.begin():
            return await claims.act_on_unclaimed(SqlRoutingStore(session), config, now())

    done = await asyncio.gather(tick(), tick())

    assert sorted(len(one.acted_on) for one in done) == [0, 1]
    assert sum(one.distributed for one in done) == 1
    late = [r for r in await rows(engine, assignments) if r["lead_key"] == "lk_late"]
    assert [(r["seq"], r["status"], r["rep_id"], r["close_reason"]) for r in late] == [
        (1, "pooled", None, "unclaimed"),
        (2, "assigned", "ana", None),
    ]
    [assigned] = [e for e in await emitted(engine) if e.type == "lead.assigned"]
    assert isinstance(assigned.data, LeadAssigned)
    assert assigned.data.clock_from is not None
    assert abs((assigned.data.clock_from - arrived).total_seconds()) < 1
    async with engine.connect() as conn:
        manager = (
            await conn.execute(
                select(notifications.c.subject).where(notifications.c.target == "grace@example.com")
            )
        ).all()
        marks = (await conn.execute(select(pooled_leads.c.alerted_at))).scalars().all()
    assert [m.subject for m in manager] == ["Lead unclaimed in the enterprise pool for 20 min"]
    assert sorted(m is not None for m in marks) == [False, True]  # the fresh one still waits
    assert (await tick()).acted_on == []


class _Crash(Exception):
    """The process dying after the use case and before the commit."""


async def test_a_claim_or_a_fallback_that_never_commits_leaves_the_lead_waiting(
    engine: AsyncEngine,
) -> None:
    """A crash between the claim (or the timer's fallback) and its commit loses nothing and
    duplicates nothing: the entry, its assignment, outbox rows and notifications are one
    transaction, so the lead still waits and the retry acts once."""
    await pool_lead(engine, "lk_crash", now() - timedelta(minutes=20), CONFIG)
    sessions = session_factory(engine)
    before = (await rows(engine, assignments), len(await emitted(engine)))

    async def claim_then_crash() -> None:
        async with sessions() as session, session.begin():
            await claims.claim_lead(SqlRoutingStore(session), CONFIG, "lk_crash", "ana", now())
            raise _Crash

    async def fall_back_then_crash() -> None:
        async with sessions() as session, session.begin():
            done = await claims.act_on_unclaimed(SqlRoutingStore(session), CONFIG, now())
            assert done.distributed == 1
            raise _Crash

    with pytest.raises(_Crash):
        await claim_then_crash()
    with pytest.raises(_Crash):
        await fall_back_then_crash()
    assert (await rows(engine, assignments), len(await emitted(engine))) == before
    async with engine.connect() as conn:
        assert (await conn.execute(select(pooled_leads.c.alerted_at))).scalar_one() is None

    async with sessions() as session, session.begin():
        taken = await claims.claim_lead(SqlRoutingStore(session), CONFIG, "lk_crash", "ana", now())
    async with sessions() as session, session.begin():
        late = await claims.act_on_unclaimed(SqlRoutingStore(session), CONFIG, now())
    assert late.acted_on == []  # claimed before the timer came back: nothing to act on
    held = [(r["seq"], r["rep_id"], r["close_reason"]) for r in await rows(engine, assignments)]
    assert held == [(1, None, "claimed"), (2, "ana", None)]
    assert [e.type for e in await emitted(engine)] == ["lead.pooled", "lead.assigned"]
    assert taken.assignment.seq == 2


async def test_the_pool_leaves_the_same_rows_and_events_on_the_database_as_in_memory(
    engine: AsyncEngine,
) -> None:
    """Routing into the pool, a claim, a refused claim and the timer's fallback, written
    once over `RoutingStore`: the database and the in-memory store end alike."""
    start = now() - timedelta(hours=1)
    at = [start + timedelta(minutes=m) for m in (0, 1, 2, 3, 20, 21)]
    scores = [scored_event(f"lk_same_{i}", at[i]) for i in range(3)]
    memory = InMemoryRoutingStore()
    sessions = session_factory(engine)

    async def on(store: RoutingStore) -> list[str]:
        said: list[str] = []
        for event in scores:
            await service.route_batch(store, [event], CONFIG, event.time)
        await claims.claim_lead(store, CONFIG, "lk_same_1", "chloe", at[3])
        try:
            await claims.claim_lead(store, CONFIG, "lk_same_1", "ana", at[3])
        except ClaimRefused as refused:
            said.append(refused.detail)
        done = await claims.act_on_unclaimed(store, CONFIG, at[4])
        said.append(f"acted on {len(done.acted_on)}, distributed {done.distributed}")
        again = await claims.act_on_unclaimed(store, CONFIG, at[5])
        said.append(f"then {len(again.acted_on)}")
        return said

    in_memory = await on(memory)
    async with sessions() as session, session.begin():
        on_database = await on(SqlRoutingStore(session))

    assert on_database == in_memory
    assert in_memory[1:] == ["acted on 2, distributed 2", "then 0"]
    stored = [
        (r["lead_key"], r["seq"], r["status"], r["rep_id"], r["close_reason"], r["assigned_at"])
        for r in await rows(engine, assignments)
    ]
    kept = [
        (r.lead_key, r.seq, r.status, r.rep_id, r.close_reason, r.assigned_at)
        for r in memory.assignments
    ]
    assert sorted(stored) == sorted(kept)
    published = [(e.type, e.subject, e.id) for e in await emitted(engine)]
    assert published == [(e.type, e.subject, e.id) for e in memory.events]
    assert [d.kind for d in memory.decided] == ["route"] * 3 + ["claim", "unclaimed", "unclaimed"]
