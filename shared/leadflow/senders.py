"""How each kind of sender signs a webhook: the intake checks these signatures, and
`leadflow webhook send` and `leadflow demo` sign with them.

* `standard`: Standard Webhooks (`leadflow.webhooks.sign`): `webhook-id`,
  `webhook-timestamp` and `webhook-signature` over `{id}.{timestamp}.{body}`;
* `hubspot`: `X-HubSpot-Signature-v3` = base64 HMAC-SHA256(client secret, method + URI +
  raw body + `X-HubSpot-Request-Timestamp`), the timestamp in milliseconds, the URI with
  HubSpot's listed percent-escapes decoded;
* `twilio`: `X-Twilio-Signature` = base64 HMAC-SHA1(auth token, the full URL + every form
  field's name and value, sorted by name); the body is form-encoded;
* `callrail`: `Signature` = base64 HMAC-SHA1(signing key, raw body);
* `marketo`: no signature; the secret itself travels in the source's `secret_header`.

`signed_request` builds what a sender of the source's kind would post. Its body is the
JSON the sender sends, except for `twilio`, whose form fields are given as one JSON object
(`{"CallSid": "CA…", "From": "+1…", "budget": "3"}`) and posted form-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from leadflow.config import Source
from leadflow.webhooks import sign

TWILIO_ALGORITHMS: dict[str, Callable[..., Any]] = {
    "HMAC_SHA1": hashlib.sha1,
    "HMAC_SHA256": hashlib.sha256,
}

# HubSpot signs the URI with these escapes decoded (its v3 validation guide).
_HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


def twilio_signature(
    secret: str, url: str, fields: Sequence[tuple[str, str]], algorithm: str = "HMAC_SHA1"
) -> str:
    """The `X-Twilio-Signature` of a request to `url` with these form fields."""
    values: dict[str, set[str]] = {}
    for name, value in fields:
        values.setdefault(name, set()).add(value)
    message = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    digest = hmac.new(secret.encode(), message.encode(), TWILIO_ALGORITHMS[algorithm]).digest()
    return base64.b64encode(digest).decode()


def hubspot_uri(url: str) -> str:
    """The URI as HubSpot signs it."""
    for escaped, char in _HUBSPOT_DECODED.items():
        url = url.replace(escaped, char).replace(escaped.lower(), char)
    return url


def hubspot_signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The `X-HubSpot-Signature-v3` value of a request."""
    message = method.upper().encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def callrail_signature(key: str, body: bytes) -> str:
    """The `Signature` header of a CallRail body."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha1).digest()).decode()


class RequestBodyError(ValueError):
    """A body that a sender of this kind could not send; the message says why."""


@dataclass(frozen=True)
class SignedRequest:
    """A request as the source's sender would post it."""

    url: str
    body: bytes
    headers: dict[str, str]


def signed_request(
    name: str,
    source: Source,
    secret: str,
    base_url: str,
    body: bytes,
    *,
    now: float,
    delivery_id: str | None = None,
    query: str = "",
) -> SignedRequest:
    """The request a sender of `source`'s kind posts to `base_url` with `body`, signed.

    `delivery_id` is the `webhook-id` of a standard source (a new one when None); the other
    kinds carry theirs in the body. `query` is added to the URL (`question=budget`).
    """
    path = f"/v1/webhooks/{name}" + (f"?{query}" if query else "")
    url = base_url.rstrip("/") + path
    # Senders that sign the URL sign the one they were told to call.
    signed_url = (source.public_base_url or base_url).rstrip("/") + path
    kind = source.kind
    if kind == "twilio":
        form = _form_fields(body)
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": twilio_signature(secret, signed_url, form),
        }
        return SignedRequest(url, urlencode(form).encode(), headers)
    headers = {"content-type": "application/json"}
    if kind == "standard":
        msg_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        timestamp = int(now)
        headers |= {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body),
        }
    elif kind == "hubspot":
        millis = str(int(now * 1000))
        headers |= {
            "x-hubspot-signature-v3": hubspot_signature_v3(
                secret, "POST", signed_url, body, millis
            ),
            "x-hubspot-request-timestamp": millis,
        }
    elif kind == "callrail":
        headers["signature"] = callrail_signature(secret, body)
    else:
        headers[source.secret_header.lower()] = secret
    return SignedRequest(url, body, headers)


def _form_fields(body: bytes) -> list[tuple[str, str]]:
    """A JSON object of form fields as (name, value) pairs, values as Twilio sends them."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestBodyError(
            "a twilio source takes form fields: write them as one JSON object, "
            'e.g. {"CallSid": "CA…", "From": "+16135550188", "budget": "3"}.'
        ) from exc
    if not isinstance(document, dict):
        raise RequestBodyError(
            "a twilio source takes form fields: write them as one JSON object of names and values."
        )
    fields = []
    for field, value in document.items():
        if isinstance(value, dict | list) or value is None:
            raise RequestBodyError(
                f"a twilio source takes form fields: field {field!r} must be text or a number, "
                f"not {type(value).__name__}."
            )
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        fields.append((str(field), text))
    return fields
