"""The general pool, for real: signed webhooks -> the four service processes -> Kafka, reps
claiming with their own tokens, on SQLite and on PostgreSQL.

The enterprise team is a pool whose clock starts at arrival and whose leads fall back to
its round robin after twenty seconds unclaimed. A lead posted through the `web` source
waits in the pool; Ben claims it, Ana is refused with 409; the SLA monitor opens Ben's
window, counted from the lead's arrival. A lead nobody claims alerts the manager by email
(a real SMTP server) and is given by the team's distribution.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from leadflow.auth import token_hash
from leadflow.events import Envelope, LeadAssigned, LeadPooled
from tests.fixtures.auth import AUTH, TEST_ENTRY
from tests.fixtures.broker import TopicReader
from tests.fixtures.receivers import Mailbox, smtp_server
from tests.fixtures.stack import CONFIG, Stack, lead_body, stack_per_database

pytestmark = pytest.mark.integration

TOKENS = {name: f"lf_{name}-" + "p" * 32 for name in ("ana", "ben", "grace")}
ENTRIES = [
    {"name": "ana", "sha256": token_hash(TOKENS["ana"]), "scopes": ["leads:claim"], "rep": "ana"},
    {"name": "ben", "sha256": token_hash(TOKENS["ben"]), "scopes": ["leads:claim"], "rep": "ben"},
    {
        "name": "grace",
        "sha256": token_hash(TOKENS["grace"]),
        "scopes": ["leads:read", "sla:read"],
        "teams": ["enterprise"],
    },
]
UNCLAIMED_AFTER_S = 20


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def pool_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Mailbox]]:
    """Broker + four services; enterprise is a pool; a real SMTP server for the manager."""
    config = yaml.safe_load(CONFIG.read_text())
    for team in config["teams"]:
        if team["name"] == "enterprise":
            team["pool"] = {
                "sla_starts": "arrival",
                "unclaimed_after": f"{UNCLAIMED_AFTER_S}s",
                "fallback": "distribute",
            }
    config["sla"] = {"policies": [{"name": "mql", "window": "10m", "tiers": ["mql"]}]}
    path: Path = tmp_path_factory.mktemp("pool-config") / "pool.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    with smtp_server() as (smtp_port, mailbox):
        yield from (
            (stack, mailbox)
            for stack in stack_per_database(
                request,
                tmp_path_factory,
                "pool",
                config=path,
                env={
                    # The reps' and the manager's, and the tests' token of every scope.
                    "LEADFLOW_TOKENS": json.dumps(
                        [*ENTRIES, TEST_ENTRY.model_dump(mode="json", exclude_none=True)]
                    ),
                    "LEADFLOW_SMTP_PORT": str(smtp_port),
                    "LEADFLOW_SMTP_SENDER": "routing@leadflow.example",
                    "LEADFLOW_NOTIFY_POLL_S": "0.2",
                    "LEADFLOW_ROUTER_POOL_CHECK_S": "0.5",
                },
            )
        )


async def wait_for(
    reader: TopicReader, predicate: Callable[[Envelope], bool], timeout_s: float = 60.0
) -> Envelope:
    """The first event that satisfies `predicate`, polling until it comes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await reader.poll()
        found = [e for e in reader.events if predicate(e)]
        if found:
            return found[0]
    raise AssertionError("timed out waiting for an event")


def about(lead_key: str, type_: str) -> Callable[[Envelope], bool]:
    return lambda e: e.subject == lead_key and e.type == type_


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[name]}"}


def claim(stack: Stack, lead_key: str, rep: str) -> httpx.Response:
    url = f"{stack.services['router'].url}/v1/leads/{lead_key}/claim"
    return httpx.post(url, headers=bearer(rep), timeout=10)


async def window_of(stack: Stack, lead_key: str, timeout_s: float = 30.0) -> dict[str, object]:
    """The lead's follow-up window, once the SLA monitor opened it."""
    url = f"{stack.services['sla-monitor'].url}/v1/sla/leads/{lead_key}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = httpx.get(url, headers=bearer("grace"), timeout=5)
        if answer.status_code == 200 and answer.json()["windows"]:
            window: dict[str, object] = answer.json()["windows"][-1]
            return window
        await asyncio.sleep(0.3)
    raise AssertionError(f"no window opened for {lead_key}")


async def test_a_pooled_lead_is_claimed_by_one_rep_and_the_window_opens_for_them(
    pool_stack: tuple[Stack, Mailbox],
) -> None:
    stack, _ = pool_stack
    email = f"pooled.{uuid.uuid4().hex[:8]}@bigco.example"
    async with TopicReader(stack.bootstrap, ["leads.assigned"]) as reader:
        response = stack.post("web", lead_body(email))
        assert response.status_code == 202, response.text
        lead_key = str(response.json()["lead_key"])
        pooled = await wait_for(reader, about(lead_key, "lead.pooled"))
        assert isinstance(pooled.data, LeadPooled)

        listed = httpx.get(
            f"{stack.services['router'].url}/v1/pools/enterprise", headers=bearer("grace")
        )
        assert listed.status_code == 200, listed.text
        assert lead_key in [one["lead_key"] for one in listed.json()["leads"]]

        # A token of every scope that speaks for no rep cannot claim for anyone.
        nobody = httpx.post(
            f"{stack.services['router'].url}/v1/leads/{lead_key}/claim", headers=AUTH, timeout=10
        )
        assert nobody.status_code == 403
        assert nobody.json()["type"].endswith("/not-a-rep")

        taken = claim(stack, lead_key, "ben")
        assert taken.status_code == 200, taken.text
        second = claim(stack, lead_key, "ana")
        assigned = await wait_for(reader, about(lead_key, "lead.assigned"))

    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert "already claimed by Ben Carter (ben)" in second.json()["detail"]
    assert isinstance(assigned.data, LeadAssigned)
    assert (assigned.data.rep_id, assigned.data.assignment_id) == (
        "ben",
        taken.json()["assignment_id"],
    )
    assert assigned.data.reason.startswith("claimed by Ben Carter")
    assert assigned.data.clock_from == pooled.data.pooled_at
    window = await window_of(stack, lead_key)
    assert (window["rep_id"], window["assignment_id"]) == ("ben", taken.json()["assignment_id"])
    # The clock started when the lead arrived in the pool, not at the claim.
    due = assigned.data.clock_from + timedelta(minutes=10)
    assert datetime.fromisoformat(str(window["due_at"])) == due


async def test_a_lead_nobody_claims_alerts_the_manager_and_goes_to_the_round_robin(
    pool_stack: tuple[Stack, Mailbox],
) -> None:
    stack, mailbox = pool_stack
    email = f"unclaimed.{uuid.uuid4().hex[:8]}@bigco.example"
    async with TopicReader(stack.bootstrap, ["leads.assigned"]) as reader:
        response = stack.post("web", lead_body(email))
        assert response.status_code == 202, response.text
        lead_key = str(response.json()["lead_key"])
        pooled = await wait_for(reader, about(lead_key, "lead.pooled"))
        assigned = await wait_for(
            reader, about(lead_key, "lead.assigned"), timeout_s=UNCLAIMED_AFTER_S + 40
        )

    assert isinstance(pooled.data, LeadPooled)
    assert isinstance(assigned.data, LeadAssigned)
    assert assigned.data.rep_id in ("ana", "ben", "chloe")
    assert assigned.data.reason.startswith("nobody claimed it from team 'enterprise''s pool")
    assert (assigned.data.assigned_at - pooled.data.pooled_at).total_seconds() >= UNCLAIMED_AFTER_S
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alerts = [
            m
            for m in mailbox.to("grace@example.com")
            if str(m["Subject"]).startswith("Lead unclaimed in the enterprise pool")
        ]
        if alerts:
            break
        await asyncio.sleep(0.3)
    assert len(alerts) == 1
    payload = alerts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert f"/v1/leads/{lead_key}/routing" in body
    assert "The team's round robin gave it to" in body
    late = claim(stack, lead_key, "ana")
    assert late.status_code == 409
    assert late.json()["type"].endswith("/left-pool")
