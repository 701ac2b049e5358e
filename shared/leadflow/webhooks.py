"""Standard Webhooks signatures (sign and verify): HMAC-SHA256 of `{id}.{timestamp}.{body}`."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence


class SignatureError(Exception):
    """The request is not authentic; the message says why (never which secret)."""


def decode_secret(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret (or of a bare base64 secret)."""
    raw = secret.removeprefix("whsec_")
    raw += "=" * (-len(raw) % 4)  # senders often drop the padding
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for a message (used by tests and the tour)."""
    digest = hmac.digest(decode_secret(secret), f"{msg_id}.{timestamp}.".encode() + body, "sha256")
    return "v1," + base64.b64encode(digest).decode()


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance_s: int,
) -> tuple[str, int]:
    """Check the Standard Webhooks headers; returns the message id and timestamp."""
    msg_id = headers.get("webhook-id")
    raw_ts = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not raw_ts or not signatures:
        missing = [
            h
            for h, v in (
                ("webhook-id", msg_id),
                ("webhook-timestamp", raw_ts),
                ("webhook-signature", signatures),
            )
            if not v
        ]
        raise SignatureError(f"Missing header(s): {', '.join(missing)}.")
    try:
        timestamp = int(raw_ts)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp must be Unix seconds.") from exc
    if timestamp < now - tolerance_s:
        raise SignatureError("webhook-timestamp is too old; the message may be a replay.")
    if timestamp > now + tolerance_s:
        raise SignatureError("webhook-timestamp is in the future; check the sender's clock.")
    offered = [s.split(",", 1)[1] for s in signatures.split() if s.startswith("v1,")]
    if not offered:
        raise SignatureError("webhook-signature has no v1 signature.")
    for secret in secrets:
        expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
        if any(
            hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
            for candidate in offered
        ):
            return msg_id, timestamp
    raise SignatureError("No signature matches; check the source's secret.")
