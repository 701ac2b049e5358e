"""OIDC access tokens, checked against keys a real HTTP server publishes on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm

from leadflow.auth import AuthSettings, Principal, TokenSet, build_authenticator, install, require
from leadflow.oidc import OidcVerifier
from leadflow.problems import Problem
from leadflow.settings import ConfigError

AUDIENCE = "leadflow-api"


@dataclass
class Issuer:
    """An identity provider on loopback: discovery document and JWKS, counting fetches."""

    url: str = ""
    keys: dict[str, RSAPrivateKey] = field(default_factory=dict)
    jwks_fetches: int = 0
    down: bool = False

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str = "k1", *, key: RSAPrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "ops-alice",
            "iat": now,
            "exp": now + 300,
            "scope": "sla:read reports:read",
            **claims,
        }
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    state = Issuer()
    state.add_key("k1")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if state.down:
                self.send_error(503)
                return
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": state.url, "jwks_uri": f"{state.url}/keys"}
            elif self.path == "/keys":
                state.jwks_fetches += 1
                body = state.jwks()
            else:
                self.send_error(404)
                return
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(issuer: Issuer, **options: Any) -> OidcVerifier:
    return OidcVerifier(issuer=issuer.url, audience=AUDIENCE, **options)


async def refusal(verify: OidcVerifier, token: str) -> Problem:
    with pytest.raises(Problem) as refused:
        await verify(token)
    return refused.value


async def test_a_valid_token_is_its_subject_with_its_scopes(issuer: Issuer) -> None:
    verify = verifier(issuer, rep_claim="rep", teams_claim="teams")
    token = issuer.token(scope="sla:read leads:claim", rep="ana", teams=["emea", "na"])
    principal = await verify(token)
    assert principal is not None
    assert (principal.name, principal.scopes, principal.rep, principal.teams, principal.via) == (
        "ops-alice",
        frozenset({"sla:read", "leads:claim"}),
        "ana",
        frozenset({"emea", "na"}),
        "oidc",
    )


async def test_scopes_may_be_a_list_claim(issuer: Issuer) -> None:
    verify = verifier(issuer, scope_claim="roles")
    principal = await verify(issuer.token(roles=["admin"]))
    assert principal is not None
    assert principal.scopes == {"admin"}


async def test_expired_beyond_the_leeway_is_refused_within_it_accepted(issuer: Issuer) -> None:
    verify = verifier(issuer, leeway_s=60)
    now = int(time.time())
    assert await verify(issuer.token(exp=now - 30)) is not None
    problem = await refusal(verify, issuer.token(exp=now - 120))
    assert (problem.status, problem.detail) == (401, "The token has expired: sign in again.")


async def test_another_audience_is_refused(issuer: Issuer) -> None:
    problem = await refusal(verifier(issuer), issuer.token(aud="another-app"))
    assert (problem.status, problem.detail) == (
        401,
        "The token was not issued for this API (audience).",
    )


async def test_another_issuer_is_refused(issuer: Issuer) -> None:
    problem = await refusal(verifier(issuer), issuer.token(iss="https://evil.example"))
    assert (problem.status, problem.detail) == (
        401,
        "The token was not issued by the configured issuer.",
    )


async def test_a_key_the_issuer_does_not_publish_is_refused(issuer: Issuer) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verify = verifier(issuer)
    unknown = await refusal(verify, issuer.token("k9", key=forger))
    assert unknown.status == 401
    assert "kid" in unknown.detail
    # A known kid with another key's signature is refused too.
    forged = await refusal(verify, issuer.token("k1", key=forger))
    assert forged.status == 401


async def test_an_unsigned_or_shared_secret_token_is_refused(issuer: Issuer) -> None:
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "exp": now + 60}
    for token in (
        jwt.encode(claims, "", algorithm="none"),
        jwt.encode(claims, "a-shared-secret-of-32-bytes-long!", algorithm="HS256"),
    ):
        problem = await refusal(verifier(issuer), token)
        assert problem.status == 401
        assert "is not accepted" in problem.detail


async def test_keys_are_cached_and_fetched_again_for_a_new_kid_at_most_so_often(
    issuer: Issuer,
) -> None:
    clock = Clock()
    verify = verifier(issuer, cache_s=300, refetch_s=30, clock=clock)
    assert await verify(issuer.token()) is not None
    assert await verify(issuer.token()) is not None
    assert issuer.jwks_fetches == 1
    # The provider rotates: a token with the new kid fetches the keys again...
    issuer.add_key("k2")
    clock.now += 31
    assert await verify(issuer.token("k2")) is not None
    assert issuer.jwks_fetches == 2
    # ...but made-up kids do not make it fetch on every request.
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for _ in range(5):
        await refusal(verify, issuer.token("made-up", key=forger))
    assert issuer.jwks_fetches == 2
    # Once the cache expires, the keys are fetched again.
    clock.now += 301
    assert await verify(issuer.token()) is not None
    assert issuer.jwks_fetches == 3


async def test_a_provider_away_keeps_the_cached_keys_and_without_them_is_a_503(
    issuer: Issuer,
) -> None:
    clock = Clock()
    verify = verifier(issuer, cache_s=60, clock=clock)
    assert await verify(issuer.token()) is not None
    issuer.down = True
    clock.now += 61
    assert await verify(issuer.token()) is not None
    first = verifier(issuer)
    problem = await refusal(first, issuer.token())
    assert problem.status == 503


async def test_a_token_that_is_no_jwt_is_left_to_the_other_checks(issuer: Issuer) -> None:
    assert await verifier(issuer)("lf_not-a-jwt") is None


def app_for(issuer: Issuer) -> FastAPI:
    settings = AuthSettings(oidc_issuer=issuer.url, oidc_audience=AUDIENCE)
    app = FastAPI()
    install(app, build_authenticator("development", settings))

    @app.get("/sla")
    async def sla(principal: Annotated[Principal, require("sla:read")]) -> dict[str, str]:
        return {"name": principal.name}

    @app.get("/admin")
    async def admin(principal: Annotated[Principal, require("admin")]) -> dict[str, str]:
        return {"name": principal.name}

    return app


async def test_through_an_app_discovery_finds_the_keys_and_scopes_decide(
    issuer: Issuer,
) -> None:
    transport = httpx.ASGITransport(app=app_for(issuer))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        auth = {"authorization": f"Bearer {issuer.token()}"}
        allowed = await client.get("/sla", headers=auth)
        assert (allowed.status_code, allowed.json()) == (200, {"name": "ops-alice"})
        missing_scope = await client.get("/admin", headers=auth)
        assert missing_scope.status_code == 403
        assert missing_scope.json()["detail"] == (
            "The token 'ops-alice' does not have the scope 'admin' this route needs."
        )
        expired = await client.get(
            "/sla", headers={"authorization": f"Bearer {issuer.token(exp=1)}"}
        )
        assert expired.status_code == 401
        assert expired.headers["content-type"] == "application/problem+json"
        assert (await client.get("/sla")).status_code == 401


def test_an_issuer_without_an_audience_stops_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_OIDC_ISSUER", "https://sso.example")
    monkeypatch.delenv("LEADFLOW_OIDC_AUDIENCE", raising=False)
    with pytest.raises(ConfigError, match="LEADFLOW_OIDC_AUDIENCE is not"):
        build_authenticator("development")


def test_production_fetches_keys_over_tls_only() -> None:
    settings = AuthSettings(oidc_issuer="http://sso.example", oidc_audience=AUDIENCE)
    with pytest.raises(ConfigError, match="LEADFLOW_OIDC_ISSUER is not an https:// URL"):
        build_authenticator("production", settings)


def test_tokens_and_oidc_work_side_by_side() -> None:
    settings = AuthSettings(oidc_issuer="https://sso.example", oidc_audience=AUDIENCE)
    authenticator = build_authenticator("production", settings)
    assert isinstance(authenticator.tokens, TokenSet)
    assert authenticator.enabled
