"""The activities `leadflow.source_kinds` tells `leadflow config check` are the ones the
adapters give (and whether the payload can name another)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from leadflow.config import Source, SourceKind
from leadflow.events import LeadReceived
from leadflow.source_kinds import DEFAULT_ACTIVITY, PAYLOAD_NAMES_ACTIVITY
from leadflow_intake.adapters import ADAPTERS
from leadflow_intake.adapters.base import SourceContext, WebhookRequest
from tests.fixtures.keys import KEYS

# A payload of each kind that names no activity.
BODIES: dict[SourceKind, bytes] = {
    "hubspot": orjson.dumps({"email": "kim@example.com"}),
    "twilio": b"CallSid=CA1&From=%2B14155550100",
    "callrail": orjson.dumps({"resource_id": "CAL1", "customer_phone_number": "+14155550111"}),
    "marketo": orjson.dumps({"email": "kim@example.com"}),
}


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_a_kind_gives_its_default_activity_when_nothing_names_one(kind: SourceKind) -> None:
    adapter = ADAPTERS[kind]
    context = SourceContext("s", Source(kind=kind), ["secret"], KEYS)
    request = WebhookRequest("POST", "http://intake.test/v1/webhooks/s", {}, BODIES[kind])

    [event] = adapter.parse(request, context, delivery_id="d", now=datetime.now(UTC)).events

    data = event.envelope().data
    assert isinstance(data, LeadReceived)
    assert data.activity == DEFAULT_ACTIVITY[kind]


def test_the_kinds_whose_payload_names_the_activity() -> None:
    mapped = {kind for kind, adapter in ADAPTERS.items() if "activity" in adapter.default_mapping}

    assert set(DEFAULT_ACTIVITY) == set(ADAPTERS) - {"standard"}
    assert mapped | {"standard"} == PAYLOAD_NAMES_ACTIVITY
