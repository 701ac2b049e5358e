"""The intake process over real HTTP: it starts while the broker is away and answers from
its spool, relays in order once a real broker (tansu over TCP) appears; and its limits
hold against real senders' signatures and a spoofed X-Forwarded-For.

Only processes these tests start are stopped, by their pid.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from leadflow.broker import start_broker
from leadflow.events import LeadReceived
from leadflow.settings import DEV_SECRETS
from tests.fixtures import senders
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader, free_port, running_broker
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import Stack, lead_body
from tests.integration.test_end_to_end import drain, wait_for

pytestmark = pytest.mark.integration

FORGED = "whsec_Zm9yZ2VkLXNlY3JldC0wMDAwMDAwMDAwMDA="


def intake_only(bootstrap: str, tmp: Path, **env: str) -> Stack:
    """A stack of which only the intake is started (it needs no database)."""
    stack = Stack(bootstrap, f"sqlite+aiosqlite:///{tmp / 'unused.db'}", tmp, env=env)
    stack.start("intake")
    return stack


def post(stack: Stack, source: str, signed: senders.Signed, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{stack.services['intake'].url}/v1/webhooks/{source}",
        content=signed.body,
        headers={**signed.headers, **headers},
        timeout=10,
    )


def readyz(stack: Stack) -> httpx.Response:
    return httpx.get(f"{stack.services['intake'].url}/readyz", timeout=5)


def wait_until_drained(stack: Stack, timeout_s: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, object] = readyz(stack).json()
        if body["broker"] is True and body["degraded"] is False:
            return body
        time.sleep(0.2)
    raise AssertionError(f"the spool was not drained: {readyz(stack).text}")


@pytest.fixture
def broker_later(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A bootstrap address where no broker listens yet; start one there with
    `start_broker(port)` and append it to the list to have it stopped afterwards."""
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []
    yield f"127.0.0.1:{port}", started
    for process in started:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_the_intake_starts_without_a_broker_and_relays_in_order_once_it_is_there(
    broker_later: tuple[str, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    bootstrap, started = broker_later
    stack = intake_only(bootstrap, tmp_path)
    try:
        emails = [f"early{i}@bigco.example" for i in range(10)]
        sent: dict[str, list[str]] = {}

        def send(email: str, activity: str = "demo_request", **lead: object) -> None:
            body = lead_body(email, activity=activity, **lead)
            response = post(stack, "web", senders.standard(body))
            assert response.status_code == 202, response.text
            sent.setdefault(response.json()["lead_key"], []).append(response.json()["event_id"])

        for email in emails:
            send(email)
        for email in emails[:4]:  # later events of the same people queue behind the first
            send(email, activity="pricing_page")
        send("crlf@bigco.example", company={"name": "Acme\r\nBcc: x@evil.example"})
        before = readyz(stack)
        assert before.status_code == 200
        assert before.json()["broker"] is False
        assert before.json()["spool"]["depth"] == 15

        port = int(bootstrap.rsplit(":", 1)[1])
        started.append(start_broker(port))
        wait_until_drained(stack)
        send("after@bigco.example")  # published directly now

        keys = set(sent)
        async with TopicReader(bootstrap, ["leads.received"]) as reader:
            await wait_for(reader, lambda e: e.subject in keys, count=16, timeout_s=60)
            await drain(reader, 1.0)
        received = [e for e in reader.events if e.subject in keys]
        # Each accepted event exactly once, and each person's events in the order answered.
        assert sorted(e.id for e in received) == sorted(i for ids in sent.values() for i in ids)
        for key, ids in sent.items():
            assert [e.id for e in received if e.subject == key] == ids
        [crlf] = [e for e in received if e.subject == lead_key_for("crlf@bigco.example")]
        assert isinstance(crlf.data, LeadReceived)
        assert crlf.data.lead.company.name == "Acme Bcc: x@evil.example"
        metrics = httpx.get(f"{stack.services['intake'].url}/metrics", headers=AUTH).text
        assert 'leadflow_intake_spooled_events_total{reason="no_broker"} 15.0' in metrics
    finally:
        stack.stop()


def test_failed_authentication_is_limited_per_address_whatever_x_forwarded_for_says(
    tmp_path: Path,
) -> None:
    stack = intake_only(
        f"127.0.0.1:{free_port()}", tmp_path, LEADFLOW_INTAKE_AUTH_FAILURES_BURST="3"
    )
    try:
        forged = [
            post(
                stack,
                "web",
                senders.standard(lead_body("x@bigco.example"), secret=FORGED),
                **{"x-forwarded-for": f"198.51.100.{i}"},
            )
            for i in range(3)
        ]
        spoofed = post(
            stack,
            "web",
            senders.standard(lead_body("x@bigco.example"), secret=FORGED),
            **{"x-forwarded-for": "203.0.113.77"},
        )
        guess = post(stack, "salesforce", senders.standard({}), **{"x-forwarded-for": "10.0.0.9"})
        honest = post(stack, "web", senders.standard(lead_body("ok@bigco.example")))
    finally:
        stack.stop()
    assert [f.status_code for f in forged] == [401, 401, 401]
    assert spoofed.status_code == 429, spoofed.text
    assert spoofed.headers["content-type"] == "application/problem+json"
    assert int(spoofed.headers["retry-after"]) >= 1
    assert guess.status_code == 429
    assert honest.status_code == 202, honest.text


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(tmp_path: Path) -> None:
    stack = intake_only(
        f"127.0.0.1:{free_port()}",
        tmp_path,
        LEADFLOW_INTAKE_AUTH_FAILURES_BURST="2",
        LEADFLOW_INTAKE_TRUSTED_PROXIES="127.0.0.1",
    )
    try:

        def forged(client: str) -> int:
            signed = senders.standard(lead_body("x@bigco.example"), secret=FORGED)
            # What the client wrote itself (left) is not believed; what the proxy saw is.
            return post(
                stack, "web", signed, **{"x-forwarded-for": f"1.1.1.1, {client}"}
            ).status_code

        first = [forged("198.51.100.1") for _ in range(3)]
        second = [forged("198.51.100.2") for _ in range(3)]
    finally:
        stack.stop()
    assert first == [401, 401, 429]
    assert second == [401, 401, 429]


async def test_a_flood_for_one_person_is_refused_and_never_reaches_the_broker(
    tmp_path: Path,
) -> None:
    with running_broker() as bootstrap:
        stack = intake_only(bootstrap, tmp_path, LEADFLOW_INTAKE_IDENTITY_BURST="5")
        try:
            url = f"{stack.services['intake'].url}/v1/webhooks/hubspot"
            answers = [
                post(
                    stack,
                    "hubspot",
                    senders.hubspot(
                        {
                            "hs_object_id": 900 + i,
                            "properties": {"email": {"value": "Spammed@BigCo.example"}},
                        },
                        url,
                    ),
                )
                for i in range(8)
            ]
            marketo = post(
                stack, "marketo", senders.marketo(senders.marketo_lead("spammed@bigco.example"))
            )
            other = post(stack, "web", senders.standard(lead_body("calm@bigco.example")))
            crm = post(
                stack,
                "crm",
                senders.standard(
                    {
                        "event": "contacted",
                        "email": "spammed@bigco.example",
                        "occurred_at": "2026-11-26T10:00:00Z",
                    },
                    secret=DEV_SECRETS["crm"],
                ),
            )
            async with TopicReader(bootstrap, ["leads.received"]) as reader:
                await wait_for(reader, lambda e: True, count=6, timeout_s=30)
                await drain(reader, 1.0)
            metrics = httpx.get(f"{stack.services['intake'].url}/metrics", headers=AUTH).text
        finally:
            stack.stop()
    assert [a.status_code for a in answers] == [202] * 5 + [429] * 3, [a.text for a in answers]
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers[5:])
    assert marketo.status_code == 429
    assert other.status_code == 202
    assert crm.status_code == 202  # an outcome from the CRM is not a flood of leads
    spammed = lead_key_for("spammed@bigco.example")
    assert sum(1 for e in reader.events if e.subject == spammed) == 5
    assert (
        'leadflow_intake_webhooks_total{outcome="identity_rate_limited",source="hubspot"} 3.0'
        in metrics
    )
