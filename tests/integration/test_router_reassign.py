"""Leads moved by hand through the admin API, on SQLite and PostgreSQL: a manager's
reassignment (and every refusal), and an out-of-office period that redistributes the rep's
open, uncontacted leads in a team that asks for it; both leave the same rows and events on
the database as on the in-memory store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.auth import install
from leadflow.config import LeadflowConfig
from leadflow.db.engine import session_factory
from leadflow.db.tables import notifications, outbox
from leadflow.events import (
    Envelope,
    LeadActivity,
    LeadAssigned,
    LeadMerged,
    new_event,
)
from leadflow.problems import install_problem_handlers
from leadflow.runtime import get_runtime
from leadflow_router import admin, service
from leadflow_router.book_repository import SqlRoutingStore
from leadflow_router.memory import InMemoryRoutingStore
from leadflow_router.tables import admin_audit, assignments, rep_absences
from tests.fixtures.keys import lead_key_for
from tests.fixtures.routing import make_config, scored
from tests.integration.test_router_api import OPS, router_auth
from tests.integration.test_routing_service import BIG, emitted, rows

CONFIG = make_config()
REDISTRIBUTING = make_config(teams={"enterprise": {"redistribute_on_absence": True}})
E = lead_key_for("buyer@bigco.example")
P = lead_key_for("+16135550101")


def app_for(engine: AsyncEngine, config: LeadflowConfig) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(admin.router)
    install(app, router_auth())
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


@pytest.fixture
async def redistributing(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_for(engine, REDISTRIBUTING))
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        yield client


def now() -> datetime:
    return datetime.now(UTC)


async def apply(engine: AsyncEngine, config: LeadflowConfig, *events: Envelope) -> None:
    async with session_factory(engine)() as session, session.begin():
        await service.apply_events(session, list(events), config, now())


def scored_event(key: str) -> Envelope:
    at = now() - timedelta(minutes=30)
    return new_event(
        "lead.scored",
        scored(BIG, lead_key=key, at=at),
        source="/t",
        time=at,
        event_id=str(uuid.uuid4()),
    )


def activity(key: str, kind: str) -> Envelope:
    data = LeadActivity(lead_key=key, activity=kind, occurred_at=now(), source="crm")
    return new_event(f"lead.{kind}", data, source="/t", time=now(), event_id=str(uuid.uuid4()))


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def reassign(client: httpx.AsyncClient, key: str, body: Any) -> httpx.Response:
    return await client.post(f"/v1/admin/leads/{key}/reassign", json=body, headers=OPS)


async def test_a_manager_reassigns_a_lead_by_any_key_and_it_is_audited(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    merge = LeadMerged(survivor=E, absorbed=[P], identifiers=[E, P], merged_at=now())
    await apply(
        engine,
        CONFIG,
        scored_event(E),
        new_event("lead.merged", merge, source="/t", time=now(), event_id=str(uuid.uuid4())),
    )
    notes_before = await count(engine, notifications)

    response = await reassign(client, P, {"rep_id": "chloe", "reason": "speaks Portuguese"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("lead_key", "rep_id", "team", "previous_rep_id", "seq")} == {
        "lead_key": E,
        "rep_id": "chloe",
        "team": "enterprise",
        "previous_rep_id": "ana",
        "seq": 2,
    }
    stored = [(r["seq"], r["rep_id"], r["close_reason"]) for r in await rows(engine, assignments)]
    assert stored == [(1, "ana", "reassigned"), (2, "chloe", None)]
    event = (await emitted(engine))[-1]
    assert event.type == "lead.reassigned"
    assert isinstance(event.data, LeadAssigned)
    assert (event.data.lead_key, event.data.rep_id, event.data.previous_rep_ids) == (
        E,
        "chloe",
        ["ana"],
    )
    assert event.data.assignment_id == body["assignment_id"]
    async with engine.connect() as conn:
        targets = (
            await conn.execute(
                select(notifications.c.target)
                .where(notifications.c.channel == "email")
                .order_by(notifications.c.id)
                .offset(notes_before)
            )
        ).scalars()
        assert list(targets) == ["chloe@example.com", "ana@example.com"]
    [line] = (await client.get("/v1/admin/audit?rep_id=ana", headers=OPS)).json()["changes"]
    assert (line["actor"], line["action"], line["rep_id"]) == ("ops", "lead.reassign", "ana")
    assert line["before"]["rep_id"] == "ana"
    assert (line["after"]["rep_id"], line["after"]["reason"]) == ("chloe", "speaks Portuguese")


@pytest.mark.parametrize(
    ("setup", "key", "body", "status", "code"),
    [
        ("assigned", "lk_nobody", {"rep_id": "ben", "reason": "x"}, 404, "unknown-lead"),
        ("queued", E, {"rep_id": "ben", "reason": "x"}, 404, "not-assigned"),
        ("converted", E, {"rep_id": "ben", "reason": "x"}, 409, "lead-closed"),
        ("assigned", E, {"rep_id": "nobody", "reason": "x"}, 422, "unknown-rep"),
        ("assigned", E, {"rep_id": "ana", "reason": "x"}, 422, "same-rep"),
        ("assigned", E, {"rep_id": "dev", "reason": "x"}, 422, "rep-not-eligible"),
        ("ben-away", E, {"rep_id": "ben", "reason": "x"}, 422, "rep-unavailable"),
        ("assigned", E, {"rep_id": "ben"}, 422, "invalid-body"),
        ("assigned", E, {"rep_id": "ben", "reason": "x", "extra": 1}, 422, "invalid-body"),
    ],
)
async def test_reassignments_the_admin_api_refuses_change_nothing(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    setup: str,
    key: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    config = CONFIG
    if setup == "queued":
        config = make_config(reps={r: {"active": False} for r in ("ana", "ben", "chloe")})
    await apply(engine, config, scored_event(E))
    if setup == "converted":
        await apply(engine, config, activity(E, "converted"))
    if setup == "ben-away":
        absence = {"start": now().isoformat(), "end": (now() + timedelta(days=1)).isoformat()}
        added = await client.post("/v1/admin/reps/ben/out-of-office", json=absence, headers=OPS)
        assert added.status_code == 201
    before = (
        await rows(engine, assignments),
        await count(engine, outbox),
        await count(engine, notifications),
        await count(engine, admin_audit),
    )

    response = await reassign(client, key, body)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(code)
    after = (
        await rows(engine, assignments),
        await count(engine, outbox),
        await count(engine, notifications),
        await count(engine, admin_audit),
    )
    assert after == before


async def test_reassigning_needs_the_admin_token(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    await apply(engine, CONFIG, scored_event(E))

    response = await client.post(
        f"/v1/admin/leads/{E}/reassign", json={"rep_id": "ben", "reason": "x"}
    )

    assert response.status_code == 401
    assert [r["rep_id"] for r in await rows(engine, assignments)] == ["ana"]


async def test_out_of_office_redistributes_the_reps_uncontacted_leads(
    engine: AsyncEngine, redistributing: httpx.AsyncClient
) -> None:
    keys = [f"lk_{n}" for n in range(4)]  # ana, ben, chloe, ana
    await apply(engine, REDISTRIBUTING, *(scored_event(key) for key in keys))
    await apply(engine, REDISTRIBUTING, activity("lk_0", "contacted"))
    absence = {
        "start": (now() - timedelta(minutes=1)).isoformat(),
        "end": (now() + timedelta(days=3)).isoformat(),
        "note": "sick",
    }

    response = await redistributing.post(
        "/v1/admin/reps/ana/out-of-office", json=absence, headers=OPS
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert [(m["lead_key"], m["rep_id"]) for m in body["redistributed"]] == [("lk_3", "ben")]
    assert body["kept"] == []
    stored = [
        (r["lead_key"], r["rep_id"], r["close_reason"], r["contacted_at"] is not None)
        for r in await rows(engine, assignments)
    ]
    assert stored == [
        ("lk_0", "ana", None, True),  # contacted: stays
        ("lk_1", "ben", None, False),
        ("lk_2", "chloe", None, False),
        ("lk_3", "ana", "out_of_office", False),
        ("lk_3", "ben", None, False),
    ]
    event = (await emitted(engine))[-1]
    assert event.type == "lead.reassigned"
    assert isinstance(event.data, LeadAssigned)
    assert (event.data.lead_key, event.data.previous_rep_ids) == ("lk_3", ["ana"])
    audit = (await redistributing.get("/v1/admin/audit?rep_id=ana", headers=OPS)).json()
    assert [(c["action"], c["after"].get("reason")) for c in audit["changes"]] == [
        ("lead.reassign", "out_of_office"),
        ("rep.out_of_office.add", None),
    ]


async def test_an_absence_starting_later_redistributes_nothing(
    engine: AsyncEngine, redistributing: httpx.AsyncClient
) -> None:
    await apply(engine, REDISTRIBUTING, scored_event("lk_0"))
    later = {
        "start": (now() + timedelta(days=1)).isoformat(),
        "end": (now() + timedelta(days=2)).isoformat(),
    }

    response = await redistributing.post(
        "/v1/admin/reps/ana/out-of-office", json=later, headers=OPS
    )

    assert response.status_code == 201
    assert response.json()["redistributed"] == []
    assert [(r["rep_id"], r["close_reason"]) for r in await rows(engine, assignments)] == [
        ("ana", None)
    ]


async def test_moves_by_hand_leave_the_same_rows_on_the_database_as_in_memory(
    engine: AsyncEngine,
) -> None:
    config = REDISTRIBUTING
    memory = InMemoryRoutingStore()
    at = now()
    streams = [
        [scored_event(f"lk_{n}") for n in range(5)],  # ana, ben, chloe, ana, ben
        [activity("lk_0", "contacted")],
    ]

    async def moves(store: Any) -> None:
        await service.reassign_by_hand(store, config, "lk_1", "chloe", "asked", at, actor="ops")
        moved, _ = await service.redistribute_absent(store, config, "ana", at)
        assert [m.lead_key for m in moved] == ["lk_3"]

    for events in streams:
        await service.route_batch(memory, events, config, at)
        async with session_factory(engine)() as session, session.begin():
            await service.route_batch(SqlRoutingStore(session), events, config, at)
    memory.absences["ana"] = [(at - timedelta(minutes=1), at + timedelta(days=1), "")]
    await moves(memory)
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            insert(rep_absences).values(
                rep_id="ana",
                starts_at=at - timedelta(minutes=1),
                ends_at=at + timedelta(days=1),
                note="",
                created_at=at,
                created_by="test",
            )
        )
        await moves(SqlRoutingStore(session))

    def shape(row: Any) -> tuple[Any, ...]:
        return (
            row.lead_key,
            row.seq,
            row.rep_id,
            row.team,
            row.close_reason,
            row.contacted_at is not None,
        )

    stored = sorted(shape(SimpleNamespace(**r)) for r in await rows(engine, assignments))
    assert stored == sorted(shape(r) for r in memory.assignments)
    assert ("lk_1", 2, "chloe", "enterprise", None, False) in stored
    assert ("lk_0", 1, "ana", "enterprise", None, True) in stored
    published = [
        (e.type, e.subject, getattr(e.data, "rep_id", None)) for e in await emitted(engine)
    ]
    assert published == [
        (e.type, e.subject, getattr(e.data, "rep_id", None)) for e in memory.events
    ]
