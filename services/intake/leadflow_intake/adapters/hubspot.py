"""Kind `hubspot`: webhooks-API event arrays and workflow-webhook records, signature v3.

`X-HubSpot-Signature-v3` = base64 HMAC-SHA256(app client secret,
method + full URI + raw body + `X-HubSpot-Request-Timestamp`), the timestamp in
milliseconds and refused outside the tolerance (5 minutes by default). The URI is the one
HubSpot called, with HubSpot's listed percent-escapes decoded.

Payloads:
* an array of webhooks-API events (`eventId`, `subscriptionType`, `objectId`,
  `propertyName`, `propertyValue`, ...): each `*.propertyChange` whose property maps to
  the lead's email or phone becomes one lead event, its id derived from `eventId`; other
  events carry no identity and are acknowledged as ignored;
* an object: a workflow webhook's record, properties at the top level or under
  `properties` (plain or as `{"value": ...}`); no delivery id, so the body's hash is one.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from leadflow.senders import hubspot_signature_v3
from leadflow.source_kinds import DEFAULT_ACTIVITY
from leadflow_intake.adapters.base import (
    AuthenticationError,
    InvalidPayload,
    Parsed,
    SourceContext,
    WebhookRequest,
)
from leadflow_intake.mapping import (
    effective_mapping,
    identified,
    load_json,
    map_fields,
    mapped_lead_event,
)

SIGNATURE = "x-hubspot-signature-v3"
TIMESTAMP = "x-hubspot-request-timestamp"


class HubSpotAdapter:
    """HubSpot app webhooks (event arrays) and workflow webhooks (records)."""

    kind = "hubspot"
    media_types = frozenset({"application/json"})
    signs_url = True
    default_mapping: Mapping[str, str] = MappingProxyType(
        {
            "email": "email",
            "phone": "phone",
            "first_name": "firstname",
            "last_name": "lastname",
            "job_title": "jobtitle",
            "company.name": "company",
            "company.domain": "website",
            "company.size": "numemployees",
            "company.industry": "industry",
            "country": "country",
            "region": "state",
            "city": "city",
            "custom.hubspot_object_id": "hs_object_id",
        }
    )

    def authenticate(
        self, request: WebhookRequest, source: SourceContext, *, now: float, tolerance_s: int
    ) -> str | None:
        """Check signature v3 and its millisecond timestamp; deliveries carry no single id."""
        offered = request.headers.get(SIGNATURE)
        raw_ts = request.headers.get(TIMESTAMP)
        missing = [name for name, value in ((SIGNATURE, offered), (TIMESTAMP, raw_ts)) if not value]
        if missing or offered is None or raw_ts is None:
            raise AuthenticationError(f"Missing header(s): {', '.join(missing)}.")
        if not raw_ts.isdigit() or len(raw_ts) > 16:
            raise AuthenticationError(f"{TIMESTAMP} must be Unix time in milliseconds.")
        sent = int(raw_ts) / 1000
        if sent < now - tolerance_s:
            raise AuthenticationError(f"{TIMESTAMP} is too old; the request may be a replay.")
        if sent > now + tolerance_s:
            raise AuthenticationError(f"{TIMESTAMP} is in the future; check the sender's clock.")
        for secret in source.secrets:
            expected = hubspot_signature_v3(
                secret, request.method, request.url, request.body, raw_ts
            )
            if hmac.compare_digest(expected.encode(), offered.strip().encode()):
                return None
        raise AuthenticationError(
            f"{SIGNATURE} does not match; check the app's client secret and the URL HubSpot calls."
        )

    def parse(
        self, request: WebhookRequest, source: SourceContext, *, delivery_id: str, now: datetime
    ) -> Parsed:
        """Lead events from an event array, or the one lead of a workflow record."""
        document = load_json(request.body)
        mapping = effective_mapping(self.default_mapping, source)
        if isinstance(document, dict):
            event = mapped_lead_event(
                source,
                mapping,
                lambda path: _record_value(document, path),
                delivery_id=delivery_id,
                default_activity=DEFAULT_ACTIVITY["hubspot"],
                now=now,
            )
            return Parsed([event])
        if not isinstance(document, list) or not document:
            raise InvalidPayload(
                "The body must be a workflow record (an object) or a non-empty array of events.",
                [{"field": "(body)", "message": "expected an object or a non-empty array."}],
            )
        return _events(document, source, mapping, now)


def _record_value(record: dict[str, Any], path: str) -> Any:
    """A property of a workflow record: top level first, then under `properties`."""
    for container in (record, record.get("properties")):
        if not isinstance(container, dict) or path not in container:
            continue
        value = container[path]
        if isinstance(value, dict) and "value" in value:
            return value["value"]
        return value
    return None


def _events(
    items: list[Any], source: SourceContext, mapping: Mapping[str, str], now: datetime
) -> Parsed:
    errors = [
        {"field": f"[{i}].eventId", "message": "each event needs its eventId."}
        for i, item in enumerate(items)
        if not isinstance(item, dict) or not isinstance(item.get("eventId"), int | str)
    ]
    if errors:
        raise InvalidPayload("The body is not an array of HubSpot events.", errors)
    events = []
    ignored = 0
    for i, item in enumerate(items):
        record = _changed_property(item)
        data, _ = map_fields(mapping, record.get)
        if not identified(data):
            ignored += 1
            continue
        events.append(
            mapped_lead_event(
                source,
                mapping,
                record.get,
                delivery_id=f"event-{item['eventId']}",
                default_activity=DEFAULT_ACTIVITY["hubspot"],
                now=now,
                prefix=f"[{i}].",
            )
        )
    return Parsed(events, ignored)


def _changed_property(event: dict[str, Any]) -> dict[str, Any]:
    """The one property a `*.propertyChange` event carries, as a record."""
    subscription = event.get("subscriptionType")
    name = event.get("propertyName")
    if (
        isinstance(subscription, str)
        and subscription.endswith(".propertyChange")
        and isinstance(name, str)
    ):
        record: dict[str, Any] = {name: event.get("propertyValue")}
        if "objectId" in event:
            record["hs_object_id"] = event["objectId"]
        return record
    return {}


ADAPTER = HubSpotAdapter()
