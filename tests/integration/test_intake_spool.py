"""The broker paused mid-stream (SIGSTOP), then resumed (SIGCONT): every webhook answered 202
during the pause is spooled, relayed in order, and assigned exactly once downstream.

Four service processes on a real broker (tansu over TCP), SQLite and PostgreSQL. Only the
broker process this test started is paused, by its pid.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader, pause, running_broker_process
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import Stack, lead_body
from tests.integration.test_end_to_end import assignment_rows, drain, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def paused_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, subprocess.Popen[bytes]]]:
    """Broker (with its process) + four services."""
    tmp = tmp_path_factory.mktemp(f"spool-{request.param}")
    with running_broker_process() as (bootstrap, broker):
        for url in migrated_database_url(request.param, tmp):
            stack = Stack(bootstrap, url, tmp, env={"LEADFLOW_INTAKE_SPOOL_AFTER_S": "0.3"})
            stack.start()
            # Ready means webhooks are kept (by the spool, until the broker is reached): wait
            # until they go straight to the broker, so the pause is what makes them spool.
            deadline = time.monotonic() + 30
            while readyz(stack)["degraded"] and time.monotonic() < deadline:
                time.sleep(0.1)
            try:
                yield stack, broker
            finally:
                stack.stop()


def readyz(stack: Stack) -> dict[str, object]:
    response = httpx.get(f"{stack.services['intake'].url}/readyz", timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_broker_paused_mid_stream_loses_and_duplicates_nothing(
    paused_stack: tuple[Stack, subprocess.Popen[bytes]],
) -> None:
    stack, broker = paused_stack
    emails = [f"paused{i}@bigco.example" for i in range(36)]
    lead_keys = [lead_key_for(email) for email in emails]

    sent: dict[str, list[str]] = {}  # lead key -> event ids in the order they were answered

    def post(batch: list[str], activity: str = "demo_request") -> None:
        for email in batch:
            response = stack.post("web", lead_body(email, activity=activity))
            assert response.status_code == 202, response.text
            sent.setdefault(response.json()["lead_key"], []).append(response.json()["event_id"])

    post(emails[:12])
    pause(broker)
    try:
        post(emails[12:24])
        during = readyz(stack)
    finally:
        broker.send_signal(signal.SIGCONT)
    post(emails[24:])
    # A second event for people first seen during the pause must not overtake the first.
    post(emails[12:18], activity="pricing_page")

    assert during["degraded"] is True
    assert isinstance(during["spool"], dict)
    assert during["spool"]["depth"] >= 1

    async with TopicReader(stack.bootstrap, ["leads.received", "leads.assigned"]) as reader:
        await wait_for(
            reader,
            lambda e: e.type == "lead.assigned" and e.subject in lead_keys,
            count=len(lead_keys),
            timeout_s=90,
        )
        await drain(reader, 2.0)

    received = [e for e in reader.events if e.type == "lead.received" and e.subject in lead_keys]
    assert {e.id for e in received} == {i for ids in sent.values() for i in ids}
    for key, ids in sent.items():
        assert list(dict.fromkeys(e.id for e in received if e.subject == key)) == ids
    assigned = {(e.subject, e.id) for e in reader.events if e.type == "lead.assigned"}
    per_lead = {key: sum(1 for s, _ in assigned if s == key) for key in lead_keys}
    assert per_lead == dict.fromkeys(lead_keys, 1)
    assert await assignment_rows(stack, lead_keys) == dict.fromkeys(lead_keys, 1)

    deadline = time.monotonic() + 30
    while readyz(stack)["degraded"] and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    after = readyz(stack)
    assert after["degraded"] is False
    metrics = httpx.get(f"{stack.services['intake'].url}/metrics", headers=AUTH).text
    assert "leadflow_intake_spool_depth_events 0.0" in metrics
    assert 'leadflow_intake_spooled_events_total{reason="timeout"} 1.0' in metrics
