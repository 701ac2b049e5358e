"""Kind `standard`: the canonical lead or CRM activity as JSON, signed with Standard Webhooks.

`webhook-id`, `webhook-timestamp` (Unix seconds, within the tolerance) and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, several
space-separated during a rotation); the `webhook-id` is the delivery id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from pydantic import TypeAdapter, ValidationError

from leadflow import webhooks as signatures
from leadflow.events import SerializedEvent
from leadflow.problems import field_errors
from leadflow_intake.adapters.base import (
    AuthenticationError,
    InvalidPayload,
    Parsed,
    SourceContext,
    WebhookRequest,
)
from leadflow_intake.canonical import (
    ActivityBody,
    LeadBody,
    StandardBody,
    activity_event,
    lead_event,
    untagged,
)

_BODY: TypeAdapter[LeadBody | ActivityBody] = TypeAdapter(StandardBody)


class StandardAdapter:
    """Standard Webhooks signatures; the body is already canonical (no mapping)."""

    kind = "standard"
    media_types = frozenset({"application/json"})
    signs_url = False
    default_mapping: Mapping[str, str] = MappingProxyType({})

    def authenticate(
        self, request: WebhookRequest, source: SourceContext, *, now: float, tolerance_s: int
    ) -> str | None:
        """Check `webhook-signature`; the `webhook-id` is the delivery id."""
        try:
            delivery_id, _ = signatures.verify(
                request.headers, request.body, source.secrets, now=now, tolerance_s=tolerance_s
            )
        except signatures.SignatureError as exc:
            raise AuthenticationError(str(exc)) from exc
        return delivery_id

    def parse(
        self, request: WebhookRequest, source: SourceContext, *, delivery_id: str, now: datetime
    ) -> Parsed:
        """One `lead.received` or one `lead.<outcome>` event."""
        try:
            body = _BODY.validate_json(request.body)
        except ValidationError as exc:
            raise InvalidPayload(
                "The body is not a valid lead or activity.",
                field_errors(untagged(exc.errors())),
            ) from exc
        if isinstance(body, LeadBody):
            event = lead_event(
                body.lead,
                keys=source.keys,
                source=source.name,
                kind=self.kind,
                delivery_id=delivery_id,
                activity=body.activity,
                now=now,
            )
        else:
            event = SerializedEvent.of(
                activity_event(
                    body, keys=source.keys, source=source.name, delivery_id=delivery_id, now=now
                )
            )
        return Parsed([event])


ADAPTER = StandardAdapter()
