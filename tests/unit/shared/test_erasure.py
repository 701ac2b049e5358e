"""What an erasure changes in a consumer's batch, and what the erasure record keeps (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.erasure import ERASED, erasing, happened_at, key_hash, keys_named
from leadflow.events import (
    Envelope,
    LeadActivity,
    LeadErased,
    LeadMerged,
    new_event,
)
from leadflow.processing import dispatch

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def contacted(key: str, at: datetime, *identifiers: str) -> Envelope:
    data = LeadActivity(
        lead_key=key,
        activity="contacted",
        occurred_at=at,
        source="crm",
        identifiers=[key, *identifiers],
    )
    return new_event("lead.contacted", data, source="/t", time=at + timedelta(hours=1))


def erased(key: str, *others: str) -> Envelope:
    data = LeadErased(lead_key=key, keys=[key, *others], erased_at=T0)
    return new_event("lead.erased", data, source="/t", time=T0)


async def test_a_batch_is_applied_around_each_run_of_erasures() -> None:
    calls: list[tuple[str, list[str]]] = []

    async def handle(_session: Any, events: Sequence[Envelope], _now: datetime) -> None:
        calls.append(("handle", [e.subject for e in events]))

    async def erase(_session: Any, people: Sequence[LeadErased], _now: datetime) -> None:
        calls.append(("erase", [p.lead_key for p in people]))

    batch = [
        contacted("a", T0),
        contacted("b", T0),
        erased("a"),
        erased("c"),
        contacted("a", T0 + timedelta(minutes=1)),
        erased("b"),
    ]
    table = {"lead.contacted": handle, ERASED: erasing(erase)}
    await dispatch(table)(cast(AsyncSession, None), batch, T0)
    assert calls == [
        ("handle", ["a", "b"]),
        ("erase", ["a", "c"]),
        ("handle", ["a"]),
        ("erase", ["b"]),
    ]


def test_an_event_names_its_person_by_every_key_it_carries() -> None:
    assert keys_named(contacted("a", T0, "b", "c")) == {"a", "b", "c"}
    merged = LeadMerged(survivor="s", absorbed=["x"], identifiers=["s", "y"], merged_at=T0)
    assert keys_named(new_event("lead.merged", merged, source="/t", time=T0)) == {"s", "x", "y"}


def test_an_event_is_as_old_as_what_it_tells_of() -> None:
    # The outcome happened at T0; the CRM reported it an hour later.
    assert happened_at(contacted("a", T0)) == T0
    assert happened_at(erased("a")) == T0


def test_the_erasure_record_keeps_a_digest_of_the_key_only() -> None:
    digest = key_hash("lk_0123456789abcdef01234567")
    assert len(digest) == 64
    assert "0123456789abcdef" not in digest
