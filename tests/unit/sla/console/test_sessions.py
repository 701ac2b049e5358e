"""Console sessions, the parts without a database: the lookup key, the sealed credential,
the principal as stored, CSRF comparison. The store itself (idle and OIDC expiry, signing
out, several monitors) is tested on SQLite and PostgreSQL in
tests/integration/test_console_sessions.py."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow.auth import Principal
from leadflow_sla.console.sessions import (
    ConsoleSession,
    lookup_key,
    principal_from,
    principal_record,
    seal,
    unseal,
)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_the_lookup_key_is_a_digest_that_tells_sessions_apart() -> None:
    key = lookup_key("session-one")
    assert len(key) == 64
    assert "session-one" not in key
    assert key == lookup_key("session-one")
    assert key != lookup_key("session-two")


def test_a_sealed_credential_opens_only_with_its_session_id() -> None:
    sealed = seal("lf_secret-token", "session-one")
    assert b"lf_secret-token" not in sealed
    assert seal("lf_secret-token", "session-one") != sealed  # a fresh nonce each time
    assert unseal(sealed, "session-one") == "lf_secret-token"
    assert unseal(sealed, "session-two") is None


def test_the_principal_is_stored_without_its_token_claims_and_read_back() -> None:
    manager = Principal(
        name="grace",
        scopes=frozenset({"sla:read", "leads:read"}),
        teams=frozenset({"enterprise"}),
        via="oidc",
        claims={"exp": 1_800_000_000, "email": "grace@example.com"},
    )
    record = principal_record(manager)
    assert "claims" not in record
    assert "grace@example.com" not in str(record)
    assert principal_from(record) == manager
    rep = Principal(name="ben", scopes=frozenset({"leads:claim"}), rep="ben")
    assert principal_from(principal_record(rep)) == rep


def test_only_the_sessions_own_csrf_token_matches() -> None:
    session = ConsoleSession(
        id="s",
        principal=Principal("ops", frozenset({"admin"})),
        credential="c",
        csrf="token-a",
        expires_at=T0,
    )
    assert session.csrf_matches("token-a")
    assert not session.csrf_matches("token-b")
    assert not session.csrf_matches(None)
    # A form may send any text: one that is not ASCII is a mismatch, not a server error.
    assert not session.csrf_matches("tökén-a")
