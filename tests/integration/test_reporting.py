"""Reports built from real event streams through the consumers, on SQLite and PostgreSQL.

Webhook bodies go through the intake's adapter; scoring and the router run as
EventProcessors and emit through their outboxes; the reporting consumer folds every topic
(read in a scrambled topic order, with a redelivery) into lifecycles. Every figure is
checked against the hand count in the comments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow import topics
from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import LeadflowConfig, load_config
from leadflow.db.engine import create_engine, session_factory
from leadflow.events import Envelope, LeadActivity, LeadAssigned, new_event
from leadflow.metrics import consumer_metrics
from leadflow.outbox import OutboxRelay
from leadflow.processing import EventProcessor, Handlers, one_by_one
from leadflow.settings import Settings
from leadflow_intake.canonical import ActivityBody, LeadBody, to_event
from leadflow_router import service as router_service
from leadflow_scoring import service as scoring_service
from leadflow_sla.reporting import repository, service
from leadflow_sla.reporting.consumer import FOLDED
from leadflow_sla.reporting.query import make_query
from tests.fixtures.keys import KEYS
from tests.fixtures.stack import CONFIG, lead_body

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class Pipeline:
    """Scoring, router and reporting consumers on one in-memory bus and a real database."""

    def __init__(self, engine: AsyncEngine, config: LeadflowConfig) -> None:
        self.engine = engine
        self.config = config
        self.bus = InMemoryBus()
        self.settings = Settings(config=CONFIG)
        self.now = T0
        self.keys: dict[str, str] = {}

    def _processor(self, name: str, handlers: Handlers) -> EventProcessor:
        return EventProcessor(
            consumer=name,
            engine=self.engine,
            handlers=handlers,
            dead_letters=self.bus,
            settings=self.settings,
            metrics=consumer_metrics(f"reporting_test_{name}"),
            clock=lambda: self.now,
        )

    async def lead(self, name: str, at: datetime, **lead: Any) -> None:
        """A web lead arrives at `at`, then scoring and the router handle it."""
        self.now = at
        body = LeadBody.model_validate(lead_body(f"{name}@buyer.example", **lead))
        event = to_event(
            body, keys=KEYS, source="web", delivery_id=f"d-{name}-{at.isoformat()}", now=at
        )
        self.keys[name] = event.subject
        await self.bus.publish(topics.RECEIVED, event.subject, event.to_bytes())
        await self._score_and_route()

    async def crm(self, name: str, event: str, at: datetime, **fields: Any) -> None:
        """The CRM reports an outcome that happened at `at`."""
        delivery = fields.pop("delivery_id", f"crm-{name}-{event}-{at.isoformat()}")
        body = ActivityBody.model_validate(
            {"event": event, "lead_key": self.keys[name], "occurred_at": at.isoformat(), **fields}
        )
        envelope = to_event(body, keys=KEYS, source="crm", delivery_id=delivery, now=self.now)
        await self.bus.publish(topics.ACTIVITY, envelope.subject, envelope.to_bytes())

    async def publish(self, event: Envelope) -> None:
        await self.bus.publish(topics.topic_for(event.type), event.subject, event.to_bytes())

    async def _score_and_route(self) -> None:
        async def score(session: AsyncSession, event: Envelope, now: datetime) -> None:
            await scoring_service.score_received(session, event, self.config.scoring, KEYS, now)

        async def route(session: AsyncSession, event: Envelope, now: datetime) -> None:
            await router_service.route_scored(session, event, self.config, now)

        for name, topic, handlers in (
            ("scoring", topics.RECEIVED, {"lead.received": one_by_one(score)}),
            ("router", topics.SCORED, {"lead.scored": one_by_one(route)}),
        ):
            await self.bus.deliver(name, [topic], self._processor(name, handlers))
            await OutboxRelay(self.engine, self.bus, self.settings, name).relay_once()

    async def report_consumer(self, topic_order: list[str]) -> None:
        """Run the reporting consumer over the topics in the given order (a batch a topic)."""
        reporting = self.config.reporting

        async def fold(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
            await service.apply_events(session, events, reporting, now)

        processor = self._processor(service.CONSUMER, dict.fromkeys(FOLDED, fold))
        for topic in topic_order:
            await self.bus.deliver(service.CONSUMER, [topic], processor)


async def build_world(engine: AsyncEngine) -> Pipeline:
    """Ten leads, their assignments and their CRM outcomes (the scenario every test reads)."""
    p = Pipeline(engine, load_config(CONFIG))
    big = {"company": {"name": "Bigco", "size": 1500, "industry": "software"}}
    mid = {"company": {"name": "Midco", "size": 500, "industry": "software"}}
    spring = {"campaign": "spring-webinar"}
    # Enterprise MQLs, round robin ana, ben, chloe, ana.
    await p.lead("l1", T0, utm={"source": "google"}, **spring, **big)
    await p.lead("l2", T0 + MIN, utm={"source": "linkedin"}, **big)
    await p.lead("l3", T0 + 2 * MIN, utm={"source": "google"}, **spring, **big)
    await p.lead("l4", T0 + 3 * MIN, utm={"source": "google"}, **big)
    # SMB MQLs (500 people, US): team smb, round robin dev, emma, felix.
    await p.lead("l5", T0 + 4 * MIN, utm={"source": "linkedin"}, **spring, **mid)
    await p.lead("l6", T0 + 5 * MIN, utm={"source": "google"}, **mid)
    await p.lead("l7", T0 + 6 * MIN, utm={"source": "google"}, **mid)
    # Nurture: an analyst downloading an ebook; the second gives no company size (other).
    analyst = {"job_title": "Analyst", "activity": "content_download"}
    await p.lead("l8", T0 + 7 * MIN, utm={"source": "google"}, company={"size": 20}, **analyst)
    await p.lead("l9", T0 + 8 * MIN, utm={"source": "ebook"}, company={"name": "X"}, **analyst)
    # l1 comes back two days later through a nurture email: its last touch.
    await p.lead("l1", T0 + 2 * DAY, utm={"source": "email"}, campaign="nurture-email", **big)
    # l10 arrived before November (out of a November report), assigned to ben.
    await p.lead("l10", T0 - 2 * DAY, utm={"source": "partner"}, **big)
    # l4 is taken from ana and given to chloe 20 minutes in.
    assigned = [
        e.data
        for e in map(Envelope.from_bytes, p.bus.values(topics.ASSIGNED))
        if e.subject == p.keys["l4"]
    ]
    assert isinstance(assigned[0], LeadAssigned)
    assert assigned[0].rep_id == "ana"
    moved = assigned[0].model_copy(
        update={"assignment_id": "re-l4", "rep_id": "chloe", "rep_name": "Chloé Martin",
                "assigned_at": T0 + 3 * MIN + 20 * MIN, "previous_rep_ids": ["ana"]}
    )  # fmt: skip
    await p.publish(new_event("lead.reassigned", moved, source="/test", time=T0 + 23 * MIN))

    await p.crm("l1", "contacted", T0 + 2 * MIN)
    await p.crm("l1", "contacted", T0 + 2 * MIN, delivery_id="again")  # redelivered below too
    await p.crm("l1", "accepted", T0 + HOUR)
    await p.crm("l1", "converted", T0 + DAY)
    await p.crm("l1", "won", T0 + 10 * DAY, amount=10000)
    await p.crm("l2", "contacted", T0 + MIN + 30 * MIN)
    await p.crm("l2", "accepted", T0 + 2 * HOUR)
    await p.crm("l2", "converted", T0 + 2 * DAY)
    await p.crm("l2", "won", T0 + 20 * DAY, amount=6000, profit=5000)
    await p.crm("l3", "contacted", T0 + 2 * MIN + 3 * HOUR)
    await p.crm("l3", "rejected", T0 + 4 * HOUR, reason="No budget")
    await p.crm("l5", "contacted", T0 + 4 * MIN + 30 * HOUR)
    await p.crm("l5", "accepted", T0 + 3 * DAY)
    await p.crm("l5", "converted", T0 + 4 * DAY)
    await p.crm("l5", "lost", T0 + 30 * DAY, reason="price")
    await p.crm("l6", "contacted", T0 + 5 * MIN + 4 * MIN)
    await p.crm("l6", "rejected", T0 + HOUR, reason="no  budget")
    await p.crm("l7", "contacted", T0 + 6 * MIN + 10 * MIN)
    await p.crm("l7", "accepted", T0 + HOUR)
    await p.crm("l7", "converted", T0 + DAY)
    await p.crm("l7", "won", T0 + 9 * DAY, amount=2000)
    await p.crm("l10", "contacted", T0 - 2 * DAY + MIN)
    await p.crm("l10", "won", T0 + DAY, amount=50000)
    # Outcomes first, leads last: the lifecycle must not depend on the order.
    await p.report_consumer([topics.ACTIVITY, topics.ASSIGNED, topics.SCORED, topics.RECEIVED])
    # A redelivery of the whole activity topic changes nothing.
    await p.report_consumer([topics.ACTIVITY])
    again = p.bus.topics[topics.ACTIVITY][:3]
    for record in again:
        await p.bus.publish(
            topics.ACTIVITY, record.key.decode() if record.key else "", record.value
        )
    await p.report_consumer([topics.ACTIVITY])
    return p


@pytest.fixture
async def world(engine: AsyncEngine) -> Pipeline:
    return await build_world(engine)


NOVEMBER = {"start": "2026-11-01", "end": "2026-11-30"}


async def report(world: Pipeline, kind: str, by: Any = None, **options: Any) -> Any:
    reporting = world.config.reporting
    query = make_query(reporting, **{**NOVEMBER, **options})
    async with session_factory(world.engine)() as session:
        if kind == "funnel":
            return await service.funnel_report(session, query, by or "source")
        if kind == "speed":
            return await service.speed_report(session, query)
        if kind == "reasons":
            return await service.reasons_report(session, query)
        return await service.roi_report(session, reporting, query, by or "segment")


async def test_lifecycles_are_folded_from_every_topic(world: Pipeline) -> None:
    async with session_factory(world.engine)() as session:
        l1 = await repository.lifecycle(session, world.keys["l1"])
        l4 = await repository.lifecycle(session, world.keys["l4"])
    assert l1 is not None
    assert l4 is not None
    assert (l1.touches, l1.first_touch_at, l1.first_source, l1.first_campaign) == (
        2,
        T0,
        "google",
        "spring-webinar",
    )
    assert (l1.last_touch_at, l1.last_source, l1.last_campaign) == (
        T0 + 2 * DAY,
        "email",
        "nurture-email",
    )
    assert (l1.first_segment, l1.tier, l1.mql_at, l1.ready_at) == ("enterprise", "mql", T0, T0)
    assert (l1.assigned_at, l1.team, l1.rep_id) == (T0, "enterprise", "ana")
    # Two distinct contact reports, each delivered twice: two contacts, the first one wins.
    assert (l1.contacted_at, l1.contacts) == (T0 + 2 * MIN, 2)
    assert (l1.won_at, l1.won_deals, l1.revenue, l1.revenue_without_profit) == (
        T0 + 10 * DAY,
        1,
        10000.0,
        10000.0,
    )
    assert (l4.assigned_at, l4.rep_id, l4.owner_since, l4.reassignments) == (
        T0 + 3 * MIN,
        "chloe",
        T0 + 23 * MIN,
        1,
    )
    assert l4.contacted_at is None


async def test_funnel_conversion_leakage_and_mql_to_sql(world: Pipeline) -> None:
    funnel = await report(world, "funnel")
    # November: l1..l9. MQL l1-l7; contacted all but l4; accepted l1 l2 l5 l7; won l1 l2 l7.
    assert [(s.stage, s.leads) for s in funnel.stages] == [
        ("received", 9),
        ("mql", 7),
        ("assigned", 7),
        ("contacted", 6),
        ("accepted", 4),
        ("sql", 4),
        ("won", 3),
    ]
    stages = {s.stage: s for s in funnel.stages}
    assert [s.from_previous for s in funnel.stages] == [
        None,
        0.7778,
        1.0,
        0.8571,
        0.6667,
        1.0,
        0.75,
    ]
    assert stages["won"].from_start == 0.3333
    assert (stages["mql"].leaked, stages["mql"].leaked_open) == (2, 2)  # l8, l9
    assert (stages["contacted"].leaked, stages["contacted"].leaked_open) == (1, 1)  # l4
    assert (stages["accepted"].leaked, stages["accepted"].leaked_rejected) == (2, 2)  # l3, l6
    assert (stages["won"].leaked, stages["won"].leaked_lost) == (1, 1)  # l5
    assert funnel.mql_to_sql == 0.5714  # 4 / 7
    # By first-touch source: google l1 l3 l4 l6 l7 l8, linkedin l2 l5, ebook l9.
    assert [(r.key, r.leads, r.mqls, r.sqls, r.won, r.revenue) for r in funnel.breakdown] == [
        ("google", 6, 5, 2, 2, 12000.0),
        ("linkedin", 2, 2, 2, 1, 6000.0),
        ("ebook", 1, 0, 0, 0, 0.0),
    ]
    google = funnel.breakdown[0]
    assert (google.lead_to_sale, google.mql_to_sql, google.average_deal) == (0.3333, 0.4, 6000.0)


async def test_breakdowns_by_segment_rep_campaign_and_last_touch(world: Pipeline) -> None:
    by_segment = (await report(world, "funnel", "segment")).breakdown
    assert [(r.key, r.leads, r.won, r.revenue) for r in by_segment] == [
        ("enterprise", 4, 2, 16000.0),
        ("smb", 4, 1, 2000.0),
        ("other", 1, 0, 0.0),
    ]
    by_rep = (await report(world, "funnel", "rep")).breakdown
    assert [(r.key, r.leads, r.won) for r in by_rep] == [
        ("ana", 1, 1),
        ("ben", 1, 1),
        ("felix", 1, 1),
        ("(none)", 2, 0),
        ("chloe", 2, 0),
        ("dev", 1, 0),
        ("emma", 1, 0),
    ]
    by_campaign = (await report(world, "funnel", "campaign")).breakdown
    assert [(r.key, r.leads, r.won) for r in by_campaign] == [
        ("spring-webinar", 3, 1),
        ("(none)", 6, 2),
    ]
    last = (await report(world, "funnel", "source", touch="last")).breakdown
    # Ranked by revenue: email (l1, 10000), linkedin (l2, 6000), google (l7, 2000), ebook.
    assert [(r.key, r.leads) for r in last] == [
        ("email", 1),
        ("linkedin", 2),
        ("google", 5),
        ("ebook", 1),
    ]


async def test_filters_and_the_period_select_the_leads(world: Pipeline) -> None:
    assert (await report(world, "funnel", start=None, end=None)).leads == 10
    assert (await report(world, "funnel", rep="chloe")).leads == 2
    assert (await report(world, "funnel", team="smb")).leads == 3
    assert (await report(world, "funnel", segment="smb")).leads == 4
    assert (await report(world, "funnel", source="linkedin")).leads == 2
    assert (await report(world, "funnel", campaign="spring-webinar")).leads == 3
    assert (await report(world, "funnel", source="email")).leads == 0
    assert (await report(world, "funnel", source="email", touch="last")).leads == 1
    # Minutes 3 to 5 after T0: l4 and l5 (the end bound is excluded).
    window = await report(world, "funnel", start="2026-11-02T09:03:00Z", end="2026-11-02T09:05:00Z")
    assert window.leads == 2


async def test_speed_to_lead_and_hand_off_to_contact(world: Pipeline) -> None:
    speed = await report(world, "speed")
    # MQLs l1..l7; seconds to first contact: 120, 1800, 10800, never, 108000, 240, 600.
    assert (speed.leads, speed.contacted) == (7, 6)
    # Sorted 120 240 600 1800 10800 108000: median 1200; p90 10800 + 0.5 * 97200 = 59400.
    assert (speed.median_s, speed.p90_s) == (1200.0, 59400.0)
    assert [(b.bucket, b.leads, b.share) for b in speed.buckets] == [
        ("lt_5m", 2, 0.2857),
        ("lt_1h", 2, 0.2857),
        ("lt_24h", 1, 0.1429),
        ("gte_24h", 1, 0.1429),
        ("never", 1, 0.1429),
    ]
    # Assigned the moment they qualified: hand-off to contact is the same, in days.
    assert (speed.handed_off, speed.handoff_contacted) == (7, 6)
    assert speed.handoff_median_days == round(1200 / 86400, 4)
    assert speed.handoff_p90_days == round(59400 / 86400, 4)
    assert speed.handoff_mean_days == round(
        sum((120, 240, 600, 1800, 10800, 108000)) / 6 / 86400, 4
    )
    reps = {r.rep: (r.leads, r.contacted, r.median_s, r.never) for r in speed.by_rep}
    assert reps == {
        "ana": (1, 1, 120.0, 0),
        "ben": (1, 1, 1800.0, 0),
        "chloe": (2, 1, 10800.0, 1),
        "dev": (1, 1, 108000.0, 0),
        "emma": (1, 1, 240.0, 0),
        "felix": (1, 1, 600.0, 0),
    }


async def test_rejection_and_lost_reasons(world: Pipeline) -> None:
    reasons = await report(world, "reasons")
    # Screened: accepted l1 l2 l5 l7, rejected l3 l6.
    assert (reasons.screened, reasons.rejected, reasons.rejection_rate) == (6, 2, 0.3333)
    assert [(r.reason, r.leads, r.share) for r in reasons.reasons] == [("no budget", 2, 1.0)]
    assert (reasons.lost, [(r.reason, r.leads) for r in reasons.lost_reasons]) == (
        1,
        [("price", 1)],
    )


async def test_roi_by_segment_and_by_campaign(world: Pipeline) -> None:
    roi = await report(world, "roi")
    rows = {r.key: r for r in roi.rows}
    enterprise, smb, other = rows["enterprise"], rows["smb"], rows["other"]
    # Enterprise: l1 10000 x 0.8 = 8000, l2 reported 5000: 13000 over 2 sales of 4 leads.
    # 6500 / 1.25 x 0.5 = 2600 affordable; 300 a lead from the config.
    assert (enterprise.leads, enterprise.sales, enterprise.profit) == (4, 2, 13000.0)
    assert (enterprise.profit_per_sale, enterprise.max_cost_per_lead) == (6500.0, 2600.0)
    assert (enterprise.cost_per_lead, enterprise.verdict, enterprise.spend) == (
        300.0,
        "within",
        1200.0,
    )
    assert enterprise.realized_roi == 9.8333  # (13000 - 1200) / 1200
    # SMB: l7 2000 x 0.5 = 1000 over 1 sale of 4 leads; target ROI 0.5: 1000 / 1.5 x 0.25.
    assert (smb.leads, smb.sales, smb.profit, smb.max_cost_per_lead) == (4, 1, 1000.0, 166.67)
    assert (smb.cost_per_lead, smb.verdict) == (100.0, "within")
    assert (other.leads, other.sales, other.verdict) == (1, 0, "no_cost")
    by_campaign = {r.key: r for r in (await report(world, "roi", "campaign")).rows}
    spring = by_campaign["spring-webinar"]
    # l1 8000 profit over 1 sale of 3 leads, default ROI 0.25: 8000 / 1.25 / 3 = 2133.33.
    assert (spring.leads, spring.sales, spring.max_cost_per_lead) == (3, 1, 2133.33)
    assert (spring.cost_per_lead, spring.verdict) == (40.0, "within")


async def test_a_run_time_cost_above_the_maximum_is_flagged(world: Pipeline) -> None:
    async with session_factory(world.engine)() as session, session.begin():
        await repository.set_cost(session, "segment", "smb", 150.0, T0)
        await repository.set_cost(session, "segment", "smb", 200.0, T0)  # replaces
    roi = await report(world, "roi")
    assert roi.flagged == 1
    smb = roi.rows[0]
    # 200 against 166.67: 33.33 over, 20 % over the maximum.
    assert (smb.key, smb.cost_per_lead, smb.cost_origin, smb.verdict) == (
        "smb",
        200.0,
        "api",
        "over",
    )
    assert (smb.over_by, smb.over_pct) == (33.33, 0.2)
    async with session_factory(world.engine)() as session, session.begin():
        assert await repository.delete_cost(session, "segment", "smb") is True
        assert await repository.delete_cost(session, "segment", "smb") is False
    assert (await report(world, "roi")).flagged == 0


async def test_two_consumers_folding_one_lead_at_once_lose_no_update(database_url: str) -> None:
    """Topics of one lead can sit with two consumers of the group: the row lock serializes."""
    config = load_config(CONFIG)
    engines = [create_engine(database_url) for _ in range(2)]
    key = "lk_0000000000000000000000aa"
    won = [
        new_event(
            "lead.won",
            LeadActivity(
                lead_key=key, activity="won", occurred_at=T0 + i * MIN, source="crm", amount=100
            ),
            source="/test",
            time=T0,
        )
        for i in range(40)
    ]

    async def consume(engine: AsyncEngine, events: list[Envelope]) -> None:
        async def fold(session: AsyncSession, batch: Sequence[Envelope], now: datetime) -> None:
            await service.apply_events(session, batch, config.reporting, now)

        processor = EventProcessor(
            consumer=service.CONSUMER,
            engine=engine,
            handlers=dict.fromkeys(FOLDED, fold),
            dead_letters=InMemoryBus(),
            settings=Settings(config=CONFIG),
            metrics=consumer_metrics("reporting_test_race"),
            clock=lambda: T0,
        )
        for offset, event in enumerate(events):
            await processor.process([Record("leads.activity", 0, offset, None, event.to_bytes())])

    try:
        await asyncio.gather(consume(engines[0], won[::2]), consume(engines[1], won[1::2]))
        async with session_factory(engines[0])() as session:
            lifecycle = await repository.lifecycle(session, key)
    finally:
        for engine in engines:
            await engine.dispose()
    assert lifecycle is not None
    assert (lifecycle.won_deals, lifecycle.revenue, lifecycle.won_at) == (40, 4000.0, T0)
