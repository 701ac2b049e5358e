"""One lead end to end, for real: signed webhook over HTTP -> four service processes -> Kafka.

Runs on a real broker (tansu over TCP) with the embedded SQLite database and again
with PostgreSQL; SLA windows are 5 seconds long in the test configuration.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.db.engine import create_engine
from leadflow.events import Envelope, LeadAssigned, SlaAlert
from leadflow_router.tables import assignments
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import Stack, lead_body, stack_per_database

pytestmark = pytest.mark.integration


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Broker + four services on SQLite, then on PostgreSQL."""
    yield from stack_per_database(request, tmp_path_factory, "stack")


async def wait_for(
    reader: TopicReader,
    predicate: Callable[[Envelope], bool],
    *,
    count: int = 1,
    timeout_s: float = 20.0,
) -> list[Envelope]:
    """Poll until `count` events satisfy `predicate`; returns all that do."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await reader.poll()
        found = [e for e in reader.events if predicate(e)]
        if len(found) >= count:
            return found
    seen = [e.type for e in reader.events if predicate(e)]
    raise AssertionError(f"timed out: wanted {count} matching events, saw {len(seen)}")


async def drain(reader: TopicReader, seconds: float) -> None:
    """Keep reading for a while (to catch late duplicates)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await reader.poll()


def about(lead_key: str, type_: str) -> Callable[[Envelope], bool]:
    """Events of one type about one lead."""
    return lambda e: e.subject == lead_key and e.type == type_


async def assignment_rows(stack: Stack, lead_keys: list[str]) -> dict[str, int]:
    """Assignment rows per lead, read from the services' database."""
    engine = create_engine(stack.database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(assignments.c.lead_key, func.count())
                .where(assignments.c.lead_key.in_(lead_keys))
                .group_by(assignments.c.lead_key)
            )
            return {str(key): int(count) for key, count in rows.all()}
    finally:
        await engine.dispose()


def topics_reader(stack: Stack) -> TopicReader:
    """A reader of the assignment and alert topics."""
    return TopicReader(stack.bootstrap, ["leads.assigned", "leads.alerts"])


async def test_signed_lead_is_assigned_then_breach_alerted(stack: Stack) -> None:
    response = stack.post("web", lead_body("dana.lee@bigco.example"))
    assert response.status_code == 202, response.text
    lead_key = response.json()["lead_key"]
    assert lead_key == lead_key_for("dana.lee@bigco.example")

    async with topics_reader(stack) as reader:
        [assigned] = await wait_for(reader, about(lead_key, "lead.assigned"))
        [breached] = await wait_for(reader, about(lead_key, "sla.breached"))

    assert isinstance(assigned.data, LeadAssigned)
    assert assigned.data.team == "enterprise"
    assert assigned.data.rule == "enterprise-size"
    assert isinstance(breached.data, SlaAlert)
    assert breached.data.rep_id == assigned.data.rep_id
    assert breached.data.manager_email == "grace@example.com"
    assert assigned.data.rep_name in breached.data.message
    assert breached.data.due_at >= assigned.data.assigned_at
    why = httpx.get(
        f"{stack.services['router'].url}/v1/leads/{lead_key}/routing", headers=AUTH
    ).json()
    assert why["decisions"][0]["rep_id"] == assigned.data.rep_id
    assert why["decisions"][0]["rule"] == "enterprise-size"


async def test_redelivered_webhook_is_answered_alike_and_assigned_once(stack: Stack) -> None:
    body = lead_body("redelivered@bigco.example")
    first = stack.post("web", body, delivery_id="msg_redelivery_1")
    second = stack.post("web", body, delivery_id="msg_redelivery_1")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    lead_key = first.json()["lead_key"]

    async with topics_reader(stack) as reader:
        await wait_for(reader, about(lead_key, "lead.assigned"))
        await drain(reader, 2.0)
        assigned = [e for e in reader.events if about(lead_key, "lead.assigned")(e)]

    assert len(assigned) == 1
    assert await assignment_rows(stack, [lead_key]) == {lead_key: 1}


async def test_contact_within_the_window_stops_the_timer(stack: Stack) -> None:
    lead = lead_body("quick.contact@mittel.example", country="DE", company={"size": 300})
    response = stack.post("web", lead)
    lead_key = response.json()["lead_key"]
    async with topics_reader(stack) as reader:
        [assigned] = await wait_for(reader, about(lead_key, "lead.assigned"))
        assert isinstance(assigned.data, LeadAssigned)
        assert assigned.data.rule == "dach-to-felix"
        contacted = stack.post(
            "crm",
            {
                "event": "contacted",
                "lead_key": lead_key,
                "rep_id": assigned.data.rep_id,
                "occurred_at": assigned.data.assigned_at.isoformat(),
            },
        )
        assert contacted.status_code == 202, contacted.text
        await drain(reader, 16.5)  # past the 15 s window of DACH leads
        assert not [e for e in reader.events if about(lead_key, "sla.breached")(e)]


async def test_refused_webhooks_publish_nothing(stack: Stack) -> None:
    body = lead_body("forged@bigco.example")
    forged = httpx.post(
        f"{stack.services['intake'].url}/v1/webhooks/web",
        json=body,
        headers={
            "webhook-id": "msg_x",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,AAAA",
        },
    )
    assert forged.status_code == 401
    assert forged.headers["content-type"] == "application/problem+json"
    unknown = stack.post("web", body)
    unknown_source = httpx.post(f"{stack.services['intake'].url}/v1/webhooks/nope", json=body)
    assert unknown_source.status_code == 404
    # The one accepted post is the only one that may show up downstream.
    lead_key = unknown.json()["lead_key"]
    async with TopicReader(stack.bootstrap, ["leads.received"]) as reader:
        await wait_for(reader, about(lead_key, "lead.received"))
        await drain(reader, 1.0)
        assert len([e for e in reader.events if e.subject == lead_key]) == 1


async def test_router_killed_mid_stream_loses_and_duplicates_nothing(stack: Stack) -> None:
    emails = [f"burst{i}@bigco.example" for i in range(40)]
    lead_keys = [lead_key_for(email) for email in emails]
    async with topics_reader(stack) as reader:
        for email in emails[:20]:
            assert stack.post("web", lead_body(email)).status_code == 202
        await wait_for(reader, lambda e: e.type == "lead.assigned" and e.subject in lead_keys)
        stack.kill("router")
        for email in emails[20:]:
            assert stack.post("web", lead_body(email)).status_code == 202
        stack.start("router")
        assigned = await wait_for(
            reader,
            lambda e: e.type == "lead.assigned" and e.subject in lead_keys,
            count=len(lead_keys),
            timeout_s=60,
        )
        await drain(reader, 1.0)

    distinct = {(e.subject, e.id) for e in reader.events if e.type == "lead.assigned"}
    per_lead = {key: sum(1 for s, _ in distinct if s == key) for key in lead_keys}
    assert per_lead == dict.fromkeys(lead_keys, 1)
    assert {e.subject for e in assigned} == set(lead_keys)
    assert await assignment_rows(stack, lead_keys) == dict.fromkeys(lead_keys, 1)


async def test_sigterm_stops_a_service_cleanly_and_it_resumes(stack: Stack) -> None:
    scoring = stack.services["scoring"]
    assert scoring.process is not None
    scoring.process.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once its graceful shutdown is complete.
    assert scoring.process.wait(20) in (0, -signal.SIGTERM)
    log = scoring.log.read_text()
    assert '"message":"service stopped"' in log
    assert "Traceback" not in log

    response = stack.post("web", lead_body("after.restart@bigco.example"))
    stack.start("scoring")
    async with topics_reader(stack) as reader:
        await wait_for(reader, about(response.json()["lead_key"], "lead.assigned"))
