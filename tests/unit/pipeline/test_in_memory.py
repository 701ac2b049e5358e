"""The whole pipeline on the in-memory bus, SQLite underneath: intake, scoring, router, SLA."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow import topics
from leadflow.bus.memory import InMemoryBus
from leadflow.config import LeadflowConfig, load_config
from leadflow.db.engine import create_engine, session_factory
from leadflow.events import Envelope, LeadActivity, LeadAssigned, LeadScored, SlaAlert, new_event
from leadflow.metrics import consumer_metrics
from leadflow.outbox import OutboxRelay
from leadflow.processing import EventProcessor, Handlers, one_by_one
from leadflow.settings import Settings
from leadflow_intake.canonical import LeadBody, lead_event
from leadflow_router import service as router_service
from leadflow_scoring import service as scoring_service
from leadflow_sla import service as sla_service
from tests.fixtures.keys import KEYS
from tests.fixtures.stack import CONFIG, lead_body

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


class Pipeline:
    """Scoring, router and SLA monitor wired through one in-memory bus and one database."""

    def __init__(self, engine: AsyncEngine, config: LeadflowConfig) -> None:
        self.engine = engine
        self.config = config
        self.bus = InMemoryBus()
        self.settings = Settings(config=CONFIG)
        self.now = T0

    def _processor(self, name: str, handlers: Handlers) -> EventProcessor:
        return EventProcessor(
            consumer=name,
            engine=self.engine,
            handlers=handlers,
            dead_letters=self.bus,
            settings=self.settings,
            metrics=consumer_metrics(f"unit_{name}"),
            clock=lambda: self.now,
        )

    async def post(self, body: dict[str, object], delivery_id: str) -> Envelope:
        parsed = LeadBody.model_validate(body)
        event = lead_event(
            parsed.lead,
            keys=KEYS,
            source="web",
            kind="standard",
            delivery_id=delivery_id,
            activity=parsed.activity,
            now=self.now,
        )
        await self.bus.publish(topics.RECEIVED, event.subject, event.value)
        return event.envelope()

    async def run(self) -> None:
        """Deliver everything pending through every stage, relaying outboxes in between."""

        async def score(session: AsyncSession, event: Envelope, now: datetime) -> None:
            await scoring_service.score_received(session, event, self.config.scoring, KEYS, now)

        async def route(session: AsyncSession, event: Envelope, now: datetime) -> None:
            await router_service.route_scored(session, event, self.config, now)

        async def track(session: AsyncSession, event: Envelope, now: datetime) -> None:
            await sla_service.apply_events(session, [event], self.config, now)

        stages: list[tuple[str, list[str], Handlers]] = [
            ("scoring", [topics.RECEIVED], {"lead.received": one_by_one(score)}),
            ("router", [topics.SCORED], {"lead.scored": one_by_one(route)}),
            (
                "sla",
                [topics.ASSIGNED, topics.ACTIVITY],
                dict.fromkeys(("lead.assigned", "lead.contacted"), one_by_one(track)),
            ),
        ]
        for name, stage_topics, handlers in stages:
            await self.bus.deliver(name, stage_topics, self._processor(name, handlers))
            await OutboxRelay(self.engine, self.bus, self.settings, name).relay_once()

    async def fire_timers(self) -> None:
        async with session_factory(self.engine)() as session, session.begin():
            await sla_service.fire_due(session, self.config, "http://router", self.now)
        await OutboxRelay(self.engine, self.bus, self.settings, "sla-monitor").relay_once()

    def events(self, topic: str) -> list[Envelope]:
        return [Envelope.from_bytes(v) for v in self.bus.values(topic)]


@pytest.fixture
async def pipeline(sqlite_url: str) -> AsyncIterator[Pipeline]:
    engine = create_engine(sqlite_url)
    yield Pipeline(engine, load_config(CONFIG))
    await engine.dispose()


async def test_an_mql_is_scored_assigned_round_robin_and_breached_once(
    pipeline: Pipeline,
) -> None:
    for i in range(4):
        await pipeline.post(lead_body(f"buyer{i}@bigco.example"), f"d{i}")
    await pipeline.run()

    scored = [e.data for e in pipeline.events(topics.SCORED)]
    assert all(isinstance(s, LeadScored) and s.tier == "mql" for s in scored)
    assigned = [e.data for e in pipeline.events(topics.ASSIGNED)]
    assert [a.rep_id for a in assigned if isinstance(a, LeadAssigned)] == [
        "ana",
        "ben",
        "chloe",
        "ana",
    ]

    pipeline.now = T0 + timedelta(seconds=1)
    await pipeline.fire_timers()
    assert pipeline.events(topics.ALERTS) == []
    pipeline.now = T0 + timedelta(seconds=6)
    await pipeline.fire_timers()
    await pipeline.fire_timers()
    alerts = [e.data for e in pipeline.events(topics.ALERTS)]
    assert len(alerts) == 4
    assert all(isinstance(a, SlaAlert) and a.late_by_s == pytest.approx(1.0) for a in alerts)


async def test_a_redelivered_lead_is_scored_and_assigned_once(pipeline: Pipeline) -> None:
    await pipeline.post(lead_body("twice@bigco.example"), "same")
    await pipeline.post(lead_body("twice@bigco.example"), "same")
    await pipeline.run()
    await pipeline.run()

    assert len(pipeline.events(topics.SCORED)) == 1
    assert len(pipeline.events(topics.ASSIGNED)) == 1


async def test_a_lead_that_qualifies_later_is_routed_then_and_only_then(
    pipeline: Pipeline,
) -> None:
    email = "slow.burner@smallco.example"
    small = {"job_title": "Analyst", "company": {"size": 20}}
    await pipeline.post(lead_body(email, activity="content_download", **small), "t1")
    await pipeline.run()
    assert pipeline.events(topics.ASSIGNED) == []
    [first] = [e.data for e in pipeline.events(topics.SCORED)]
    assert isinstance(first, LeadScored)
    assert first.tier == "nurture"

    await pipeline.post(lead_body(email, activity="pricing_page", **small), "t2")
    await pipeline.post(lead_body(email, activity="demo_request", **small), "t3")
    await pipeline.post(lead_body(email, activity="webinar", **small), "t4")
    await pipeline.run()

    tiers = [e.data.tier for e in pipeline.events(topics.SCORED) if isinstance(e.data, LeadScored)]
    assert tiers == ["nurture", "nurture", "mql", "mql"]
    [assigned] = [e.data for e in pipeline.events(topics.ASSIGNED)]
    assert isinstance(assigned, LeadAssigned)
    assert assigned.team == "smb"


async def test_contact_before_the_deadline_means_no_alert(pipeline: Pipeline) -> None:
    lead = await pipeline.post(lead_body("fast@bigco.example"), "d1")
    await pipeline.run()
    contacted = new_event(
        "lead.contacted",
        LeadActivity(lead_key=lead.subject, activity="contacted", occurred_at=T0, source="crm"),
        source="/test",
        time=T0,
    )
    await pipeline.bus.publish(topics.ACTIVITY, lead.subject, contacted.to_bytes())
    await pipeline.run()
    pipeline.now = T0 + timedelta(minutes=10)
    await pipeline.fire_timers()
    assert pipeline.events(topics.ALERTS) == []
