"""Kind `marketo`: a Marketo webhook's templated JSON, authenticated by a shared secret.

Marketo cannot sign requests; its webhook sends a custom header whose value is the
source's secret (header name: the source's `secret_header`, `x-leadflow-secret` by
default), compared in constant time. The body is the JSON the webhook's template
produces; the source's mapping says where each lead field is in it. Marketo gives no
delivery id: the body's hash is one, unless the mapping names a `delivery_id` field.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from leadflow.source_kinds import DEFAULT_ACTIVITY
from leadflow_intake.adapters.base import (
    AuthenticationError,
    InvalidPayload,
    Parsed,
    SourceContext,
    WebhookRequest,
)
from leadflow_intake.mapping import effective_mapping, load_json, mapped_lead_event, read_path


class MarketoAdapter:
    """Marketo webhooks (Admin -> Webhooks), one lead per call."""

    kind = "marketo"
    media_types = frozenset({"application/json"})
    signs_url = False
    default_mapping: Mapping[str, str] = MappingProxyType(
        {
            "email": "email",
            "phone": "phone",
            "first_name": "firstName",
            "last_name": "lastName",
            "job_title": "title",
            "company.name": "company",
            "company.domain": "website",
            "company.size": "numberOfEmployees",
            "company.industry": "industry",
            "country": "country",
            "region": "state",
            "city": "city",
            "campaign": "campaign",
            "content_asset": "asset",
            "product_interest": "productInterest",
            "consent": "consent",
            "utm.source": "utmSource",
            "utm.medium": "utmMedium",
            "utm.campaign": "utmCampaign",
            "activity": "activity",
            "custom.marketo_lead_id": "leadId",
        }
    )

    def authenticate(
        self, request: WebhookRequest, source: SourceContext, *, now: float, tolerance_s: int
    ) -> str | None:
        """Compare the shared-secret header with each valid secret."""
        header = source.config.secret_header
        offered = request.headers.get(header)
        if not offered:
            raise AuthenticationError(f"Missing header(s): {header.lower()}.")
        if any(hmac.compare_digest(offered.encode(), s.encode()) for s in source.secrets):
            return None
        raise AuthenticationError(f"{header.lower()} does not match the source's secret.")

    def parse(
        self, request: WebhookRequest, source: SourceContext, *, delivery_id: str, now: datetime
    ) -> Parsed:
        """One `lead.received` event from the templated body."""
        document = load_json(request.body)
        if not isinstance(document, dict):
            raise InvalidPayload(
                "The body must be a JSON object; check the webhook's template.",
                [{"field": "(body)", "message": "expected a JSON object."}],
            )
        event = mapped_lead_event(
            source,
            effective_mapping(self.default_mapping, source),
            lambda path: read_path(document, path),
            delivery_id=delivery_id,
            default_activity=DEFAULT_ACTIVITY["marketo"],
            now=now,
        )
        return Parsed([event])


ADAPTER = MarketoAdapter()
