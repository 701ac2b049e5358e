"""Of a person's two assignments made in one router batch, the router and the SLA monitor
keep the same one when the merge comes, the one the batch decided first, on SQLite and
PostgreSQL, whatever the installation's key secret (the assignment ids, which derive from
the keys, no longer decide)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.db.engine import session_factory
from leadflow.events import Envelope, LeadAssigned, new_event
from leadflow.keys import LeadKeys
from leadflow_router import service
from leadflow_router.book_repository import SqlRoutingStore
from leadflow_router.tables import assignments
from leadflow_sla import service as sla_service
from leadflow_sla.tables import sla_windows
from tests.fixtures.routing import make_config
from tests.unit.router.test_merges import SECRETS, at, merged, score

CONFIG = make_config()


async def route(engine: AsyncEngine, *runs: Sequence[Envelope]) -> list[LeadAssigned]:
    """Apply each run as the router's consumer does, all in one transaction at one instant
    (the runs of one Kafka batch); returns the assignments published."""
    published: list[LeadAssigned] = []
    async with session_factory(engine)() as session, session.begin():
        for run in runs:
            routed = await service.route_batch(SqlRoutingStore(session), run, CONFIG, at(1))
            published += [e.data for e in routed.writes.events if isinstance(e.data, LeadAssigned)]
    return published


async def merge(engine: AsyncEngine, merging: Envelope, assigned: Sequence[Envelope]) -> None:
    """The merge reaches the router alone, and the SLA monitor in one batch with the
    assignments (which travel under other keys, so in any order)."""
    async with session_factory(engine)() as session, session.begin():
        await service.apply_events(session, [merging], CONFIG, at(2))
    async with session_factory(engine)() as session, session.begin():
        await sla_service.apply_events(session, assigned, CONFIG, at(2))


async def kept(engine: AsyncEngine, ids: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """How the router closed each assignment, and the SLA monitor each window ('' open)."""
    async with engine.connect() as conn:
        routed = await conn.execute(
            select(assignments.c.assignment_id, assignments.c.close_reason).where(
                assignments.c.assignment_id.in_(ids)
            )
        )
        watched = await conn.execute(
            select(sla_windows.c.assignment_id, sla_windows.c.outcome).where(
                sla_windows.c.assignment_id.in_(ids)
            )
        )
        return (
            {aid: reason or "" for aid, reason in routed},
            {aid: outcome or "" for aid, outcome in watched},
        )


def envelope(data: LeadAssigned) -> Envelope:
    """The router's `lead.assigned` as the SLA monitor receives it."""
    return new_event(
        "lead.assigned",
        data,
        source="/leadflow/router",
        time=data.assigned_at,
        event_id=data.assignment_id,
    )


async def test_router_and_sla_monitor_keep_the_assignment_decided_first(
    engine: AsyncEngine,
) -> None:
    for n, secret in enumerate(SECRETS[:4]):
        keys = LeadKeys(secret)
        email, phone = keys.key(f"buyer{n}@northwind.example"), keys.key(f"+1613555{n:04d}")
        # The phone's lead first in half the rounds; the monitor sees the later one first.
        first, second = (email, phone) if n % 2 else (phone, email)
        # In one run, or in two runs of one Kafka batch (they share the transaction's `now`).
        runs = [[score(first, 0), score(second, 1)]]
        if n >= 2:
            runs = [[score(first, 0)], [score(second, 1)]]
        published = await route(engine, *runs)
        assert [(a.lead_key, a.assigned_at) for a in published] == [
            (first, at(1)),
            (second, at(1)),
        ]
        merging = merged(email, [phone], [email, phone], 2)
        assigned = [envelope(a) for a in reversed(published)]
        await merge(engine, merging, [*assigned, merging] if n % 2 else [merging, *assigned])

        ids = [a.assignment_id for a in published]
        router, monitor = await kept(engine, ids)
        assert router == {ids[0]: "", ids[1]: "merged"}, secret
        assert monitor == {ids[0]: "", ids[1]: "merged"}, secret
