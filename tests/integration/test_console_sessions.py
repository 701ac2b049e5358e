"""Console sign-ins kept in the database, on SQLite and PostgreSQL: one SLA monitor's sign-in
is accepted by another on the same database and after a restart; idle and OIDC expiry;
signing out deletes the row; expired rows are pruned; the row holds neither the session id
nor the token."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.auth import Principal
from leadflow.db.engine import create_engine, session_factory
from leadflow.retention import Rule, prune
from leadflow.settings import Settings
from leadflow_sla.app import create_app
from leadflow_sla.console.repository import prune_expired_sessions
from leadflow_sla.console.sessions import (
    COOKIE,
    TOUCH_EVERY_S,
    SessionStore,
    lookup_key,
    seal,
    unseal,
)
from leadflow_sla.tables import console_sessions
from tests.fixtures.auth import TEST_ENTRY, TEST_TOKEN
from tests.fixtures.stack import CONFIG

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
TTL_S = 3600.0
GRACE = Principal("grace", frozenset({"sla:read", "leads:read"}), teams=frozenset({"enterprise"}))


def new_app(database_url: str) -> FastAPI:
    """An SLA monitor on `database_url` (its broker and upstreams unreachable: unneeded)."""
    settings = Settings(
        env="development", config=CONFIG, database_url=database_url, kafka_bootstrap="127.0.0.1:9"
    )
    return create_app(settings)


@pytest.fixture
def apps(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LEADFLOW_TOKENS", json.dumps([TEST_ENTRY.model_dump(mode="json")]))
    monkeypatch.setenv("LEADFLOW_SLA_ROUTER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LEADFLOW_SLA_SCORING_URL", "http://127.0.0.1:9")
    return database_url


def client(app: FastAPI) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1:8003")


def sign_in(test_client: TestClient) -> tuple[str, str]:
    """Sign the admin in; the session cookie and the session's CSRF token."""
    form = client_form(test_client)
    answer = test_client.post("/console/sign-in", data={"csrf": form, "token": TEST_TOKEN})
    assert answer.status_code == 200, answer.text
    csrf = CSRF.search(answer.text)
    assert csrf is not None
    return test_client.cookies[COOKIE], csrf[1]


def client_form(test_client: TestClient) -> str:
    found = CSRF.search(test_client.get("/console/sign-in").text)
    assert found is not None
    return found[1]


def signed_in(test_client: TestClient, cookie: str) -> bool:
    """Whether the Now page answers `cookie` (rather than sending it to sign in)."""
    test_client.cookies.set(COOKIE, cookie, path="/console")
    answer = test_client.get("/console", follow_redirects=False)
    if answer.status_code == 303:
        assert answer.headers["location"].startswith("/console/sign-in")
        return False
    assert answer.status_code == 200, answer.text
    return "Sign out" in answer.text


async def rows(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        found = await conn.execute(select(console_sessions))
        return [dict(row._mapping) for row in found]


def stored(database_url: str) -> list[dict[str, object]]:
    """The table's rows, read from outside the apps (on an engine of its own)."""

    async def read() -> list[dict[str, object]]:
        engine = create_engine(database_url)
        try:
            return await rows(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_a_sign_in_is_accepted_by_another_monitor_and_after_a_restart(apps: str) -> None:
    with client(new_app(apps)) as first, client(new_app(apps)) as second:
        cookie, _ = sign_in(first)
        assert signed_in(second, cookie)
        assert not signed_in(second, cookie[:-2] + "xx")
    # Both stopped: a new process on the same database still knows the sign-in.
    with client(new_app(apps)) as restarted:
        assert signed_in(restarted, cookie)


def test_signing_out_on_one_monitor_signs_out_on_every_monitor(apps: str) -> None:
    with client(new_app(apps)) as first, client(new_app(apps)) as second:
        cookie, csrf = sign_in(first)
        [row] = stored(apps)
        # The row holds neither the cookie's id nor the token, in any form a reader could use.
        assert row["id_hash"] == lookup_key(cookie)
        assert cookie not in json.dumps(row, default=str)
        credential = row["credential"]
        assert isinstance(credential, bytes)
        assert TEST_TOKEN.encode() not in credential
        assert TEST_TOKEN not in json.dumps(row["principal"])
        assert signed_in(second, cookie)
        out = second.post("/console/sign-out", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
        assert out.headers["location"] == "/console/sign-in"
        assert stored(apps) == []
        assert not signed_in(first, cookie)


def test_the_credential_opens_only_with_its_own_session_id() -> None:
    sealed = seal(TEST_TOKEN, "the-session-id")
    assert unseal(sealed, "the-session-id") == TEST_TOKEN
    assert unseal(sealed, "another-session-id") is None
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert unseal(tampered, "the-session-id") is None


async def test_idle_expiry_is_pushed_back_at_most_once_a_minute(engine: AsyncEngine) -> None:
    store = SessionStore(TTL_S, lambda: session_factory(engine))
    opened = await store.open(GRACE, "lf_grace-token", T0)
    assert opened.expires_at == T0 + timedelta(seconds=TTL_S)

    soon = await store.get(opened.id, T0 + timedelta(seconds=TOUCH_EVERY_S / 2))
    assert soon is not None
    assert soon.principal == GRACE
    assert soon.credential == "lf_grace-token"
    [row] = await rows(engine)
    assert row["last_seen_at"] == T0  # not written for a request within the minute

    later = T0 + timedelta(seconds=TOUCH_EVERY_S + 1)
    touched = await store.get(opened.id, later)
    assert touched is not None
    assert touched.expires_at == later + timedelta(seconds=TTL_S)
    [row] = await rows(engine)
    assert row["last_seen_at"] == later

    idle = later + timedelta(seconds=TTL_S)
    assert await store.get(opened.id, idle) is None
    assert await rows(engine) == []  # an expired session found is deleted


async def test_an_oidc_sign_in_ends_with_its_access_token(engine: AsyncEngine) -> None:
    store = SessionStore(TTL_S, lambda: session_factory(engine))
    exp = T0 + timedelta(minutes=10)
    oidc = Principal(
        "sso-user", frozenset({"sla:read"}), via="oidc", claims={"exp": exp.timestamp()}
    )
    opened = await store.open(oidc, "eyJ.token.sig", T0)
    assert opened.expires_at == exp
    kept = await store.get(opened.id, exp - timedelta(minutes=1))
    assert kept is not None
    assert kept.expires_at == exp  # pushed back no further than the token's own expiry
    assert kept.principal.via == "oidc"
    assert await store.get(opened.id, exp) is None


async def test_a_flash_is_shown_once(engine: AsyncEngine) -> None:
    store = SessionStore(TTL_S, lambda: session_factory(engine))
    opened = await store.open(GRACE, "lf_grace-token", T0)
    await store.leave_flash(opened, "You claimed lead lk_a.")
    fragment = await store.get(opened.id, T0, take_flash=False)
    assert fragment is not None
    assert fragment.flash == "You claimed lead lk_a."
    page = await store.get(opened.id, T0, take_flash=True)
    assert page is not None
    assert page.flash == "You claimed lead lk_a."
    again = await store.get(opened.id, T0, take_flash=True)
    assert again is not None
    assert again.flash is None


async def test_the_retention_job_prunes_expired_sign_ins_only(engine: AsyncEngine) -> None:
    store = SessionStore(TTL_S, lambda: session_factory(engine))
    gone = [await store.open(GRACE, "lf_old", T0) for _ in range(3)]
    live = await store.open(GRACE, "lf_new", T0 + timedelta(seconds=TTL_S))
    now = T0 + timedelta(seconds=TTL_S + 1)
    rule = Rule("console_sessions", -1.0, prune_expired_sessions)
    deleted = await prune(session_factory(engine), [rule], now, batch=2)
    assert deleted == {"console_sessions": 3}
    assert [r["id_hash"] for r in await rows(engine)] == [lookup_key(live.id)]
    for session in gone:
        assert await store.get(session.id, now) is None


async def test_a_session_is_alive_until_it_expires_or_signs_out(engine: AsyncEngine) -> None:
    store = SessionStore(TTL_S, lambda: session_factory(engine))
    opened = await store.open(GRACE, "lf_grace-token", T0)
    other = await store.open(GRACE, "lf_grace-token", T0)
    assert await store.alive(opened.id, T0 + timedelta(seconds=TTL_S - 1))
    assert not await store.alive(opened.id, T0 + timedelta(seconds=TTL_S))
    await store.close(opened.id)
    assert not await store.alive(opened.id, T0)
    assert await store.alive(other.id, T0)
    assert not await store.alive("never-issued", T0)
    [row] = await rows(engine)
    assert row["last_seen_at"] == T0  # asking wrote nothing


def test_signing_in_again_ends_the_session_the_browser_held(apps: str) -> None:
    with client(new_app(apps)) as browser:
        first, _ = sign_in(browser)
        second, _ = sign_in(browser)
        assert second != first
        assert [row["id_hash"] for row in stored(apps)] == [lookup_key(second)]
        assert not signed_in(browser, first)


def test_a_sign_in_form_with_a_token_that_is_not_ascii_is_refused(apps: str) -> None:
    with client(new_app(apps)) as browser:
        client_form(browser)
        answer = browser.post("/console/sign-in", data={"csrf": "jéton", "token": TEST_TOKEN})
        assert answer.status_code == 403
        assert stored(apps) == []


def test_a_sign_in_ends_when_its_token_is_no_longer_configured(
    apps: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client(new_app(apps)) as first:
        cookie, _ = sign_in(first)
    # The token is taken out of LEADFLOW_TOKENS and the monitor restarted: its stored
    # sign-in no longer shows anything.
    monkeypatch.setenv("LEADFLOW_TOKENS", "[]")
    with client(new_app(apps)) as restarted:
        assert not signed_in(restarted, cookie)
