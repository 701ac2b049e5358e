"""Aliases on real SQLite and PostgreSQL: bulk look-ups, chains, order, statements, consumers."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow import aliases
from leadflow.aliases import Alias, Merge
from leadflow.db.engine import session_factory
from leadflow.db.tables import lead_aliases

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def record(engine: AsyncEngine, consumer: str, merges: Sequence[Merge]) -> dict[str, str]:
    async with session_factory(engine)() as session, session.begin():
        return await aliases.record(session, consumer, merges)


async def resolve(engine: AsyncEngine, consumer: str, keys: Sequence[str]) -> dict[str, str]:
    async with session_factory(engine)() as session, session.begin():
        return await aliases.resolve(session, consumer, keys)


async def rows(engine: AsyncEngine, consumer: str) -> dict[str, Alias]:
    c = lead_aliases.c
    async with engine.connect() as conn:
        found = await conn.execute(
            select(c.alias, c.survivor, c.merged_at).where(c.consumer == consumer)
        )
        return {alias: Alias(survivor, merged_at) for alias, survivor, merged_at in found}


async def test_a_chain_of_merges_points_every_alias_at_the_final_survivor(
    engine: AsyncEngine,
) -> None:
    assert await record(engine, "router", [Merge("a", ("b",), at(1))]) == {"b": "a"}
    assert await record(engine, "router", [Merge("c", ("a", "p"), at(2))]) == {
        "a": "c",
        "p": "c",
    }
    assert await rows(engine, "router") == {
        "a": Alias("c", at(2)),
        "b": Alias("c", at(1)),
        "p": Alias("c", at(2)),
    }
    assert await resolve(engine, "router", ["a", "b", "c", "p", "z"]) == {
        "a": "c",
        "b": "c",
        "c": "c",
        "p": "c",
        "z": "z",
    }


async def test_each_consumer_keeps_its_own_aliases(engine: AsyncEngine) -> None:
    await record(engine, "router", [Merge("a", ("b",), at(1))])
    assert await resolve(engine, "sla-monitor", ["b"]) == {"b": "b"}
    assert await record(engine, "sla-monitor", [Merge("a", ("b",), at(1))]) == {"b": "a"}
    # Recording it again changes nothing, and moves nothing.
    assert await record(engine, "sla-monitor", [Merge("a", ("b",), at(3))]) == {}
    assert await rows(engine, "sla-monitor") == {"b": Alias("a", at(1))}


MERGES = [
    Merge("a", ("b",), at(1)),
    Merge("c", ("d", "q"), at(2)),
    Merge("a", ("b", "c", "d", "p", "q"), at(3)),
    Merge("e", ("a", "b", "c", "d", "p", "q"), at(4)),
]


@pytest.mark.parametrize(
    "order", [list(p) for p in itertools.islice(itertools.permutations(range(4)), 0, 24, 5)]
)
async def test_merges_in_any_order_and_any_batches_give_the_same_rows(
    engine: AsyncEngine, order: list[int]
) -> None:
    expected = {
        key: Alias("e", at(min(i + 1 for i, m in enumerate(MERGES) if key in m.aliases)))
        for key in "abcdpq"
    }
    first, rest = [MERGES[i] for i in order[:1]], [MERGES[i] for i in order[1:]]
    before = await record(engine, "reporting", first)
    after = await record(engine, "reporting", rest)
    assert await rows(engine, "reporting") == expected
    # Each key stops being a person of its own once; the last batch moves them to the end.
    assert sorted([*before, *after]) == list("abcdpq")
    assert set(after.values()) <= {"e"}


async def test_a_batch_costs_the_same_statements_for_one_merge_or_a_hundred(
    engine: AsyncEngine,
) -> None:
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(str(args[2]))

    async def statements(merges: Sequence[Merge], keys: Sequence[str]) -> int:
        counted.clear()
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            async with session_factory(engine)() as session, session.begin():
                await aliases.resolve(session, "router", keys)
                await aliases.record(session, "router", merges)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        return len([s for s in counted if "lead_aliases" in s])

    one = await statements([Merge("s0", ("x0",), at(1))], ["x0"])
    many = [Merge(f"s{i}", (f"x{i}", f"y{i}"), at(i)) for i in range(100)]
    hundred = await statements(many, [f"x{i}" for i in range(100)])
    assert one == hundred == 3  # resolve, load, upsert
    assert await resolve(engine, "router", ["y42", "x0"]) == {"y42": "s42", "x0": "s0"}
    # Nothing to record, nothing to resolve: no statement.
    assert await statements([], []) == 0


async def test_a_failed_batch_leaves_no_alias(engine: AsyncEngine) -> None:
    async def failing_batch() -> None:
        async with session_factory(engine)() as session, session.begin():
            await aliases.record(session, "router", [Merge("a", ("b",), at(1))])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_batch()
    assert await rows(engine, "router") == {}
