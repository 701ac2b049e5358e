"""Retention on SQLite and PostgreSQL: old inbox rows, old sent or failed notifications, old
touches and relayed erasure events are pruned in bounded batches; what is recent, pending
or kept forever (0 days) stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.db.engine import session_factory
from leadflow.db.tables import erasures, notifications, outbox, processed_events
from leadflow.retention import Rule, prune, shared_rules
from leadflow.settings import Settings
from leadflow_scoring.repository import prune_touches
from leadflow_scoring.tables import lead_touches


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


def notification(n: int, at: datetime, *, sent: bool, failed: bool = False) -> dict[str, object]:
    return {
        "producer": "router",
        "channel": "email",
        "target": "rep@example.com",
        "dedupe_key": f"n{n}",
        "subject": "s",
        "body": "b",
        "payload": {},
        "created_at": at,
        "attempts": 1,
        "next_attempt_at": at,
        "sent_at": at if sent else None,
        "failed_at": at if failed else None,
    }


async def test_old_rows_are_pruned_in_batches_and_the_rest_kept(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=400), now - timedelta(days=1)
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            insert(processed_events),
            [
                {"consumer": "c", "event_id": f"e{i}", "processed_at": old if i < 5 else recent}
                for i in range(8)
            ],
        )
        await session.execute(
            insert(notifications),
            [
                notification(1, old, sent=True),
                notification(2, old, sent=False, failed=True),
                notification(3, old, sent=False),  # still to send: kept
                notification(4, recent, sent=True),
            ],
        )
        await session.execute(
            insert(lead_touches),
            [
                {
                    "lead_key": "lk_a",
                    "event_id": f"t{i}",
                    "source": "web",
                    "activity": "form_fill",
                    "occurred_at": old if i < 3 else recent,
                    "detail": {},
                    "fields": {},
                }
                for i in range(4)
            ],
        )
        await session.execute(
            insert(erasures).values(key_hash="h" * 64, erasure_id="erased-1", erased_at=recent)
        )
        await session.execute(
            insert(outbox),
            [
                {
                    "producer": "scoring",
                    "topic": "leads.activity",
                    "key": "lk_gone",
                    "event_id": event_id,
                    "payload": b"{}",
                    "created_at": recent,
                    "sent_at": sent,
                }
                for event_id, sent in (("erased-1", recent), ("other", recent), ("x", None))
            ],
        )
    settings = Settings(env="development")
    rules = [*shared_rules(settings), Rule("touches", 365, prune_touches)]
    deleted = await prune(session_factory(engine), rules, now, batch=2)
    assert deleted == {
        "processed_events": 5,
        "notifications": 2,
        "erasure_events": 1,
        "touches": 3,
    }
    assert await count(engine, processed_events) == 3
    assert await count(engine, notifications) == 2
    assert await count(engine, lead_touches) == 1
    assert await count(engine, outbox) == 2

    # 0 days keeps rows forever.
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            insert(processed_events).values(consumer="c", event_id="ancient", processed_at=old)
        )
    forever = [Rule("processed_events", 0, shared_rules(settings)[0].prune)]
    assert await prune(session_factory(engine), forever, now, batch=2) == {}
    assert await count(engine, processed_events) == 4
