"""Every source kind for real: requests signed by the senders' libraries, posted over HTTP to
the intake process, published on a real broker, redeliveries dropped downstream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from leadflow.events import LeadReceived
from tests.fixtures import senders
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader, running_broker
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import Stack
from tests.integration.test_end_to_end import about, assignment_rows, drain, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Broker + four services on SQLite (the same flows run on PostgreSQL in the e2e suite)."""
    tmp = tmp_path_factory.mktemp("senders")
    with running_broker() as bootstrap:
        for url in migrated_database_url("sqlite", tmp):
            stack = Stack(bootstrap, url, tmp)
            stack.start()
            try:
                yield stack
            finally:
                stack.stop()


def post(stack: Stack, source: str, signed: senders.Signed, query: str = "") -> httpx.Response:
    url = f"{stack.services['intake'].url}/v1/webhooks/{source}" + (f"?{query}" if query else "")
    return httpx.post(url, content=signed.body, headers=signed.headers, timeout=10)


async def test_each_kind_signed_by_its_sender_becomes_a_lead_event(stack: Stack) -> None:
    base = f"{stack.services['intake'].url}/v1/webhooks"
    answers = {
        "hubspot": post(
            stack, "hubspot", senders.hubspot({"email": "hs@real.example"}, f"{base}/hubspot")
        ),
        "ivr": post(
            stack,
            "ivr",
            senders.twilio(
                {**senders.ivr_call("CAreal1", "+14155550177"), "Digits": "1"},
                f"{base}/ivr?question=authority",
            ),
            query="question=authority",
        ),
        "callrail": post(
            stack, "callrail", senders.callrail(senders.callrail_call("CALreal", "+14155550188"))
        ),
        "marketo": post(stack, "marketo", senders.marketo(senders.marketo_lead("mk@real.example"))),
        "web": post(
            stack, "web", senders.standard({"event": "lead", "lead": {"email": "w@real.example"}})
        ),
    }
    for source, response in answers.items():
        assert response.status_code == 202, (source, response.text)

    async with TopicReader(stack.bootstrap, ["leads.received"]) as reader:
        ids = {response.json()["event_id"] for response in answers.values()}
        found = await wait_for(reader, lambda e: e.id in ids, count=len(ids))
    by_source = {e.data.source: e.data for e in found if isinstance(e.data, LeadReceived)}
    assert by_source["ivr"].lead.answers == {"authority": "decision_maker"}
    assert by_source["ivr"].lead.phone == "+14155550177"
    assert by_source["callrail"].lead.call_duration_s == 187
    assert by_source["hubspot"].source_kind == "hubspot"
    assert by_source["marketo"].activity == "content_download"


async def test_forged_requests_of_every_kind_publish_nothing(stack: Stack) -> None:
    base = f"{stack.services['intake'].url}/v1/webhooks"
    forged = {
        "hubspot": senders.hubspot({"email": "f1@forged.example"}, f"{base}/hubspot", secret="x"),
        "ivr": senders.twilio(
            senders.ivr_call("CAforged", "+14155550166"), f"{base}/ivr", token="x"
        ),
        "callrail": senders.callrail(senders.callrail_call("CALforged", "+14155550155"), key="x"),
        "marketo": senders.marketo(senders.marketo_lead("f2@forged.example"), secret="x"),
        "web": senders.standard(
            {"event": "lead", "lead": {"email": "f3@forged.example"}}, secret="whsec_eA=="
        ),
    }
    for source, signed in forged.items():
        response = post(stack, source, signed)
        assert response.status_code == 401, (source, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    keys = {
        lead_key_for(i)
        for i in (
            "f1@forged.example",
            "f2@forged.example",
            "f3@forged.example",
            "+14155550166",
            "+14155550155",
        )
    }
    async with TopicReader(stack.bootstrap, ["leads.received"]) as reader:
        await drain(reader, 2.0)
    assert not [e for e in reader.events if e.subject in keys]
    metrics = httpx.get(f"{stack.services['intake'].url}/metrics", headers=AUTH).text
    for source in forged:
        assert (
            f'leadflow_intake_webhooks_total{{outcome="bad_signature",source="{source}"}} 1.0'
            in metrics
        )


async def test_a_redelivery_without_a_delivery_id_is_dropped_downstream(stack: Stack) -> None:
    # Marketo gives no delivery id: the body's hash is one, so a retry is the same event.
    body = senders.marketo_lead("twice@globex.example")
    first = post(stack, "marketo", senders.marketo(body))
    second = post(stack, "marketo", senders.marketo(body))
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    lead_key = first.json()["lead_key"]

    async with TopicReader(stack.bootstrap, ["leads.received", "leads.assigned"]) as reader:
        await wait_for(reader, about(lead_key, "lead.assigned"))
        await drain(reader, 2.0)
    received = [e for e in reader.events if about(lead_key, "lead.received")(e)]
    assert len(received) == 2  # both deliveries were published...
    assert len({e.id for e in received}) == 1  # ...as one event,
    assert len([e for e in reader.events if about(lead_key, "lead.assigned")(e)]) == 1
    assert await assignment_rows(stack, [lead_key]) == {lead_key: 1}  # applied once.
