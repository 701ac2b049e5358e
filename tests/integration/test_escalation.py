"""The SLA ladder across real processes: warning, breach, escalation, and the router's
reassignment, which restarts the clock for the new rep (real broker, SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from leadflow.events import LeadAssigned, SlaAlert
from tests.fixtures.broker import TopicReader, running_broker
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.stack import CONFIG, Stack, lead_body
from tests.integration.test_end_to_end import about, drain, wait_for

pytestmark = pytest.mark.integration

LADDER = """      window: 5s
      tiers: [mql]
      warn_at_percent: 40
      escalate_after: 2s
      max_escalations: 1
"""


def ladder_config(tmp: Path) -> Path:
    """The test configuration with a fast ladder on the hot-mql policy."""
    text = CONFIG.read_text()
    assert "      window: 5s\n      tiers: [mql]\n" in text
    path = tmp / "ladder.yaml"
    path.write_text(text.replace("      window: 5s\n      tiers: [mql]\n", LADDER))
    return path


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"ladder-{request.param}")
    with running_broker() as bootstrap:
        for url in migrated_database_url(request.param, tmp):
            stack = Stack(bootstrap, url, tmp, config=ladder_config(tmp))
            stack.start()
            try:
                yield stack
            finally:
                stack.stop()


async def test_a_missed_lead_is_warned_breached_escalated_and_reassigned_once(
    stack: Stack,
) -> None:
    response = stack.post("web", lead_body("slow.rep@bigco.example"))
    assert response.status_code == 202, response.text
    key = response.json()["lead_key"]

    async with TopicReader(stack.bootstrap, ["leads.assigned", "leads.alerts"]) as reader:
        [first] = await wait_for(reader, about(key, "lead.assigned"))
        [warning] = await wait_for(reader, about(key, "sla.warning"))
        [escalated] = await wait_for(reader, about(key, "sla.escalated"))
        reassigned = await wait_for(reader, about(key, "lead.reassigned"))
        # The new rep's window runs out too: a breach for them, but no second escalation.
        await wait_for(reader, about(key, "sla.breached"), count=2, timeout_s=30)
        await drain(reader, 4.0)

    assert isinstance(first.data, LeadAssigned)
    assert isinstance(warning.data, SlaAlert)
    assert warning.data.rep_id == first.data.rep_id
    assert isinstance(escalated.data, SlaAlert)
    assert escalated.data.assignment_id == first.data.assignment_id
    assert len({e.id for e in reassigned}) == 1
    second = reassigned[0].data
    assert isinstance(second, LeadAssigned)
    assert second.previous_rep_ids == [first.data.rep_id]
    assert second.rep_id != first.data.rep_id
    breaches = {e.id: e.data for e in reader.events if about(key, "sla.breached")(e)}
    assert sorted(b.rep_id for b in breaches.values() if isinstance(b, SlaAlert)) == sorted(
        [first.data.rep_id, second.rep_id]
    )
    assert len({e.id for e in reader.events if about(key, "sla.escalated")(e)}) == 1
