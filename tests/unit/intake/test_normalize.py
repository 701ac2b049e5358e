"""The email fast path: a strict subset of email_validator, with exactly its result."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leadflow_intake.normalize import normalize_email, plain_address

PROPERTY = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def validated(value: str) -> str:
    """What normalize_email returned before the fast path: email_validator's normal form."""
    return validate_email(value.strip(), check_deliverability=False).normalized.lower()


def outcome(normalize: Callable[[str], str], value: str) -> tuple[str, str]:
    """("ok", result) or ("error", message) of a normalization, for comparing two of them."""
    try:
        return "ok", normalize(value)
    except (ValueError, EmailNotValidError) as exc:
        return "error", str(exc)


def slow_normalize(value: str) -> str:
    try:
        return validated(value)
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address ({exc}).") from exc


PLAIN = "abcxyzABCXYZ0189._%+-"
OTHER_ATEXT = "!#$&'*/=?^`{|}~"
UNICODE = "éßİ\u0131K\u212a\u0301\uff0e\u3002\uff41\u00a0 \t\u200b\u202e"
# Runs of one character, so that lengths near the limits are common.
runs = st.builds(str.__mul__, st.sampled_from("aZ9"), st.integers(1, 70))
letter_runs = st.builds(str.__mul__, st.sampled_from("aZ"), st.integers(1, 70))
local_parts = (st.text(alphabet=PLAIN, max_size=10) | runs) | st.text(
    alphabet=PLAIN + OTHER_ATEXT + UNICODE + '"@<>()[],;:\\', max_size=70
)
labels = (
    st.text(alphabet="abcXYZ019-", min_size=1, max_size=8)
    | runs
    | st.sampled_from(["xn--p1ai", "XN--P1AI", "ab--cd", "a--b", "xn--", "-a", "a-", "9", ""])
    | st.text(alphabet="abc-" + UNICODE, min_size=1, max_size=8)
)
tlds = st.sampled_from(
    [
        "com",
        "COM",
        "io",
        "c",
        "c1",
        "1",
        "123",
        "xn--p1ai",
        "test",
        "TEST",
        "local",
        "localhost",
        "invalid",
        "onion",
        "arpa",
        "example",
        "co-m",
        "-com",
        "рф",
    ]
) | st.text(alphabet="abcZ09-", min_size=1, max_size=65)
domains = st.builds(
    lambda names, tld: ".".join([*names, tld]), st.lists(labels, max_size=5), tlds | letter_runs
) | st.sampled_from(["localhost", "test", "[127.0.0.1]", "[IPv6:::1]", "a..b.com", ".a.com"])
long_addresses = st.builds(
    lambda local, names, tld: f"{local}@{'.'.join([*names, tld])}",
    runs,
    st.lists(runs, min_size=1, max_size=4),
    letter_runs,
)
# Plain local parts with domains of plain and reserved names: the edges of the fast path.
edge_addresses = st.builds(
    lambda local, names, tld: f"{local}@{'.'.join([*names, tld])}",
    st.from_regex(r"[a-zA-Z0-9_%+-]{1,8}(?:\.[a-zA-Z0-9_%+-]{1,8}){0,2}", fullmatch=True),
    st.lists(
        st.sampled_from(["mail", "Ex-2", "xn--p1ai", "ab--cd", "TEST", "local", "9"]), max_size=3
    ),
    tlds,
)
spaces = st.sampled_from(["", " ", "\t", "\n", "\u3000"])
addresses = (
    st.builds(
        lambda pre, local, domain, post: f"{pre}{local}@{domain}{post}",
        spaces,
        local_parts,
        domains,
        spaces,
    )
    | st.from_regex(
        r"[A-Za-z0-9_%+.-]{1,70}@(?:[A-Za-z0-9-]{1,64}\.){1,4}[A-Za-z0-9]{1,64}", fullmatch=True
    )
    | long_addresses
    | edge_addresses
    | st.text(max_size=40)
)


@given(address=addresses)
@PROPERTY
@example(address="bench.1@bigco1.example")
@example(address=f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 57}.com")
def test_the_fast_path_accepts_only_what_email_validator_accepts_and_returns_its_result(
    address: str,
) -> None:
    plain = plain_address(address.strip())
    if plain is not None:
        assert plain == validated(address)
    assert outcome(normalize_email, address) == outcome(slow_normalize, address)


@pytest.mark.parametrize(
    "address",
    [
        "bench.1@bigco1.example",
        "Jane.Doe+Leads@Mail.BigCo.COM",
        " jane_doe%x@a-b.io ",
        f"{'a' * 64}@example.com",
        f"a@{'b' * 63}.com",
        f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 57}.com",
    ],
)
def test_plain_addresses_take_the_fast_path(address: str) -> None:
    assert plain_address(address.strip()) == validated(address)


@pytest.mark.parametrize(
    "address",
    [
        f"{'a' * 65}@example.com",
        f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 58}.com",
        f"a@{'b' * 64}.com",
        f"a@b.{'c' * 64}",
        "a@b.c1",
        "a@b.123",
        "a@localhost",
        "a@mail.test",
        "a@MAIL.Local",
        "a@x.arpa",
        "a@xn--p1ai.com",
        "a@ab--cd.com",
        "a@a--b.com",
        "a@-a.com",
        "a@a-.com",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a!b@example.com",
        "é@example.com",
        "a@exämple.com",
        "a@[127.0.0.1]",
        "Jane <a@example.com>",
    ],
)
def test_unusual_addresses_go_to_email_validator(address: str) -> None:
    assert plain_address(address) is None
    assert outcome(normalize_email, address) == outcome(slow_normalize, address)
