"""The `lead.received` event built from a sender's lead."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow.events import Envelope, Lead, LeadReceived
from leadflow_intake.canonical import LeadBody, lead_event

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
BODY = (
    b'{"event": "lead", "activity": "demo_request", "lead": {"email": " Jane@BigCo.example ",'
    b' "phone": "+14155550123", "company": {"name": "Bigco", "size": 1500},'
    b' "utm": {"source": "ads"}, "custom": {"tags": ["a", 1, 2.5, null]}}}'
)


def test_the_event_carries_exactly_the_lead_fields_of_the_validated_lead() -> None:
    lead = LeadBody.model_validate_json(BODY).lead

    event = lead_event(
        lead, source="web", kind="standard", delivery_id="d-1", activity="demo_request", now=NOW
    )

    assert isinstance(event.data, LeadReceived)
    assert type(event.data.lead) is Lead
    assert event.data.lead == Lead.model_validate(lead.model_dump())
    assert event.data.lead.email == "jane@bigco.example"
    assert Envelope.from_bytes(event.to_bytes()) == event
