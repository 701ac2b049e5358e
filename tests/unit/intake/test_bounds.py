"""What a sender's values may be: single-line text, bounded lengths, bounded free-form data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.bus.memory import InMemoryBus
from leadflow.events import LeadReceived
from leadflow.settings import DEV_SECRETS
from leadflow_intake.bounds import CUSTOM_MAX_DEPTH, single_line
from tests.fixtures import senders
from tests.fixtures.intake import intake_client, published, refusal, send
from tests.fixtures.stack import lead_body


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
def client(bus: InMemoryBus, tmp_path: Path) -> Iterator[TestClient]:
    with intake_client(tmp_path / "spool", bus) as client:
        yield client


def nested(depth: int, leaf: Any = 1) -> Any:
    """`{"a": {"a": … leaf}}` with `depth` levels of objects."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def nested_json(depth: int) -> bytes:
    """`nested(depth)` as JSON, written out (JSON libraries stop at a few hundred levels)."""
    return b'{"a": ' * depth + b"1" + b"}" * depth


def only_lead(bus: InMemoryBus) -> LeadReceived:
    [event] = published(bus)
    assert isinstance(event.data, LeadReceived)
    return event.data


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("Acme\r\nBcc: boss@example.com", "Acme Bcc: boss@example.com"),
        ("Acme\tCorp", "Acme Corp"),
        ("Acme\x00\x1b[31m", "Acme [31m"),
        ("Acme\x85Corp\u2028Ltd", "Acme Corp Ltd"),
        ("Ünïcode Café 株式会社", "Ünïcode Café 株式会社"),
        ("plain", "plain"),
    ],
)
def test_single_line_replaces_control_characters(given: str, kept: str) -> None:
    assert single_line(given) == kept


def test_names_titles_and_companies_arrive_on_one_line(
    client: TestClient, bus: InMemoryBus
) -> None:
    body = lead_body(
        "ana@example.com",
        first_name="Ana\r\n",
        job_title="VP\nSales",
        company={"name": "Acme\r\nBcc: evil@example.com", "industry": "software\x07"},
        campaign="Spring\u2028Launch",
        utm={"source": "news\rletter"},
    )
    response = send(client, "web", senders.standard(body))

    assert response.status_code == 202, response.text
    lead = only_lead(bus).lead
    assert lead.first_name == "Ana"
    assert lead.job_title == "VP Sales"
    assert lead.company.name == "Acme Bcc: evil@example.com"
    assert lead.company.industry == "software"
    assert lead.campaign == "Spring Launch"
    assert lead.utm == {"source": "news letter"}


def test_a_mapped_company_name_arrives_on_one_line(client: TestClient, bus: InMemoryBus) -> None:
    lead = senders.marketo_lead("mk@example.com", company="Acme\r\nInc", title="CTO\n")
    response = send(client, "marketo", senders.marketo(lead))

    assert response.status_code == 202, response.text
    assert only_lead(bus).lead.company.name == "Acme Inc"
    assert only_lead(bus).lead.job_title == "CTO"


@pytest.mark.parametrize(
    ("lead", "field"),
    [
        ({"first_name": "A" * 201}, "lead.first_name"),
        ({"company": {"name": "C" * 201}}, "lead.company.name"),
        ({"utm": {"source": "s" * 501}}, "lead.utm.source"),
        ({"utm": {"k" * 65: "v"}}, "lead.utm"),
        ({"custom": {"notes": "n" * 4001}}, "lead.custom.notes"),
        ({"custom": {"k" * 129: 1}}, "lead.custom"),
        ({"custom": nested(CUSTOM_MAX_DEPTH + 1)}, "lead.custom" + ".a" * CUSTOM_MAX_DEPTH),
        ({"custom": {"list": [[[[[[[[1]]]]]]]]}}, "lead.custom.list.0.0.0.0.0.0.0"),
    ],
)
def test_values_over_their_bounds_are_422_naming_the_field(
    client: TestClient, bus: InMemoryBus, lead: dict[str, Any], field: str
) -> None:
    body = {"event": "lead", "lead": {"email": "a@example.com", **lead}}
    problem = refusal(send(client, "web", senders.standard(body)), 422)

    assert any(e["field"].startswith(field) for e in problem["errors"]), problem["errors"]
    assert published(bus) == []


def test_custom_data_up_to_its_depth_is_kept(client: TestClient, bus: InMemoryBus) -> None:
    # `custom` itself is the first level.
    custom = {"deep": nested(CUSTOM_MAX_DEPTH - 1, "leaf"), "notes": "n" * 4000}
    body = {"event": "lead", "lead": {"email": "a@example.com", "custom": custom}}
    response = send(client, "web", senders.standard(body))

    assert response.status_code == 202, response.text
    assert only_lead(bus).lead.custom == custom


@pytest.mark.parametrize("depth", [20, 150, 260, 600])
def test_deep_mapped_custom_data_is_422_not_500(
    client: TestClient, bus: InMemoryBus, depth: int
) -> None:
    # Before: past 254 levels, writing the event failed and the webhook got a 500.
    raw = b'{"email": "mk@example.com", "leadId": ' + nested_json(depth) + b"}"
    problem = refusal(send(client, "marketo", senders.marketo(raw)), 422)

    [error] = problem["errors"]
    # Named as the sender wrote it: `leadId` is mapped to custom.marketo_lead_id.
    assert error["field"] == "leadId" + ".a" * (CUSTOM_MAX_DEPTH - 1)
    assert f"nested deeper than {CUSTOM_MAX_DEPTH} levels" in error["message"]
    assert published(bus) == []


@pytest.mark.parametrize("depth", [20, 150, 600])
def test_deep_standard_custom_data_is_422(client: TestClient, bus: InMemoryBus, depth: int) -> None:
    body = b'{"event": "lead", "lead": {"email": "a@example.com", "custom": '
    refusal(send(client, "web", senders.standard(body + nested_json(depth) + b"}}")), 422)
    assert published(bus) == []


def test_activity_reasons_and_reps_arrive_on_one_line(client: TestClient, bus: InMemoryBus) -> None:
    body = {
        "event": "rejected",
        "email": "ana@example.com",
        "occurred_at": "2026-11-26T10:00:00Z",
        "reason": "no budget\r\nthis year",
        "rep_id": "rep\n1",
    }
    response = send(client, "crm", senders.standard(body, secret=DEV_SECRETS["crm"]))

    assert response.status_code == 202, response.text
    [event] = published(bus)
    assert event.data.reason == "no budget this year"  # type: ignore[union-attr]
    assert event.data.rep_id == "rep 1"  # type: ignore[union-attr]
