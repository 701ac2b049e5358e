"""Kind `twilio`: IVR and Studio posts (form-encoded), `X-Twilio-Signature`.

`X-Twilio-Signature` = base64 HMAC-SHA1(auth token, full URL + every form field's name
and value, sorted by name), the URL exactly as Twilio called it (with and without the
default port, as Twilio's own validator accepts). `X-Twilio-Webhooks-Signature-Settings`
may name HMAC_SHA256 for requests signed with a shared key.

The caller is the lead (`From`, in E.164). The IVR's qualifying answers come either one
per request, from a `<Gather>` whose action URL says `?question=<name>` (the answer is
`Digits` or `SpeechResult`), or all at once from Studio, one form field per question.
The delivery id is `CallSid:<question>` (or `CallSid:call`), so each step of a call is
one event and a retried step is the same event.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from leadflow.config import IvrQuestion
from leadflow.senders import TWILIO_ALGORITHMS, twilio_signature
from leadflow.source_kinds import DEFAULT_ACTIVITY
from leadflow_intake.adapters.base import (
    AuthenticationError,
    InvalidPayload,
    Parsed,
    SourceContext,
    WebhookRequest,
)
from leadflow_intake.mapping import effective_mapping, mapped_lead_event

SIGNATURE = "x-twilio-signature"
SETTINGS = "x-twilio-webhooks-signature-settings"


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """The form's fields in order; raises InvalidPayload when it is not form-encoded UTF-8."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidPayload(
            "The body is not form-encoded UTF-8.",
            [{"field": "(body)", "message": "expected application/x-www-form-urlencoded text."}],
        ) from exc


def _url_variants(url: str) -> list[str]:
    """The URL with and without its scheme's default port."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    bare = urlunsplit(parts._replace(netloc=host))
    ported = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or default}"))
    return [url, bare, ported] if url not in (bare, ported) else [bare, ported]


def _algorithm(settings: str | None) -> str:
    for part in (settings or "").split(","):
        name, _, value = part.partition("=")
        if name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


class TwilioAdapter:
    """Twilio voice/IVR webhooks and Studio HTTP requests."""

    kind = "twilio"
    media_types = frozenset({"application/x-www-form-urlencoded"})
    signs_url = True
    default_mapping: Mapping[str, str] = MappingProxyType(
        {
            "phone": "From",
            "country": "FromCountry",
            "region": "FromState",
            "city": "FromCity",
            "call_duration_s": "CallDuration",
            "custom.recording_url": "RecordingUrl",
            "custom.called": "To",
        }
    )

    def authenticate(
        self, request: WebhookRequest, source: SourceContext, *, now: float, tolerance_s: int
    ) -> str | None:
        """Check `X-Twilio-Signature`; the delivery id is the call's SID and its step."""
        offered = request.headers.get(SIGNATURE)
        if not offered:
            raise AuthenticationError(f"Missing header(s): {SIGNATURE}.")
        algorithm = _algorithm(request.headers.get(SETTINGS))
        if algorithm not in TWILIO_ALGORITHMS:
            raise AuthenticationError(f"{SETTINGS} names an unsupported algorithm.")
        fields = form_fields(request.body)
        for secret in source.secrets:
            for url in _url_variants(request.url):
                expected = twilio_signature(secret, url, fields, algorithm)
                if hmac.compare_digest(expected.encode(), offered.strip().encode()):
                    call = dict(fields).get("CallSid")
                    return f"{call}:{request.query.get('question') or 'call'}" if call else None
        raise AuthenticationError(
            f"{SIGNATURE} does not match; check the auth token and the URL Twilio calls "
            "(behind a proxy, set the source's public_base_url)."
        )

    def parse(
        self, request: WebhookRequest, source: SourceContext, *, delivery_id: str, now: datetime
    ) -> Parsed:
        """One `lead.received` event: the caller, with the answers this request carries."""
        fields = dict(form_fields(request.body))
        answers = _answers(source.config.questions, fields, request.query.get("question"))
        event = mapped_lead_event(
            source,
            effective_mapping(self.default_mapping, source),
            fields.get,
            delivery_id=delivery_id,
            default_activity=DEFAULT_ACTIVITY["twilio"],
            now=now,
            extra={"answers": answers} if answers else None,
        )
        return Parsed([event])


def _answers(
    questions: Mapping[str, IvrQuestion], fields: Mapping[str, str], asked: str | None
) -> dict[str, str]:
    """The qualifying answers in this request, as the configuration reads them."""
    if asked is not None and asked not in questions:
        raise InvalidPayload(
            f"The request answers question {asked!r}, which this source does not configure.",
            [{"field": "question", "message": f"expected one of: {', '.join(sorted(questions))}."}],
        )
    answers: dict[str, str] = {}
    for name, question in questions.items():
        raw: Any
        if name == asked:
            raw = fields.get("Digits") or fields.get("SpeechResult")
        else:
            raw = fields.get(question.param or name)
        if raw is None or not raw.strip():
            continue
        said = raw.strip()
        answers[name] = (
            question.answers.get(said) or question.answers.get(said.lower().strip(" .!?")) or said
        )
    return answers


ADAPTER = TwilioAdapter()
