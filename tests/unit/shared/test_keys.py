"""Lead keys: an HMAC of the identity under the deployment's secret, and a rotation's keys."""

from __future__ import annotations

import hashlib
import re

import pytest

from leadflow.keys import DEV_KEY_SECRET, LeadKeys, secret_problem, unsalted_key

SECRET = "test-key-secret-of-forty-bytes-0123456789"
OTHER = "another-key-secret-of-forty-bytes-987654"


@pytest.mark.parametrize(
    ("secret", "identity", "expected"),
    [
        (SECRET, "ana@example.com", "lk_06edc8f4cab6f85395cfad00"),
        (SECRET, "+14155550134", "lk_d89bfce05e9dea985c74e5dd"),
        (DEV_KEY_SECRET, "ana@example.com", "lk_58c0437483a8094a6b16882c"),
        (DEV_KEY_SECRET, "+14155550134", "lk_4326046f30dd851aecfd4279"),
    ],
)
def test_a_key_is_stable_for_a_secret_and_an_identity(
    secret: str, identity: str, expected: str
) -> None:
    # Keys are stored and used as Kafka keys: changing the derivation splits every person.
    assert LeadKeys(secret).key(identity) == expected
    assert LeadKeys(secret).key(identity) == LeadKeys(secret).key(identity)


def test_keys_keep_the_format_urls_and_columns_expect() -> None:
    keys = LeadKeys(SECRET)

    for identity in ("ana@example.com", "+14155550134", ""):
        assert re.fullmatch(r"lk_[0-9a-f]{24}", keys.key(identity))


def test_another_secret_gives_another_key() -> None:
    assert LeadKeys(SECRET).key("ana@example.com") != LeadKeys(OTHER).key("ana@example.com")


def test_another_identity_gives_another_key() -> None:
    keys = LeadKeys(SECRET)

    assert keys.key("ana@example.com") != keys.key("ana@example.org")


@pytest.mark.parametrize("identity", ["ana@example.com", "+14155550134"])
def test_a_key_is_not_the_unsalted_hash_anyone_can_compute(identity: str) -> None:
    anyones = "lk_" + hashlib.sha256(identity.encode()).hexdigest()[:24]

    assert unsalted_key(identity) == anyones
    assert LeadKeys(SECRET).key(identity) != anyones
    assert LeadKeys(DEV_KEY_SECRET).key(identity) != anyones


@pytest.mark.parametrize("identity", ["ana@example.com", "+14155550134", "ana"])
def test_a_key_does_not_contain_the_identity(identity: str) -> None:
    key = LeadKeys(SECRET).key(identity)

    assert identity not in key
    assert identity.split("@")[0] not in key
    assert identity.lstrip("+") not in key


def test_without_a_rotation_an_identity_has_one_candidate() -> None:
    keys = LeadKeys(SECRET)

    assert keys.candidates("ana@example.com") == [keys.key("ana@example.com")]


def test_during_a_rotation_the_current_key_comes_first_then_the_previous_ones() -> None:
    keys = LeadKeys(SECRET, [OTHER, SECRET], previous_unsalted=True)
    identity = "ana@example.com"

    assert keys.key(identity) == LeadKeys(SECRET).key(identity)
    assert keys.candidates(identity) == [
        LeadKeys(SECRET).key(identity),
        LeadKeys(OTHER).key(identity),
        unsalted_key(identity),
    ]


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be empty"):
        LeadKeys("")


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (None, "LEADFLOW_KEY_SECRET is not set: lead keys are derived from it; set it to"),
        ("", "LEADFLOW_KEY_SECRET is not set"),
        ("short-secret", "LEADFLOW_KEY_SECRET is 12 bytes long; set it to a random secret"),
        ("x" * 31, "LEADFLOW_KEY_SECRET is 31 bytes long"),
        (DEV_KEY_SECRET, "LEADFLOW_KEY_SECRET is the documented development secret"),
    ],
)
def test_a_production_secret_must_be_set_long_and_not_the_development_one(
    secret: str | None, problem: str
) -> None:
    found = secret_problem(secret)

    assert found is not None
    assert found.startswith(problem)
    assert "at least 32 bytes" in found
    assert not secret or secret not in found


@pytest.mark.parametrize("secret", [SECRET, "x" * 32, "é" * 16])
def test_a_production_secret_of_32_bytes_or_more_is_accepted(secret: str) -> None:
    assert secret_problem(secret) is None
