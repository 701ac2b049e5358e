"""Standard Webhooks signatures, checked against the reference `standardwebhooks` library."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from leadflow.webhooks import SignatureError, decode_secret, sign, verify

OLD_KEY = bytes(range(24))
NEW_KEY = bytes(range(100, 132))
OLD_SECRET = "whsec_" + base64.b64encode(OLD_KEY).decode()
NEW_SECRET = "whsec_" + base64.b64encode(NEW_KEY).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone else's key 12345").decode()
NOW = 1_764_150_000
TOLERANCE = 300
MSG_ID = "msg_2f1Yx9"
BODY = orjson.dumps({"type": "lead.received", "lead": {"email": "ana@example.com"}})


def reference_signature(secret: str, timestamp: int = NOW, body: bytes = BODY) -> str:
    """The `webhook-signature` the reference library computes."""
    return Webhook(secret).sign(MSG_ID, datetime.fromtimestamp(timestamp, UTC), body.decode())


def headers(signature: str, timestamp: int = NOW, msg_id: str = MSG_ID) -> dict[str, str]:
    """Standard Webhooks headers."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def check(
    request_headers: dict[str, str], body: bytes = BODY, secrets: list[str] | None = None
) -> tuple[str, int]:
    """`verify` at NOW with the usual tolerance and, by default, the current secret."""
    return verify(
        request_headers,
        body,
        [NEW_SECRET] if secrets is None else secrets,
        now=NOW,
        tolerance_s=TOLERANCE,
    )


def test_accepts_a_reference_signature() -> None:
    assert check(headers(reference_signature(NEW_SECRET))) == (MSG_ID, NOW)


def test_sign_matches_the_reference_library() -> None:
    assert sign(NEW_SECRET, MSG_ID, NOW, BODY) == reference_signature(NEW_SECRET)


def test_reference_library_accepts_our_signature() -> None:
    now = int(time.time())
    signed = headers(sign(NEW_SECRET, MSG_ID, now, BODY), timestamp=now)

    assert Webhook(NEW_SECRET).verify(BODY, signed) == orjson.loads(BODY)


@pytest.mark.parametrize(
    ("secrets", "signature"),
    [
        pytest.param(
            [OLD_SECRET, NEW_SECRET], reference_signature(NEW_SECRET), id="sender-on-new-secret"
        ),
        pytest.param(
            [OLD_SECRET, NEW_SECRET], reference_signature(OLD_SECRET), id="sender-on-old-secret"
        ),
        pytest.param(
            [NEW_SECRET],
            f"{reference_signature(OLD_SECRET)} {reference_signature(NEW_SECRET)}",
            id="sender-signs-with-both",
        ),
        pytest.param(
            [OTHER_SECRET, OLD_SECRET],
            f"{reference_signature(NEW_SECRET)} {reference_signature(OLD_SECRET)}",
            id="second-signature-second-secret",
        ),
        pytest.param(
            [NEW_SECRET],
            f"v2,abc {reference_signature(NEW_SECRET)}",
            id="other-versions-ignored",
        ),
    ],
)
def test_key_rotation(secrets: list[str], signature: str) -> None:
    assert check(headers(signature), secrets=secrets) == (MSG_ID, NOW)


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        (NOW - TOLERANCE - 1, "webhook-timestamp is too old; the message may be a replay."),
        (NOW - 86_400, "webhook-timestamp is too old; the message may be a replay."),
        (NOW + TOLERANCE + 1, "webhook-timestamp is in the future; check the sender's clock."),
    ],
)
def test_refuses_timestamps_outside_the_tolerance(timestamp: int, message: str) -> None:
    signed = headers(reference_signature(NEW_SECRET, timestamp), timestamp=timestamp)

    with pytest.raises(SignatureError) as caught:
        check(signed)

    assert str(caught.value) == message


@pytest.mark.parametrize("timestamp", [NOW - TOLERANCE, NOW + TOLERANCE])
def test_accepts_timestamps_at_the_edge_of_the_tolerance(timestamp: int) -> None:
    signed = headers(reference_signature(NEW_SECRET, timestamp), timestamp=timestamp)

    assert check(signed) == (MSG_ID, timestamp)


@pytest.mark.parametrize("timestamp", ["yesterday", "1764150000.5", ""])
def test_refuses_a_timestamp_that_is_not_unix_seconds(timestamp: str) -> None:
    signed = {**headers(reference_signature(NEW_SECRET)), "webhook-timestamp": timestamp}
    expected = (
        "Missing header(s): webhook-timestamp."
        if not timestamp
        else "webhook-timestamp must be Unix seconds."
    )

    with pytest.raises(SignatureError) as caught:
        check(signed)

    assert str(caught.value) == expected


@pytest.mark.parametrize(
    ("absent", "message"),
    [
        (["webhook-id"], "Missing header(s): webhook-id."),
        (["webhook-timestamp"], "Missing header(s): webhook-timestamp."),
        (["webhook-signature"], "Missing header(s): webhook-signature."),
        (
            ["webhook-id", "webhook-signature"],
            "Missing header(s): webhook-id, webhook-signature.",
        ),
        (
            ["webhook-id", "webhook-timestamp", "webhook-signature"],
            "Missing header(s): webhook-id, webhook-timestamp, webhook-signature.",
        ),
    ],
)
def test_refuses_missing_headers(absent: list[str], message: str) -> None:
    partial = {k: v for k, v in headers(reference_signature(NEW_SECRET)).items() if k not in absent}

    with pytest.raises(SignatureError) as caught:
        check(partial)

    assert str(caught.value) == message


def test_empty_header_counts_as_missing() -> None:
    with pytest.raises(SignatureError) as caught:
        check({**headers(reference_signature(NEW_SECRET)), "webhook-id": ""})

    assert str(caught.value) == "Missing header(s): webhook-id."


@pytest.mark.parametrize(
    ("request_headers", "body", "secrets"),
    [
        pytest.param(
            headers(reference_signature(NEW_SECRET)),
            BODY.replace(b"ana@", b"eve@"),
            [NEW_SECRET],
            id="tampered-body",
        ),
        pytest.param(
            headers(reference_signature(NEW_SECRET)), BODY + b" ", [NEW_SECRET], id="extra-byte"
        ),
        pytest.param(
            headers(reference_signature(NEW_SECRET), msg_id="msg_other"),
            BODY,
            [NEW_SECRET],
            id="tampered-id",
        ),
        pytest.param(
            headers(reference_signature(NEW_SECRET), timestamp=NOW + 1),
            BODY,
            [NEW_SECRET],
            id="tampered-timestamp",
        ),
        pytest.param(
            headers(reference_signature(OTHER_SECRET)),
            BODY,
            [OLD_SECRET, NEW_SECRET],
            id="unknown-secret",
        ),
        pytest.param(headers(reference_signature(NEW_SECRET)), BODY, [], id="no-secret"),
        pytest.param(headers("v1,"), BODY, [NEW_SECRET], id="empty-v1"),
        pytest.param(headers("v1,not-base64!"), BODY, [NEW_SECRET], id="garbage-v1"),
    ],
)
def test_refuses_what_no_secret_signed(
    request_headers: dict[str, str], body: bytes, secrets: list[str]
) -> None:
    with pytest.raises(SignatureError) as caught:
        check(request_headers, body, secrets)

    assert str(caught.value) == "No signature matches; check the source's secret."


@pytest.mark.parametrize(
    "signature",
    [
        reference_signature(NEW_SECRET).replace("v1,", "v2,"),
        reference_signature(NEW_SECRET).replace("v1,", "v1a,"),
        reference_signature(NEW_SECRET).replace("v1,", "v1:"),
        reference_signature(NEW_SECRET).removeprefix("v1,"),
    ],
)
def test_refuses_a_header_without_v1_signature(signature: str) -> None:
    with pytest.raises(SignatureError) as caught:
        check(headers(signature))

    assert str(caught.value) == "webhook-signature has no v1 signature."


@pytest.mark.parametrize("signature", ["v1,é", "v1,ünïcödé=="])
def test_non_ascii_signature_is_refused_not_crashed(signature: str) -> None:
    # HTTP headers arrive latin-1 decoded: a stray byte must give 401, not a TypeError (500).
    with pytest.raises(SignatureError):
        check(headers(signature))


def test_error_messages_do_not_reveal_secrets() -> None:
    with pytest.raises(SignatureError) as caught:
        check(headers(reference_signature(OTHER_SECRET)), secrets=[OLD_SECRET, NEW_SECRET])

    for secret in (OLD_SECRET, NEW_SECRET, OTHER_SECRET):
        assert secret.removeprefix("whsec_") not in str(caught.value)


def test_unpadded_secret_works_like_the_reference_library() -> None:
    # The reference library accepts base64 secrets without their "=" padding.
    unpadded = "whsec_" + base64.b64encode(b"k" * 31).decode().rstrip("=")

    assert sign(unpadded, MSG_ID, NOW, BODY) == reference_signature(unpadded)
    assert check(headers(reference_signature(unpadded)), secrets=[unpadded]) == (MSG_ID, NOW)


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        (NEW_SECRET, NEW_KEY),
        (NEW_SECRET.removeprefix("whsec_"), NEW_KEY),
        ("plain-text secret", b"plain-text secret"),
        ("whsec_not base64!", b"whsec_not base64!"),
    ],
)
def test_decode_secret(secret: str, key: bytes) -> None:
    assert decode_secret(secret) == key
