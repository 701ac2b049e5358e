"""A lead reassigned by hand, for real: signed webhook -> the four service processes ->
Kafka, then the router's admin API, on SQLite and on PostgreSQL.

The manager gives the lead to another rep: the SLA monitor closes the first rep's window
(its timers stopped) and opens the new rep's, whose breach fires — the new rep gets the
breach, not the first. The follow-up window is twenty seconds long here: long enough for
the reassignment to land before the first rep's window runs out, short enough for the
new rep's breach to come during the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadflow.events import Envelope, LeadAssigned, SlaAlert
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader
from tests.fixtures.stack import CONFIG, Stack, lead_body, stack_per_database

pytestmark = pytest.mark.integration

TOKEN = "o" * 32
SLA_SECTION = """
sla:
  policies:
    - name: mql
      window: 20s
      tiers: [mql]
"""


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Broker + four services with a twenty-second window and an admin token."""
    config: Path = tmp_path_factory.mktemp("reassign-config") / "reassign.yaml"
    text = CONFIG.read_text()
    head, _, tail = text.partition("\nsla:\n")
    # Keep what follows the SLA section (reporting) as it is.
    rest = tail[tail.index("\nreporting:") :] if "\nreporting:" in tail else ""
    config.write_text(head + SLA_SECTION + rest)
    yield from stack_per_database(
        request,
        tmp_path_factory,
        "reassign",
        config=config,
        env={"LEADFLOW_ADMIN_TOKEN": f"ops:{TOKEN}"},
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


def reassign(stack: Stack, lead_key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{stack.services['router'].url}/v1/admin/leads/{lead_key}/reassign",
        json=body,
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )


async def test_a_manual_reassignment_moves_the_sla_window_to_the_new_rep(stack: Stack) -> None:
    email = f"moved.{uuid.uuid4().hex[:8]}@bigco.example"
    async with TopicReader(stack.bootstrap, ["leads.assigned", "leads.alerts"]) as reader:
        response = stack.post("web", lead_body(email))
        assert response.status_code == 202, response.text
        lead_key = str(response.json()["lead_key"])
        first = await wait_for(reader, about(lead_key, "lead.assigned"))
        assert isinstance(first.data, LeadAssigned)
        old_rep = first.data.rep_id
        new_rep = next(r for r in ("ana", "ben", "chloe") if r != old_rep)

        # Refusals first: a rep the lead cannot go to, the rep who has it.
        assert reassign(stack, lead_key, {"rep_id": "dev", "reason": "x"}).status_code == 422
        assert reassign(stack, lead_key, {"rep_id": old_rep, "reason": "x"}).status_code == 422

        moved = reassign(stack, lead_key, {"rep_id": new_rep, "reason": "knows the account"})
        assert moved.status_code == 200, moved.text
        reassigned = await wait_for(reader, about(lead_key, "lead.reassigned"))
        breached = await wait_for(reader, about(lead_key, "sla.breached"))

    assert isinstance(reassigned.data, LeadAssigned)
    assert (reassigned.data.rep_id, reassigned.data.previous_rep_ids) == (new_rep, [old_rep])
    assert reassigned.data.assignment_id == moved.json()["assignment_id"]
    # The breach is the new rep's, on the new assignment; none came for the first rep.
    assert isinstance(breached.data, SlaAlert)
    assert (breached.data.rep_id, breached.data.assignment_id) == (
        new_rep,
        reassigned.data.assignment_id,
    )
    breaches = [e for e in reader.events if about(lead_key, "sla.breached")(e)]
    assert {e.data.rep_id for e in breaches if isinstance(e.data, SlaAlert)} == {new_rep}

    history = httpx.get(
        f"{stack.services['sla-monitor'].url}/v1/sla/leads/{lead_key}", timeout=5, headers=AUTH
    ).json()
    old, new = history["windows"]
    assert (old["rep_id"], old["status"], old["outcome"]) == (old_rep, "closed", "reassigned")
    assert {t["status"] for t in old["timers"]} == {"stopped"}
    assert (new["rep_id"], new["assignment_id"]) == (new_rep, reassigned.data.assignment_id)
    assert "fired" in {t["status"] for t in new["timers"]}
