"""One person, one window, on SQLite and PostgreSQL: a contact reported by phone closes the
window of the lead assigned under the email, whether scoring's `lead.merged` comes before
or after it; of two live windows the earlier stays; the rows move to the survivor, the
timers of the windows closed stop (nothing fires), and the API answers at any key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import LeadflowConfig, load_config
from leadflow.db.engine import session_factory
from leadflow.db.tables import lead_aliases, outbox, processed_events
from leadflow.events import Envelope, LeadActivity, LeadAssigned, LeadMerged, new_event
from leadflow.metrics import consumer_metrics
from leadflow.processing import EventProcessor
from leadflow.settings import Settings
from leadflow_sla import domain, service
from leadflow_sla.api import router
from leadflow_sla.tables import sla_outcomes, sla_timers, sla_windows
from tests.fixtures.auth import AUTH, authorized
from tests.fixtures.stack import CONFIG

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # a Thursday
NOW = T0 + timedelta(minutes=5)
EMAIL, PHONE = "lk_email", "lk_phone"

SLA_SECTION = """
sla:
  policies:
    - name: ladder
      window: 10m
      tiers: [mql]
      warn_at_percent: 50
      escalate_after: 5m
      max_escalations: 1
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> LeadflowConfig:
    """The stack's configuration with a three-stage ladder for every MQL."""
    path: Path = tmp_path_factory.mktemp("config") / "sla.yaml"
    path.write_text(CONFIG.read_text().split("\nsla:\n")[0] + SLA_SECTION)
    return load_config(path)


def assigned(lead_key: str, rep_id: str, minutes: float = 0) -> Envelope:
    """The router's first assignment of a lead, `minutes` after T0."""
    at = T0 + timedelta(minutes=minutes)
    data = LeadAssigned(
        lead_key=lead_key,
        assignment_id=f"{lead_key}-{rep_id}",
        rep_id=rep_id,
        rep_name=rep_id.title(),
        team="enterprise",
        rule="enterprise-size",
        tier="mql",
        reason="test",
        assigned_at=at,
        received_at=at,
        source="web",
    )
    return new_event("lead.assigned", data, source="/test", time=at, event_id=data.assignment_id)


def contacted(*keys: str, minutes: float = 3, kind: str = "contacted") -> Envelope:
    """The CRM's outcome naming its person by `keys`, best first."""
    at = T0 + timedelta(minutes=minutes)
    data = LeadActivity(
        lead_key=keys[0], identifiers=list(keys), activity=kind, occurred_at=at, source="crm"
    )
    event_id = f"{kind}-{'-'.join(keys)}-{minutes}"
    return new_event(f"lead.{kind}", data, source="/test", time=at, event_id=event_id)


def merged(survivor: str, alias: str, *, absorbed: bool) -> Envelope:
    """Scoring's `lead.merged`: `alias` (a profile it absorbed, or an identifier it attached)
    now means `survivor`."""
    data = LeadMerged(
        survivor=survivor,
        absorbed=[alias] if absorbed else [],
        identifiers=[survivor, alias],
        merged_at=T0 + timedelta(minutes=1),
    )
    event_id = f"merge-{survivor}-{alias}"
    return new_event("lead.merged", data, source="/scoring", time=T0, event_id=event_id)


def processor(engine: AsyncEngine, config: LeadflowConfig) -> EventProcessor:
    """The monitor's consumer as the service runs it: inbox, batch handler, one commit."""

    async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        await service.apply_events(session, events, config, now)

    return EventProcessor(
        consumer="leadflow-sla-monitor",
        engine=engine,
        handlers=dict.fromkeys(domain.WINDOW_EVENTS, handle),
        dead_letters=InMemoryBus(),
        settings=Settings(),
        metrics=consumer_metrics("sla_people_test"),
        clock=lambda: NOW,
    )


def records(events: Sequence[Envelope]) -> list[Record]:
    return [
        Record("leads.activity", 0, i, e.subject.encode(), e.to_bytes())
        for i, e in enumerate(events)
    ]


async def consume(engine: AsyncEngine, config: LeadflowConfig, events: Sequence[Envelope]) -> None:
    """Each event in a batch of its own."""
    consumer = processor(engine, config)
    for one in events:
        await consumer.process(records([one]))


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Windows, timers, outcomes and aliases, in a stable order (row ids left out)."""
    async with engine.connect() as conn:
        windows = await conn.execute(
            select(
                sla_windows.c.assignment_id,
                sla_windows.c.lead_key,
                sla_windows.c.status,
                sla_windows.c.outcome,
                sla_windows.c.contacted_at,
            ).order_by(sla_windows.c.assignment_id)
        )
        timers = await conn.execute(
            select(
                sla_timers.c.assignment_id,
                sla_timers.c.stage,
                sla_timers.c.lead_key,
                sla_timers.c.status,
            ).order_by(sla_timers.c.assignment_id, sla_timers.c.stage)
        )
        outcomes = await conn.execute(
            select(
                sla_outcomes.c.lead_key, sla_outcomes.c.event_id, sla_outcomes.c.activity
            ).order_by(sla_outcomes.c.event_id)
        )
        aliases = await conn.execute(
            select(lead_aliases.c.alias, lead_aliases.c.survivor)
            .where(lead_aliases.c.consumer == service.ALIASES)
            .order_by(lead_aliases.c.alias)
        )
        return {
            "windows": [tuple(r) for r in windows.all()],
            "timers": [tuple(r) for r in timers.all()],
            "outcomes": [tuple(r) for r in outcomes.all()],
            "aliases": [tuple(r) for r in aliases.all()],
        }


async def clear(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        for table in (
            sla_windows,
            sla_timers,
            sla_outcomes,
            lead_aliases,
            outbox,
            processed_events,
        ):
            await session.execute(delete(table))


async def fire(engine: AsyncEngine, config: LeadflowConfig, at: datetime) -> list[Envelope]:
    """Fire every timer due by `at`; the alerts raised."""
    async with session_factory(engine)() as session, session.begin():
        await service.fire_due(session, config, "http://router.example", at)
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))
        return [Envelope.from_bytes(p) for p in rows.scalars()]


def interleavings(story: list[Envelope], merge: Envelope) -> list[list[Envelope]]:
    """The story with the merge at every place in it."""
    return [[*story[:i], merge, *story[i:]] for i in range(len(story) + 1)]


@pytest.mark.parametrize("absorbed", [False, True], ids=["identifier", "profile"])
async def test_a_contact_by_phone_closes_the_email_window_wherever_the_merge_comes(
    engine: AsyncEngine, config: LeadflowConfig, absorbed: bool
) -> None:
    story = [assigned(EMAIL, "ana"), contacted(PHONE)]
    merge = merged(EMAIL, PHONE, absorbed=absorbed)
    ends = []
    for events in interleavings(story, merge):
        await consume(engine, config, events)
        ends.append(await snapshot(engine))
        assert await fire(engine, config, T0 + timedelta(hours=1)) == []
        await clear(engine)
    # ... and one batch of them all.
    await processor(engine, config).process(records([merge, *story]))
    ends.append(await snapshot(engine))

    assert all(end == ends[0] for end in ends), ends
    contact = T0 + timedelta(minutes=3)
    assert ends[0]["windows"] == [(f"{EMAIL}-ana", EMAIL, "closed", "contacted", contact)]
    assert {(t[2], t[3]) for t in ends[0]["timers"]} == {(EMAIL, "stopped")}
    assert ends[0]["outcomes"] == [(EMAIL, f"contacted-{PHONE}-3", "contacted")]
    assert ends[0]["aliases"] == [(PHONE, EMAIL)]


async def test_two_live_windows_keep_the_earlier_wherever_the_merge_comes(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    # The phone's profile qualified first: it survives, though the email was assigned first.
    story = [assigned(EMAIL, "ana"), assigned(PHONE, "ben", minutes=1), contacted(EMAIL)]
    merge = merged(PHONE, EMAIL, absorbed=True)
    ends = []
    for events in interleavings(story, merge):
        await consume(engine, config, events)
        ends.append(await snapshot(engine))
        assert await fire(engine, config, T0 + timedelta(hours=1)) == []
        await clear(engine)

    assert all(end == ends[0] for end in ends), ends
    contact = T0 + timedelta(minutes=3)
    assert ends[0]["windows"] == [
        (f"{EMAIL}-ana", PHONE, "closed", "contacted", contact),
        (f"{PHONE}-ben", PHONE, "closed", "merged", None),
    ]
    assert {(t[2], t[3]) for t in ends[0]["timers"]} == {(PHONE, "stopped")}


async def test_the_window_closed_as_merged_never_alerts_the_kept_one_does(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    await consume(
        engine,
        config,
        [assigned(EMAIL, "ana"), assigned(PHONE, "ben", 1), merged(EMAIL, PHONE, absorbed=True)],
    )

    alerts = await fire(engine, config, T0 + timedelta(hours=1))
    assert sorted((a.type, a.subject, a.data.rep_id) for a in alerts) == [  # type: ignore[union-attr]
        ("sla.breached", EMAIL, "ana"),
        ("sla.escalated", EMAIL, "ana"),
        ("sla.warning", EMAIL, "ana"),
    ]


async def test_a_contact_that_closed_the_later_window_before_the_merge_moves_to_the_kept_one(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    """Both profiles were assigned and the phone's rep called (its window closed as
    contacted), then scoring merged them. The router keeps the earlier assignment (both were
    live: a contact leaves the lead with its rep) and closes the other as merged: so does
    the monitor, and the contact closes the kept window; nothing is left to alert."""
    await consume(
        engine,
        config,
        [
            assigned(EMAIL, "ana"),
            assigned(PHONE, "ben", 1),
            contacted(PHONE),
            merged(EMAIL, PHONE, absorbed=True),
        ],
    )

    contact = T0 + timedelta(minutes=3)
    assert (await snapshot(engine))["windows"] == [
        (f"{EMAIL}-ana", EMAIL, "closed", "contacted", contact),
        (f"{PHONE}-ben", EMAIL, "closed", "merged", None),
    ]
    assert await fire(engine, config, T0 + timedelta(hours=1)) == []


async def test_an_assignment_the_router_closed_on_a_rejection_is_not_kept(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    """The email's lead was contacted, then rejected (the router closed Ana's assignment);
    the phone's profile, assigned later to Ben, merges in: Ben's is the live assignment, and
    his window keeps running."""
    await consume(
        engine,
        config,
        [
            assigned(EMAIL, "ana"),
            contacted(EMAIL, minutes=2),
            contacted(EMAIL, minutes=4, kind="rejected"),
            assigned(PHONE, "ben", 6),
            merged(EMAIL, PHONE, absorbed=True),
        ],
    )

    contact = T0 + timedelta(minutes=2)
    assert (await snapshot(engine))["windows"] == [
        (f"{EMAIL}-ana", EMAIL, "closed", "contacted", contact),
        (f"{PHONE}-ben", EMAIL, "open", None, None),
    ]
    alerts = await fire(engine, config, T0 + timedelta(minutes=16))
    assert {(a.type, a.data.rep_id) for a in alerts} == {  # type: ignore[union-attr]
        ("sla.warning", "ben"),
        ("sla.breached", "ben"),
    }


async def test_an_outcome_from_before_the_assignment_stays_out_of_its_window(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    """A phone contacted long before the email's lead was assigned: the merge joins the
    outcome to the person, but it does not close the later window."""
    old = contacted(PHONE, minutes=-3 * 24 * 60)
    await consume(
        engine, config, [old, assigned(EMAIL, "ana"), merged(EMAIL, PHONE, absorbed=False)]
    )

    tables = await snapshot(engine)
    assert tables["windows"] == [(f"{EMAIL}-ana", EMAIL, "open", None, None)]
    assert tables["outcomes"] == [(EMAIL, old.id, "contacted")]
    assert [a.type for a in await fire(engine, config, T0 + timedelta(minutes=10))] == [
        "sla.warning",
        "sla.breached",
    ]


async def statements(engine: AsyncEngine, config: LeadflowConfig, events: list[Envelope]) -> int:
    """How many statements the monitor's consumer sends for one batch of `events`."""
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        await processor(engine, config).process(records(events))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    return len(sent)


async def test_statements_per_batch_of_merges_do_not_grow_with_the_batch(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    counts: dict[int, list[int]] = {}
    for n in (1, 100):
        people = [(f"e{n}-{i}", f"p{n}-{i}") for i in range(n)]
        await statements(engine, config, [assigned(e, "ana") for e, _ in people])
        await statements(engine, config, [contacted(p) for _, p in people])
        merging = await statements(engine, config, [merged(e, p, absorbed=True) for e, p in people])
        # Assignments, merges and outcomes by the absorbed keys, interleaved in one batch.
        fresh = [(f"f{n}-{i}", f"q{n}-{i}") for i in range(n)]
        mixed = await statements(
            engine,
            config,
            [
                one
                for e, p in fresh
                for one in (assigned(e, "ben"), merged(e, p, absorbed=False), contacted(p))
            ],
        )
        counts[n] = [merging, mixed]

    assert counts[100] == counts[1], counts
    tables = await snapshot(engine)
    assert {w[2:4] for w in tables["windows"]} == {("closed", "contacted")}
    assert {t[3] for t in tables["timers"]} == {"stopped"}
    aliases = {alias for alias, _ in tables["aliases"]}
    assert len(aliases) == 2 * (1 + 100)
    assert not aliases & {w[1] for w in tables["windows"]}  # no window left under an alias


@pytest.fixture
async def api(engine: AsyncEngine, config: LeadflowConfig) -> AsyncIterator[httpx.AsyncClient]:
    app = authorized(FastAPI())
    app.include_router(router)
    app.state.runtime = SimpleNamespace(
        settings=SimpleNamespace(app=config), sessions=session_factory(engine)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sla", headers=AUTH
    ) as client:
        yield client


async def test_the_api_answers_at_any_of_the_persons_keys(
    engine: AsyncEngine, config: LeadflowConfig, api: httpx.AsyncClient
) -> None:
    await consume(engine, config, [assigned(EMAIL, "ana"), merged(EMAIL, PHONE, absorbed=False)])

    by_email = (await api.get(f"/v1/sla/leads/{EMAIL}")).json()
    by_phone = (await api.get(f"/v1/sla/leads/{PHONE}")).json()
    assert by_phone == by_email
    assert by_phone["lead_key"] == EMAIL
    assert [w["assignment_id"] for w in by_phone["windows"]] == [f"{EMAIL}-ana"]
    missing = await api.get("/v1/sla/leads/lk_someone_else")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "No follow-up window was opened for lead 'lk_someone_else'."
