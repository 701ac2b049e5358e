"""Kind `callrail`: post-call webhooks (JSON), HMAC of the raw body.

The scheme implemented: the `Signature` header holds base64 HMAC-SHA1 of the raw request
body, keyed with the company's webhook signing key (CallRail: Settings -> Integrations ->
Webhooks). CallRail sends no timestamp, so a replay cannot be told by age; it is told by
its delivery id instead: the call's `resource_id` (else `id`) is the delivery id, so a
replayed or retried post-call webhook is the same event and is dropped downstream.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from leadflow.senders import callrail_signature
from leadflow.source_kinds import DEFAULT_ACTIVITY
from leadflow_intake.adapters.base import (
    AuthenticationError,
    InvalidPayload,
    Parsed,
    SourceContext,
    WebhookRequest,
)
from leadflow_intake.mapping import effective_mapping, load_json, mapped_lead_event, read_path

SIGNATURE = "signature"


class CallRailAdapter:
    """CallRail post-call webhooks: the caller is the lead."""

    kind = "callrail"
    media_types = frozenset({"application/json"})
    signs_url = False
    default_mapping: Mapping[str, str] = MappingProxyType(
        {
            "phone": "customer_phone_number",
            "city": "customer_city",
            "region": "customer_state",
            "country": "customer_country",
            "campaign": "campaign",
            "utm.source": "utm_source",
            "utm.medium": "utm_medium",
            "utm.campaign": "utm_campaign",
            "utm.term": "utm_term",
            "utm.content": "utm_content",
            "call_duration_s": "duration",
            # Whether someone picked up, and whether CallRail saw this number call before:
            # engagement rules test them on the touch (custom.answered, custom.first_call).
            "custom.answered": "answered",
            "custom.first_call": "first_call",
            "custom.customer_name": "customer_name",
            "custom.recording_url": "recording",
            "custom.landing_page_url": "landing_page_url",
            "custom.tracking_phone_number": "tracking_phone_number",
        }
    )

    def authenticate(
        self, request: WebhookRequest, source: SourceContext, *, now: float, tolerance_s: int
    ) -> str | None:
        """Check `Signature`; the delivery id is the call's `resource_id` (read in parse)."""
        offered = request.headers.get(SIGNATURE)
        if not offered:
            raise AuthenticationError(f"Missing header(s): {SIGNATURE}.")
        for key in source.secrets:
            expected = callrail_signature(key, request.body)
            if hmac.compare_digest(expected.encode(), offered.strip().encode()):
                return None
        raise AuthenticationError("Signature does not match; check the company's signing key.")

    def parse(
        self, request: WebhookRequest, source: SourceContext, *, delivery_id: str, now: datetime
    ) -> Parsed:
        """One `lead.received` event for the call."""
        document = load_json(request.body)
        if not isinstance(document, dict):
            raise InvalidPayload(
                "The body must be a CallRail call object.",
                [{"field": "(body)", "message": "expected a JSON object."}],
            )
        call_id = document.get("resource_id") or document.get("id")
        event = mapped_lead_event(
            source,
            effective_mapping(self.default_mapping, source),
            lambda path: read_path(document, path),
            delivery_id=f"call-{call_id}" if isinstance(call_id, str | int) else delivery_id,
            default_activity=DEFAULT_ACTIVITY["callrail"],
            now=now,
        )
        return Parsed([event])


ADAPTER = CallRailAdapter()
