"""A consumer's table of event type -> handler: what it accepts, and how a batch reaches it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from leadflow.bus.memory import InMemoryBus
from leadflow.events import Envelope, LeadActivity, LeadMerged, new_event
from leadflow.metrics import consumer_metrics
from leadflow.processing import BatchHandler, EventProcessor, dispatch, runs
from leadflow.runtime import ConsumerSpec, MakeHandler, Runtime
from leadflow.settings import Settings

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SESSION = cast(AsyncSession, None)


def outcome(key: str, kind: str, event_id: str) -> Envelope:
    data = LeadActivity(lead_key=key, activity=kind, occurred_at=T0, source="crm")
    return new_event(f"lead.{kind}", data, source="/t", time=T0, event_id=event_id)


def merged(survivor: str, absorbed: str, event_id: str) -> Envelope:
    data = LeadMerged(survivor=survivor, absorbed=[absorbed], identifiers=[survivor], merged_at=T0)
    return new_event("lead.merged", data, source="/t", time=T0, event_id=event_id)


class Calls:
    """Handlers that write down which events each was given, batch by batch."""

    def __init__(self) -> None:
        self.made: list[tuple[str, list[str]]] = []

    def handler(self, name: str) -> BatchHandler:
        async def handle(
            _session: AsyncSession, events: Sequence[Envelope], _now: datetime
        ) -> None:
            self.made.append((name, [e.id for e in events]))

        return handle


def test_consecutive_events_of_one_handler_make_one_run_in_batch_order() -> None:
    calls = Calls()
    lifecycle, merge = calls.handler("lifecycle"), calls.handler("merge")
    table = {"lead.contacted": lifecycle, "lead.won": lifecycle, "lead.merged": merge}
    batch = [
        outcome("a", "contacted", "e1"),
        outcome("b", "won", "e2"),
        merged("a", "b", "e3"),
        merged("a", "c", "e4"),
        outcome("a", "won", "e5"),
    ]

    cut = runs(table, batch)

    assert [(handler, [e.id for e in run]) for handler, run in cut] == [
        (lifecycle, ["e1", "e2"]),
        (merge, ["e3", "e4"]),
        (lifecycle, ["e5"]),
    ]


async def test_dispatch_applies_a_merge_after_the_outcome_before_it_and_before_the_one_after() -> (
    None
):
    calls = Calls()
    table = {
        "lead.contacted": calls.handler("outcomes"),
        "lead.merged": calls.handler("merges"),
    }
    batch = [
        outcome("a", "contacted", "e1"),
        merged("a", "b", "e2"),
        outcome("b", "contacted", "e3"),
    ]

    await dispatch(table)(SESSION, batch, T0)

    assert calls.made == [("outcomes", ["e1"]), ("merges", ["e2"]), ("outcomes", ["e3"])]


async def test_an_event_of_a_type_the_table_lacks_reaches_no_handler() -> None:
    calls = Calls()
    contacts = calls.handler("contacts")
    batch = [
        outcome("a", "contacted", "e1"),
        outcome("a", "lost", "e2"),
        outcome("b", "contacted", "e3"),
    ]

    await dispatch({"lead.contacted": contacts})(SESSION, batch, T0)

    # Nothing in between for the handler: the events around the skipped one stay one run.
    assert calls.made == [("contacts", ["e1", "e3"])]


async def test_a_batch_of_nothing_the_table_lists_calls_no_handler() -> None:
    calls = Calls()
    await dispatch({"lead.merged": calls.handler("merges")})(
        SESSION, [outcome("a", "won", "e1")], T0
    )
    assert calls.made == []


def test_a_processor_accepts_exactly_its_table_s_types() -> None:
    handle = Calls().handler("any")
    processor = EventProcessor(
        consumer="table",
        engine=create_async_engine("sqlite+aiosqlite://"),
        handlers={"lead.contacted": handle, "lead.merged": handle},
        dead_letters=InMemoryBus(),
        settings=Settings(),
        metrics=consumer_metrics("unit_table"),
    )
    assert processor.accepts == {"lead.contacted", "lead.merged"}


def test_a_processor_without_a_handler_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one event type"):
        EventProcessor(
            consumer="empty",
            engine=create_async_engine("sqlite+aiosqlite://"),
            handlers={},
            dead_letters=InMemoryBus(),
            settings=Settings(),
            metrics=consumer_metrics("unit_empty"),
        )


def test_a_consumer_makes_each_handler_once_so_types_that_share_it_share_its_runs() -> None:
    made: list[str] = []
    calls = Calls()

    def maker(name: str) -> MakeHandler:
        def make(_runtime: Runtime) -> BatchHandler:
            made.append(name)
            return calls.handler(name)

        return make

    lifecycle, erase = maker("lifecycle"), maker("erase")
    spec = ConsumerSpec(
        "group",
        [],
        {"lead.contacted": lifecycle, "lead.merged": lifecycle, "lead.erased": erase},
    )

    table = spec.table(cast(Runtime, SimpleNamespace()))

    assert spec.accepts == {"lead.contacted", "lead.merged", "lead.erased"}
    assert sorted(made) == ["erase", "lifecycle"]
    assert table["lead.contacted"] is table["lead.merged"]
    assert table["lead.erased"] is not table["lead.merged"]
