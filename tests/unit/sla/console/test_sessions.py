"""Console sessions: opaque ids, idle expiry, an OIDC token's expiry, CSRF comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadflow.auth import Principal
from leadflow_sla.console.sessions import SessionStore

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
ADMIN = Principal(name="ops", scopes=frozenset({"admin"}))


def test_a_session_lapses_after_its_idle_time_and_each_request_extends_it() -> None:
    store = SessionStore(ttl_s=600)
    session = store.open(ADMIN, "lf_secret", T0)
    assert len(session.id) >= 43
    assert store.get(session.id, T0 + timedelta(seconds=590)) is session
    assert store.get(session.id, T0 + timedelta(seconds=1180)) is session
    assert store.get(session.id, T0 + timedelta(seconds=1800)) is None
    assert len(store) == 0


def test_a_session_never_outlives_the_oidc_token_it_was_opened_with() -> None:
    store = SessionStore(ttl_s=3600)
    exp = T0 + timedelta(minutes=5)
    user = Principal(
        name="grace", scopes=frozenset({"sla:read"}), via="oidc", claims={"exp": exp.timestamp()}
    )
    session = store.open(user, "eyJ...", T0)
    assert session.expires_at == exp
    assert store.get(session.id, T0 + timedelta(minutes=4)) is session
    assert store.get(session.id, T0 + timedelta(minutes=6)) is None


def test_sessions_are_told_apart_and_closed() -> None:
    store = SessionStore(ttl_s=600)
    one, two = store.open(ADMIN, "a", T0), store.open(ADMIN, "b", T0)
    assert one.id != two.id
    assert one.csrf != two.csrf
    assert one.csrf_matches(one.csrf)
    assert not one.csrf_matches(two.csrf)
    assert not one.csrf_matches(None)
    store.close(one.id)
    assert store.get(one.id, T0) is None
    assert store.get(two.id, T0) is two
    assert store.get(None, T0) is None
