"""Merges in the router on SQLite and PostgreSQL: the database store does what the in-memory
one does (`tests/unit/router/test_merges.py`), in the same few statements, and the API
answers at any of a person's keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.db.engine import session_factory
from leadflow.db.tables import lead_aliases, notifications, outbox
from leadflow.events import Envelope
from leadflow_router import service
from leadflow_router.replay import Replay
from leadflow_router.tables import assignments, routed_leads, routing_decisions
from tests.fixtures.auth import AUTH
from tests.fixtures.routing import make_config
from tests.integration.test_router_api import app_for
from tests.unit.router.test_merges import E, P, Q, X, at, merged, outcome, score

CONFIG = make_config()

EVENTS = [
    [score(E, 0, identifiers=[E, X])],
    [score(P, 1), score(Q, 2)],
    [merged(E, [P], [E, P, X], 3)],
    # A redelivered score of P under another id: routed nowhere, P is E's now.
    [score(P, 1, event_id="again")],
    [score(E, 5, merged_from=[P, Q], identifiers=[E, P, Q, X], newly=False)],
    [outcome([P], "converted", 6), outcome([Q, X], "won", 7)],
]


async def apply(engine: AsyncEngine, events: Sequence[Envelope]) -> None:
    async with session_factory(engine)() as session, session.begin():
        await service.apply_events(session, events, CONFIG, events[-1].time)


async def table(engine: AsyncEngine, name: str) -> list[dict[str, Any]]:
    tables = {
        "assignments": (assignments, assignments.c.id),
        "decisions": (routing_decisions, routing_decisions.c.id),
        "routed": (routed_leads, routed_leads.c.lead_key),
        "aliases": (lead_aliases, lead_aliases.c.alias),
    }
    found, order = tables[name]
    async with engine.connect() as conn:
        rows = await conn.execute(select(found).order_by(order))
        return [dict(r._mapping) for r in rows]


async def test_the_database_merges_as_memory_does(engine: AsyncEngine) -> None:
    replay = Replay(CONFIG)
    for batch in EVENTS:
        await apply(engine, batch)
        replay.apply(batch, batch[-1].time)

    stored = [
        (r["lead_key"], r["seq"], r["rep_id"], r["close_reason"], r["converted_at"])
        for r in await table(engine, "assignments")
    ]
    in_memory = [
        (r.lead_key, r.seq, r.rep_id, r.close_reason, r.converted_at)
        for r in replay.store.assignments
    ]
    assert sorted(stored) == sorted(in_memory)
    # One person: the earlier assignment kept (and closed by the outcome reported by phone),
    # the other two closed as merged, every row and decision under the survivor's key.
    assert sorted(stored) == [
        (E, 1, "ana", "converted", at(6)),
        (E, 2, "ben", "merged", None),
        (E, 3, "chloe", "merged", None),
    ]
    assert {d["lead_key"] for d in await table(engine, "decisions")} == {E}
    [routed] = await table(engine, "routed")
    assert routed["lead_key"] == E
    assert routed["scored"]["lead_key"] == E
    aliases = {(a["consumer"], a["alias"], a["survivor"]) for a in await table(engine, "aliases")}
    assert aliases == {("router", P, E), ("router", Q, E), ("router", X, E)}
    async with engine.connect() as conn:
        subjects = (await conn.execute(select(outbox.c.key).order_by(outbox.c.id))).scalars()
        notes = (
            await conn.execute(
                select(notifications.c.dedupe_key).where(
                    notifications.c.dedupe_key.like("router:merged:%")
                )
            )
        ).scalars()
        kinds = sorted(key.rsplit(":", 2)[1] for key in notes if key.endswith(":email"))
    assert list(subjects) == [E, P, Q]  # the three assignments; nothing after the merge
    assert kinds == ["closed", "closed", "kept", "kept"]


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_for(engine))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://router", headers=AUTH
    ) as client:
        yield client


async def test_the_api_answers_at_any_of_the_persons_keys(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    await apply(engine, [score(E, 0, identifiers=[E, X]), score(P, 1)])
    await apply(engine, [merged(E, [P], [E, P, X], 3)])

    answers = [(await client.get(f"/v1/leads/{key}/routing")).json() for key in (E, P, X)]

    assert [a["lead_key"] for a in answers] == [E, E, E]
    assert [a["asked_as"] for a in answers] == [E, P, X]
    assert all(a["history"] == answers[0]["history"] for a in answers)
    why = answers[1]
    assert why["status"] == "assigned"
    assert why["current"]["rep_id"] == "ana"
    assert [(h["seq"], h["rep_id"], h["close_reason"]) for h in why["history"]] == [
        (1, "ana", None),
        (2, "ben", "merged"),
    ]
    assert len(why["decisions"]) == 2
    missing = await client.get(f"/v1/leads/{Q}/routing")
    assert missing.status_code == 404


async def test_a_batch_of_merges_costs_the_same_statements_as_one(engine: AsyncEngine) -> None:
    async def statements(events: Sequence[Envelope]) -> int:
        sent: list[str] = []

        def count(*args: Any) -> None:
            sent.append(args[2])

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            await apply(engine, events)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        return len(sent)

    people = [(f"lk_e{i:021d}", f"lk_p{i:021d}") for i in range(41)]
    await apply(engine, [score(k, 0) for pair in people for k in pair])
    one = await statements([merged(people[0][0], [people[0][1]], list(people[0]), 3)])
    forty = await statements([merged(e, [p], [e, p], 3) for e, p in people[1:]])
    assert forty == one
    async with engine.connect() as conn:
        live = await conn.execute(
            select(assignments.c.lead_key).where(assignments.c.closed_at.is_(None))
        )
        assert sorted(live.scalars()) == sorted(e for e, _ in people)
