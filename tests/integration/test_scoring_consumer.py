"""The scoring service as a process on a real broker: a person's events out of order, redelivered.

One person's events carry two keys (email and phone), so they land on two partitions
and arrive in any order; redelivered records carry the same event id. Runs on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from leadflow.events import Envelope, LeadScored, derived_event_id
from leadflow_intake.canonical import LeadBody, to_event
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader, running_broker
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.keys import KEYS, lead_key_for
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def scoring(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The broker and the scoring service alone, on SQLite, then on PostgreSQL."""
    tmp = tmp_path_factory.mktemp(f"scoring-{request.param}")
    with running_broker() as bootstrap:
        for url in migrated_database_url(request.param, tmp):
            stack = Stack(bootstrap, url, tmp)
            stack.start("scoring")
            try:
                yield stack
            finally:
                stack.stop()


def received(lead: dict[str, Any], activity: str, at: datetime, delivery: str) -> Envelope:
    """A `lead.received` as the intake publishes it."""
    body = LeadBody.model_validate({"event": "lead", "activity": activity, "lead": lead})
    return to_event(body, keys=KEYS, source="web", delivery_id=delivery, now=at)


async def publish(bootstrap: str, records: list[tuple[Envelope, int]]) -> None:
    """Publish events to chosen partitions of leads.received, in the given order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for envelope, partition in records:
            await producer.send_and_wait(
                "leads.received",
                envelope.to_bytes(),
                key=envelope.subject.encode(),
                partition=partition,
            )
    finally:
        await producer.stop()


async def scored_for(reader: TopicReader, ids: set[str], seconds: float = 30) -> list[LeadScored]:
    """Read leads.scored until every expected id came, then a little longer (for duplicates)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ids <= {e.id for e in reader.events}:
        await reader.poll()
    settle = time.monotonic() + 2
    while time.monotonic() < settle:
        await reader.poll()
    found = [e for e in reader.events if e.id in ids]
    assert {e.id for e in found} == ids, "some lead.scored events never came"
    return [e.data for e in found if isinstance(e.data, LeadScored)]


async def test_out_of_order_and_redelivered_events_make_one_person_qualified_once(
    scoring: Stack,
) -> None:
    email, phone = "morgan.lee@harbor-logistics.example", "+16135550142"
    company = {"name": "Harbor", "size": 40, "industry": "retail"}
    first = received(
        {"email": email, "phone": phone, "job_title": "Analyst", "company": company},
        "content_download",
        T0,
        "first",
    )
    second = received(
        {"email": email, "job_title": "VP Operations"},
        "pricing_page",
        T0 + timedelta(days=1),
        "second",
    )
    call = received({"phone": phone}, "demo_request", T0 + timedelta(days=2), "call")
    assert first.subject == second.subject == lead_key_for(email)
    assert call.subject == lead_key_for(phone)

    # Newest first, across two partitions; then the first two are delivered again.
    await publish(scoring.bootstrap, [(call, 1), (second, 0), (first, 0), (call, 1), (second, 0)])

    ids = {derived_event_id("lead.scored", e.id) for e in (first, second, call)}
    async with TopicReader(scoring.bootstrap, ["leads.scored"]) as reader:
        scored = await scored_for(reader, ids)

    assert len(scored) == 3
    assert [s.activity for s in scored if s.newly_qualified] == ["demo_request"]
    # Which partition is read first is the broker's choice; the outcome must not depend on it.
    final = max(scored, key=lambda s: s.touches)
    assert final.lead_key in (first.subject, call.subject)
    assert set(final.merged_from) <= {first.subject, call.subject} - {final.lead_key}
    assert final.identifiers == sorted([first.subject, call.subject])
    assert (final.tier, final.qualified, final.touches) == ("mql", True, 3)

    url = scoring.services["scoring"].url
    profile = httpx.get(f"{url}/v1/leads/{first.subject}/profile", headers=AUTH).json()
    by_phone = httpx.get(f"{url}/v1/leads/{call.subject}/profile", headers=AUTH).json()
    assert profile["lead_key"] == by_phone["lead_key"] == final.lead_key
    assert profile["fields"]["job_title"] == "VP Operations"
    assert [t["activity"] for t in profile["touches"]] == [
        "content_download",
        "pricing_page",
        "demo_request",
    ]
    assert profile["first_touch"]["activity"] == "content_download"
    assert profile["last_touch"]["activity"] == "demo_request"


async def test_a_lead_that_crosses_the_bar_later_is_qualified_then_once(scoring: Stack) -> None:
    email = "slow.burner@harbor-logistics.example"
    small = {"email": email, "job_title": "VP Sales", "company": {"size": 40}}
    steps = [
        received(small, "content_download", T0, "s1"),
        received(small, "webinar", T0 + timedelta(hours=1), "s2"),
        received(small, "webinar", T0 + timedelta(hours=2), "s3"),
        received(small, "pricing_page", T0 + timedelta(hours=3), "s4"),
    ]
    await publish(scoring.bootstrap, [(e, 2) for e in steps])

    ids = {derived_event_id("lead.scored", e.id) for e in steps}
    async with TopicReader(scoring.bootstrap, ["leads.scored"]) as reader:
        scored = await scored_for(reader, ids)

    by_activity = sorted(scored, key=lambda s: s.touches)
    assert [s.tier for s in by_activity] == ["nurture", "watch", "watch", "mql"]
    assert [s.newly_qualified for s in by_activity] == [False, False, False, True]
    assert by_activity[-1].qualified_by == "threshold"
    assert all(s.grade for s in scored)
