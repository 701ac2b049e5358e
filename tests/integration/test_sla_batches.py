"""SLA monitor batches on SQLite and PostgreSQL: a batch opens and closes follow-up windows as
its events one at a time do, in Kafka order, in the same few statements for one event or a
hundred; copies of an assignment open one window; the timers it leaves open fire.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import LeadflowConfig, load_config
from leadflow.db.engine import session_factory
from leadflow.db.tables import outbox, processed_events
from leadflow.events import Envelope, LeadActivity, LeadAssigned, new_event
from leadflow.metrics import consumer_metrics
from leadflow.processing import EventProcessor
from leadflow.settings import Settings
from leadflow_sla import domain, repository, service, windows
from leadflow_sla.tables import sla_timers, sla_windows
from tests.fixtures.stack import CONFIG

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # a Thursday
NOW = T0 + timedelta(minutes=2)
CONSUMER = "leadflow-sla-monitor"

SLA_SECTION = """
sla:
  policies:
    - name: ladder
      window: 10m
      tiers: [mql]
      rules: [enterprise-size]
      warn_at_percent: 50
      escalate_after: 5m
      max_escalations: 1
    - name: mql
      window: 30m
      tiers: [mql]
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> LeadflowConfig:
    """The stack's configuration with a three-stage ladder; `watch` leads have no policy."""
    path: Path = tmp_path_factory.mktemp("config") / "sla.yaml"
    path.write_text(CONFIG.read_text().split("\nsla:\n")[0] + SLA_SECTION)
    return load_config(path)


def assigned(
    lead_key: str,
    rep_id: str = "ana",
    *,
    seq: int = 1,
    previous: list[str] | None = None,
    tier: str = "mql",
    event_id: str | None = None,
) -> Envelope:
    """The router's `lead.assigned` (`lead.reassigned` when the lead had reps before)."""
    data = LeadAssigned(
        lead_key=lead_key,
        assignment_id=f"{lead_key}-{seq}",
        rep_id=rep_id,
        rep_name=rep_id.title(),
        team="enterprise",
        rule="enterprise-size",
        tier=tier,
        reason="test",
        assigned_at=T0,
        received_at=T0,
        previous_rep_ids=previous or [],
        source="web",
    )
    type_ = "lead.reassigned" if previous else "lead.assigned"
    return new_event(type_, data, source="/test", time=T0, event_id=event_id or f"{lead_key}-{seq}")


def activity(lead_key: str, kind: str, minutes: float = 1) -> Envelope:
    """The CRM's `lead.<kind>`, `minutes` after the assignments."""
    at = T0 + timedelta(minutes=minutes)
    data = LeadActivity(lead_key=lead_key, activity=kind, occurred_at=at, source="crm")
    return new_event(f"lead.{kind}", data, source="/test", time=at, event_id=f"{lead_key}-{kind}")


# Each event sees the ones before it in the batch.
MIXED = [
    assigned("a"),  # opens a-1
    assigned("b", "ben"),  # opens b-1 (two leads interleaved)
    activity("a", "contacted"),  # closes a-1: opened and contacted in one batch
    assigned("b", "ben", event_id="b-1-copy"),  # a copy of b-1's assignment: nothing
    assigned("b", "chloe", seq=2, previous=["ben"]),  # closes b-1, opens b-2 (breach only)
    activity("s", "accepted"),  # closes s-1, stored by an earlier batch
    assigned("c"),  # opens c-1
    assigned("c", "ben", seq=2, previous=["ana"], tier="watch"),  # closes c-1, no policy
    activity("b", "rejected"),  # closes b-2
    activity("nobody", "contacted"),  # no window: nothing
    assigned("e", "ben"),  # opens e-1
    activity("e", "lost"),  # closes e-1: a lead lost was followed up, and ends
    assigned("d", "ben"),  # opens d-1, left open
]


async def apply(
    engine: AsyncEngine, config: LeadflowConfig, events: Sequence[Envelope], now: datetime = NOW
) -> list[datetime]:
    """Apply `events` as one batch; returns the due times hinted to the scheduler."""
    hints: list[datetime] = []
    async with session_factory(engine)() as session, session.begin():
        await service.apply_events(session, events, config, now, hints.append)
    return hints


async def snapshot(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    """The windows and timers, in the order they were written (row ids left out)."""
    found: dict[str, list[dict[str, Any]]] = {}
    async with engine.connect() as conn:
        for table in (sla_windows, sla_timers):
            rows = await conn.execute(select(table).order_by(table.c.id))
            found[table.name] = [
                {k: v for k, v in r._mapping.items() if k != "id"} for r in rows.all()
            ]
    return found


async def clear(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        for table in (sla_windows, sla_timers, outbox, processed_events):
            await session.execute(delete(table))


def outcomes(tables: dict[str, list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """(assignment, status, outcome, contacted at, escalations) of each window."""
    return [
        (w["assignment_id"], w["status"], w["outcome"], w["contacted_at"], w["escalations"])
        for w in tables["sla_windows"]
    ]


def timers(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[str, str]]]:
    """Each assignment's timers: (stage, status)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for t in tables["sla_timers"]:
        found.setdefault(t["assignment_id"], []).append((t["stage"], t["status"]))
    return found


async def test_a_batch_opens_and_closes_windows_as_its_events_one_at_a_time_do(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    await apply(engine, config, [assigned("s")])
    speed = "leadflow_sla_speed_to_lead_seconds"
    contacts = REGISTRY.get_sample_value(f"{speed}_count") or 0.0
    seconds = REGISTRY.get_sample_value(f"{speed}_sum") or 0.0

    hints = await apply(engine, config, MIXED)
    together = await snapshot(engine)
    await clear(engine)
    await apply(engine, config, [assigned("s")])
    for one in MIXED:
        await apply(engine, config, [one])

    assert together == await snapshot(engine)
    minute = T0 + timedelta(minutes=1)
    assert outcomes(together) == [
        ("s-1", "closed", "accepted", None, 0),
        ("a-1", "closed", "contacted", minute, 0),
        ("b-1", "closed", "reassigned", None, 0),
        ("b-2", "closed", "rejected", None, 1),
        ("c-1", "closed", "reassigned", None, 0),
        ("e-1", "closed", "lost", None, 0),
        ("d-1", "open", None, None, 0),
    ]
    assert all(w["closed_at"] == NOW for w in together["sla_windows"][:-1])
    ladder = ["warning", "breached", "escalated"]
    stopped = [(stage, "stopped") for stage in ladder]
    assert timers(together) == {
        "s-1": stopped,
        "a-1": stopped,
        "b-1": stopped,
        "b-2": [("warning", "stopped"), ("breached", "stopped")],  # escalated once already
        "c-1": stopped,
        "e-1": stopped,
        "d-1": [(stage, "open") for stage in ladder],
    }
    assert all(t["closed_at"] == NOW for t in together["sla_timers"] if t["status"] == "stopped")
    # Only the timers left open wake the scheduler; one first contact, a minute after.
    minutes = [5, 10, 15]
    assert hints == [T0 + timedelta(minutes=m) for m in minutes]
    assert REGISTRY.get_sample_value(f"{speed}_count") == contacts + 2  # batch, then alone
    assert REGISTRY.get_sample_value(f"{speed}_sum") == seconds + 120


async def test_events_apply_in_their_order_within_a_batch(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    await apply(
        engine,
        config,
        [
            activity("x", "contacted"),  # before x's assignment: nothing to close
            assigned("x"),
            assigned("y"),
            activity("y", "contacted"),
            assigned("z"),
            assigned("x", "ben", seq=2, previous=["ana"]),
            activity("z", "accepted"),
            activity("x", "converted", minutes=3),
            assigned("z", "ben", seq=2, previous=["ana"]),
        ],
    )

    assert outcomes(await snapshot(engine)) == [
        ("x-1", "closed", "reassigned", None, 0),
        ("y-1", "closed", "contacted", T0 + timedelta(minutes=1), 0),
        ("z-1", "closed", "accepted", None, 0),
        ("x-2", "closed", "converted", None, 1),
        ("z-2", "open", None, None, 1),
    ]


async def test_copies_of_an_assignment_open_one_window(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    first = assigned("e")
    copy = assigned("e", event_id="e-1-copy")
    await apply(engine, config, [first, copy, assigned("e", event_id="e-1-again")])
    # A later copy, even after the window closed, opens nothing again.
    await apply(engine, config, [activity("e", "contacted"), copy, first])

    tables = await snapshot(engine)
    assert outcomes(tables) == [("e-1", "closed", "contacted", T0 + timedelta(minutes=1), 0)]
    assert len(tables["sla_timers"]) == 3


async def test_the_timers_a_batch_leaves_open_fire_from_the_database(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    await apply(engine, config, [assigned("s")])
    await apply(engine, config, MIXED)

    async with session_factory(engine)() as session, session.begin():
        fired = await service.fire_due(session, config, "http://router", T0 + timedelta(hours=1))
    async with engine.connect() as conn:
        alerts = (await conn.execute(select(outbox.c.key, outbox.c.payload))).all()

    assert fired == 3
    assert sorted(Envelope.from_bytes(p).type for _, p in alerts) == [
        "sla.breached",
        "sla.escalated",
        "sla.warning",
    ]
    assert {key for key, _ in alerts} == {"d"}


def processor(engine: AsyncEngine, config: LeadflowConfig) -> EventProcessor:
    """The monitor's consumer as the service runs it: inbox, batch handler, one commit."""

    async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        await service.apply_events(session, events, config, now)

    return EventProcessor(
        consumer=CONSUMER,
        engine=engine,
        handlers=dict.fromkeys(
            ("lead.assigned", "lead.reassigned", *domain.STOPPING_ACTIVITIES), handle
        ),
        dead_letters=InMemoryBus(),
        settings=Settings(),
        metrics=consumer_metrics("sla_batches_test"),
        clock=lambda: NOW,
    )


async def statements(
    engine: AsyncEngine, config: LeadflowConfig, events: Sequence[Envelope]
) -> int:
    """How many statements the monitor's consumer sends for one batch of `events`."""
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    records = [
        Record("leads.assigned", 0, i, e.subject.encode(), e.to_bytes())
        for i, e in enumerate(events)
    ]
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        await processor(engine, config).process(records)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    return len(sent)


async def test_statements_per_batch_do_not_grow_with_the_batch(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    def leads(tag: str, n: int) -> list[str]:
        return [f"{tag}{i}" for i in range(n)]

    counts: dict[int, list[int]] = {}
    for n in (1, 100):
        # Opening windows (inbox, aliases, load, windows, timers; SQLite's BEGIN IMMEDIATE
        # is one).
        opening = await statements(engine, config, [assigned(k) for k in leads(f"o{n}-", n)])
        # Reassigning every lead: closing stored windows and opening new ones.
        moving = await statements(
            engine,
            config,
            [assigned(k, "ben", seq=2, previous=["ana"]) for k in leads(f"o{n}-", n)],
        )
        # Contacts: closing stored windows only.
        closing = await statements(
            engine, config, [activity(k, "contacted") for k in leads(f"o{n}-", n)]
        )
        # Opened and closed within the batch, interleaved with outcomes of unknown leads.
        brief = [
            e
            for k in leads(f"w{n}-", n)
            for e in (assigned(k), activity(f"none-{k}", "accepted"), activity(k, "contacted"))
        ]
        counts[n] = [opening, moving, closing, await statements(engine, config, brief)]

    assert counts[100] == counts[1], counts
    opening, moving, closing, within = counts[1]
    assert opening <= 7  # the erasure records of the batch's keys included
    assert moving <= opening + 2  # the stored windows closed, and their timers
    assert closing <= 8  # ... and the outcomes received
    assert within <= opening + 1  # the outcomes received
    # A batch of copies the inbox already saw costs the inbox and nothing else.
    again = [assigned(k) for k in leads("o100-", 100)]
    assert await statements(engine, config, again) <= 2

    tables = await snapshot(engine)
    assert len(tables["sla_windows"]) == 2 * 101 + 101
    assert {w["status"] for w in tables["sla_windows"]} == {"closed"}
    assert {t["status"] for t in tables["sla_timers"]} == {"stopped"}


async def test_a_window_closed_meanwhile_keeps_its_outcome(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    await apply(engine, config, [assigned("f")])
    sessions = session_factory(engine)
    async with sessions() as session:
        stale = windows.WindowBook(await repository.windows_touched(session, {"f"}, set()))
    await apply(engine, config, [activity("f", "contacted")])  # another batch, first

    stale.close("f", "rejected", NOW + timedelta(minutes=5))
    async with sessions() as session, session.begin():
        await repository.save_windows(session, stale.opened, stale.closed, NOW)

    [window] = outcomes(await snapshot(engine))
    assert window == ("f-1", "closed", "contacted", T0 + timedelta(minutes=1), 0)


async def test_a_window_opened_meanwhile_for_the_same_assignment_is_kept(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    sessions = session_factory(engine)
    stale = windows.WindowBook()  # loaded before the other batch opened g-1
    windows.apply(stale, assigned("g", "ben"), config, NOW)
    await apply(engine, config, [assigned("g")])

    async with sessions() as session, session.begin():
        await repository.save_windows(session, stale.opened, stale.closed, NOW)

    tables = await snapshot(engine)
    assert [(w["assignment_id"], w["rep_id"]) for w in tables["sla_windows"]] == [("g-1", "ana")]
    assert [(t["stage"], t["rep_id"]) for t in tables["sla_timers"]] == [
        ("warning", "ana"),
        ("breached", "ana"),
        ("escalated", "ana"),
    ]
