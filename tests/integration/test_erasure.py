"""Erasing a person on SQLite and PostgreSQL: after `DELETE /v1/admin/people/{key}` and the
`lead.erased` it publishes, no table holds any of the person's keys, their email, phone,
name or company — found by scanning every text of every table the migrations create, so a
new table is covered without a word here. Reports keep counting the lead, anonymously; a
late event from before the erasure does not bring the person back, a new one does.

The four consumers run as in the services (their consumer specs, the processor, the inbox),
fed with the events each other wrote to the outbox, without a broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow import erasure
from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.db.engine import session_factory
from leadflow.db.tables import erasures, notifications, outbox
from leadflow.events import (
    Company,
    Envelope,
    Lead,
    LeadActivity,
    LeadReceived,
    derived_event_id,
    new_event,
)
from leadflow.metrics import consumer_metrics
from leadflow.problems import install_problem_handlers
from leadflow.processing import EventProcessor
from leadflow.retention import prune, shared_rules
from leadflow.runtime import ConsumerSpec, Runtime
from leadflow.settings import Settings
from leadflow_router.app import _consumer as router_consumer
from leadflow_router.notify import NotifyOptions
from leadflow_router.tables import assignments
from leadflow_scoring import admin, privacy
from leadflow_scoring.app import _batch_handler as scoring_handler
from leadflow_scoring.tables import lead_profiles
from leadflow_sla.app import Monitor
from leadflow_sla.reporting.consumer import REPORTING_CONSUMER
from leadflow_sla.reporting.tables import lead_lifecycles
from leadflow_sla.settings import SlaSettings
from leadflow_sla.tables import sla_windows
from tests.fixtures.auth import AUTH, authorized
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import CONFIG
from tests.fixtures.traces import traces

pytestmark = pytest.mark.integration

EMAIL = "zelda.quistorff@quistorff-widgets.example"
PHONE = "+14155550199"
FIRST, LAST, COMPANY = "Zelda", "Quistorff", "Quistorff Widgets"
# What no table may hold once the person is erased (besides their keys).
PERSONAL = (EMAIL, PHONE, FIRST, LAST, COMPANY, "quistorff")


def received(
    at: datetime, *, email: str | None = None, phone: str | None = None, activity: str
) -> Envelope:
    """A demo request or a call as the intake publishes it: an MQL at a large company."""
    key = lead_key_for(email or phone or "")
    data = LeadReceived(
        lead_key=key,
        source="web",
        source_kind="standard",
        delivery_id=f"{activity}-{at.isoformat()}",
        activity=activity,
        received_at=at,
        lead=Lead(
            email=email,
            phone=phone,
            first_name=FIRST,
            last_name=LAST,
            job_title="VP Operations",
            company=Company(name=COMPANY, size=1500, industry="software"),
            country="US",
        ),
    )
    event_id = derived_event_id("web", data.delivery_id)
    return new_event("lead.received", data, source="/intake", time=at, event_id=event_id)


@dataclass
class Pipeline:
    """The four consumers on one database, and the events they wrote, relayed by hand."""

    engine: AsyncEngine
    settings: Settings
    processors: list[EventProcessor] = field(default_factory=list)

    async def deliver(self, events: Sequence[Envelope]) -> None:
        """Hand `events` to every consumer, then what they publish, until nothing is new."""
        batch = list(events) or await self.published()
        while batch:
            records = [
                Record("t", 0, i, e.subject.encode(), e.to_bytes()) for i, e in enumerate(batch)
            ]
            for processor in self.processors:
                await processor.process(records)
            batch = await self.published()

    async def published(self) -> list[Envelope]:
        """The outbox rows not relayed yet, as events, marked sent."""
        async with session_factory(self.engine)() as session, session.begin():
            rows = (
                await session.execute(
                    select(outbox.c.id, outbox.c.payload)
                    .where(outbox.c.sent_at.is_(None))
                    .order_by(outbox.c.id)
                )
            ).all()
            if rows:
                await session.execute(
                    outbox.update()
                    .where(outbox.c.id.in_([r.id for r in rows]))
                    .values(sent_at=datetime.now(UTC))
                )
        return [Envelope.from_bytes(row.payload) for row in rows]


@pytest.fixture
async def pipeline(engine: AsyncEngine, database_url: str) -> Pipeline:
    settings = Settings(env="development", database_url=database_url, config=CONFIG)
    runtime = cast(Runtime, SimpleNamespace(settings=settings))
    specs = [
        ConsumerSpec("leadflow-scoring", [], {"lead.received": scoring_handler("live")}),
        router_consumer(NotifyOptions(public_url="http://router.test")),
        ConsumerSpec("leadflow-sla-monitor", [], Monitor(SlaSettings()).handlers()),
        REPORTING_CONSUMER,
    ]
    processors = [
        EventProcessor(
            consumer=spec.group,
            engine=engine,
            handlers=spec.table(runtime),
            dead_letters=InMemoryBus(),
            settings=settings,
            metrics=consumer_metrics("erasure_test"),
        )
        for spec in specs
    ]
    return Pipeline(engine, settings, processors)


def scoring_api(pipeline: Pipeline) -> httpx.AsyncClient:
    """Scoring's admin routes in process, answering the test token."""
    app = authorized(FastAPI())
    app.include_router(admin.router)
    install_problem_handlers(app)
    app.state.runtime = SimpleNamespace(
        sessions=session_factory(pipeline.engine), relay=SimpleNamespace(wake=lambda: None)
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scoring")


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_an_erased_person_is_found_by_no_key_in_no_table(pipeline: Pipeline) -> None:
    engine = pipeline.engine
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    email_key, phone_key = lead_key_for(EMAIL), lead_key_for(PHONE)
    # A demo request by email, a call by phone (two people so far), then a form with both:
    # one person, known by two keys, with a merged profile.
    await pipeline.deliver([received(t0, email=EMAIL, activity="demo_request")])
    await pipeline.deliver([received(t0 + timedelta(seconds=5), phone=PHONE, activity="call")])
    await pipeline.deliver(
        [received(t0 + timedelta(seconds=9), email=EMAIL, phone=PHONE, activity="form_fill")]
    )
    needles = [email_key, phone_key, *PERSONAL]
    before = await traces(engine, needles)
    # The person is everywhere: profiles, touches, identifiers, assignments, windows,
    # notifications, lifecycles, aliases, the outbox.
    for table in (
        "lead_profiles",
        "lead_touches",
        "lead_identifiers",
        "assignments",
        "routing_decisions",
        "routed_leads",
        "sla_windows",
        "sla_timers",
        "notifications",
        "lead_lifecycles",
        "lead_aliases",
        "outbox",
    ):
        assert table in before, f"the scenario left nothing of the person in {table}"
    lifecycles = await count(engine, lead_lifecycles)

    async with scoring_api(pipeline) as api:
        # By the absorbed key: the person is found by any of their keys.
        answer = await api.delete(f"/v1/admin/people/{phone_key}", headers=AUTH)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert (body["status"], body["keys"]) == ("erasing", 2)
        assert body["lead_keys"] == sorted([email_key, phone_key])
        assert set(body["then"]) == {"router", "sla-monitor", "reporting"}
        await pipeline.deliver([])

        assert await traces(engine, needles) == {"outbox": {email_key, phone_key}}
        # The relayed `lead.erased` is the last row naming the keys: retention takes it.
        await prune(session_factory(engine), shared_rules(pipeline.settings), t0, 100)
        assert await traces(engine, needles) == {}

        # Asked again, by either key: already erased, nothing more happens.
        again = await api.delete(f"/v1/admin/people/{email_key}", headers=AUTH)
        assert again.status_code == 202
        assert again.json()["status"] == "erased"
        unknown = await api.delete("/v1/admin/people/lk_nobody", headers=AUTH)
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
        assert (await api.delete(f"/v1/admin/people/{email_key}")).status_code == 401

    # Reports still count the lead, under a key of no one.
    assert await count(engine, lead_lifecycles) == lifecycles
    async with engine.connect() as conn:
        keys = (await conn.execute(select(lead_lifecycles.c.lead_key))).scalars().all()
    assert all(key.startswith("anon_") for key in keys)
    assert await count(engine, erasures) == 2

    # A copy of the first form relayed late (a spool, another topic) brings no one back...
    late = received(t0 + timedelta(seconds=20), email=EMAIL, activity="demo_request")
    await pipeline.deliver([late])
    assert await traces(engine, needles) == {}
    # ... a new form fill after the erasure is a new lead.
    back = received(datetime.now(UTC), email=EMAIL, activity="demo_request")
    await pipeline.deliver([back])
    async with engine.connect() as conn:
        profiles = (await conn.execute(select(lead_profiles.c.lead_key))).scalars().all()
        assigned = (await conn.execute(select(assignments.c.lead_key))).scalars().all()
    assert (list(profiles), list(assigned)) == ([email_key], [email_key])


async def test_outcomes_from_before_the_erasure_are_dropped_later_ones_kept(
    pipeline: Pipeline,
) -> None:
    engine = pipeline.engine
    key = lead_key_for(EMAIL)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    await pipeline.deliver([received(t0, email=EMAIL, activity="demo_request")])
    assert await count(engine, sla_windows) == 1
    async with session_factory(engine)() as session, session.begin():
        done = await privacy.erase_person(session, key, datetime.now(UTC))
    assert done is not None
    # The erasure and, in the same batch, the CRM's contact of the lead, reported late.
    [erased] = await pipeline.published()
    assert erased.type == "lead.erased"
    await pipeline.deliver([erased, contacted(key, t0 + timedelta(seconds=30))])
    assert await count(engine, sla_windows) == await count(engine, notifications) == 0
    async with engine.connect() as conn:
        rows = await conn.execute(select(lead_lifecycles).where(lead_lifecycles.c.lead_key == key))
        assert rows.first() is None
    # An outcome that happened after the erasure is about someone reporting knows nothing of
    # yet: it is kept, like any outcome of an unknown lead.
    await pipeline.deliver([contacted(key, datetime.now(UTC))])
    async with engine.connect() as conn:
        rows = await conn.execute(select(lead_lifecycles).where(lead_lifecycles.c.lead_key == key))
        assert rows.first() is not None
    assert await count(engine, erasures) == 1
    async with engine.connect() as conn:
        digest = (await conn.execute(select(erasures.c.key_hash))).scalar_one()
    assert digest == erasure.key_hash(key) != key


def contacted(key: str, at: datetime) -> Envelope:
    """The CRM's first contact of the lead known by `key`, at `at`."""
    data = LeadActivity(
        lead_key=key, activity="contacted", occurred_at=at, source="crm", identifiers=[key]
    )
    return new_event("lead.contacted", data, source="/intake", time=datetime.now(UTC))
