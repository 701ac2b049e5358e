"""A dead-lettered event's error header names the error, never the person: a database error
keeps its kind and first line, not the statement's parameters (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.events import Envelope, LeadActivity, new_event
from leadflow.metrics import consumer_metrics
from leadflow.processing import EventProcessor
from leadflow.settings import Settings


async def test_the_error_header_carries_no_parameters(engine: AsyncEngine) -> None:
    async def handle(session: AsyncSession, _events: Sequence[Envelope], _now: datetime) -> None:
        # A statement that fails every time, with a person's data among its parameters.
        await session.execute(
            text("INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, NULL)"),
            {"name": "zelda@quistorff.example", "holder": "Zelda Quistorff +14155550199"},
        )

    dead = InMemoryBus()
    processor = EventProcessor(
        consumer="privacy-test",
        engine=engine,
        handlers={"lead.contacted": handle},
        dead_letters=dead,
        settings=Settings(env="development", consumer_max_attempts=1),
        metrics=consumer_metrics("privacy_test"),
    )
    now = datetime.now(UTC)
    data = LeadActivity(lead_key="lk_x", activity="contacted", occurred_at=now, source="crm")
    event = new_event("lead.contacted", data, source="/t", time=now)
    await processor.process([Record("leads.activity", 0, 0, b"lk_x", event.to_bytes())])

    [letter] = dead.topics["leads.dlq"]
    headers = {name: value.decode() for name, value in letter.headers}
    message = headers["leadflow-error-message"]
    assert headers["leadflow-error-reason"] == "handler_error"
    assert message.startswith("IntegrityError: "), message
    for personal in ("zelda", "Quistorff", "4155550199", "INSERT"):
        assert personal.lower() not in message.lower(), message
