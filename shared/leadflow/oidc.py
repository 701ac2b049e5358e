"""OpenID Connect: JSON Web Tokens signed by an identity provider, checked against its keys.

An operations team that signs in with its single sign-on sends the access token its
provider issued as `Authorization: Bearer <jwt>`. The token is accepted when:

- it is signed (RS/PS/ES algorithms; never `none` nor a shared-secret HS*) by a key of the
  issuer's JWKS, found by the token's `kid`;
- `iss` is `LEADFLOW_OIDC_ISSUER`, `aud` holds `LEADFLOW_OIDC_AUDIENCE`, and `exp` (required)
  and `nbf` hold, give or take `LEADFLOW_OIDC_LEEWAY_S` of clock skew.

The keys come from `LEADFLOW_OIDC_JWKS_URL`, or from the `jwks_uri` of the issuer's
`/.well-known/openid-configuration`. They are kept `LEADFLOW_OIDC_JWKS_CACHE_S` seconds; a
`kid` they do not have fetches them again (the provider rotated its keys), at most once per
`LEADFLOW_OIDC_JWKS_REFETCH_S`, so that made-up key ids cannot make the service hammer the
provider. Scopes come from `LEADFLOW_OIDC_SCOPE_CLAIM` (a space-separated string, as
`scope`, or a list, as Azure's `roles`); the rep and teams a caller speaks for, from the
optional rep and teams claims.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import jwt

from leadflow.auth import AuthSettings, Principal
from leadflow.faults import describe
from leadflow.problems import Problem
from leadflow.settings import ConfigError

log = logging.getLogger(__name__)

ALGORITHMS: Final = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)
FETCH_TIMEOUT_S: Final = 5.0

_REALM: Final = {"WWW-Authenticate": 'Bearer realm="leadflow", error="invalid_token"'}


def _refused(detail: str) -> Problem:
    return Problem(401, "bad_token", detail, headers=_REALM)


@dataclass
class OidcVerifier:
    """Checks a bearer JWT against the issuer's keys and turns its claims into a Principal."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    scope_claim: str = "scope"
    name_claim: str = "sub"
    rep_claim: str | None = None
    teams_claim: str | None = None
    leeway_s: float = 60.0
    cache_s: float = 300.0
    refetch_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, jwt.PyJWK] = field(default_factory=dict, init=False)
    _fetched_at: float | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @classmethod
    def from_settings(cls, settings: AuthSettings, env: str) -> OidcVerifier:
        """The verifier `LEADFLOW_OIDC_*` describe (the issuer is set)."""
        assert settings.oidc_issuer is not None
        assert settings.oidc_audience is not None
        if env == "production":
            for name, url in (
                ("LEADFLOW_OIDC_ISSUER", settings.oidc_issuer),
                ("LEADFLOW_OIDC_JWKS_URL", settings.oidc_jwks_url),
            ):
                if url is not None and not url.startswith("https://"):
                    raise ConfigError(
                        f"{name} is not an https:// URL; production fetches signing keys "
                        "over TLS only."
                    )
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            scope_claim=settings.oidc_scope_claim,
            name_claim=settings.oidc_name_claim,
            rep_claim=settings.oidc_rep_claim,
            teams_claim=settings.oidc_teams_claim,
            leeway_s=settings.oidc_leeway_s,
            cache_s=settings.oidc_jwks_cache_s,
            refetch_s=settings.oidc_jwks_refetch_s,
        )

    async def __call__(self, credential: str) -> Principal | None:
        """The caller a JWT identifies; None when `credential` is no JWT; 401 when it is
        one that must not be accepted."""
        if credential.count(".") != 2:
            return None
        try:
            header = jwt.get_unverified_header(credential)
        except jwt.DecodeError:
            return None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise _refused(f"The token is signed with {algorithm!r}, which is not accepted.")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                credential,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _refused("The token has expired: sign in again.") from exc
        except jwt.InvalidAudienceError as exc:
            raise _refused("The token was not issued for this API (audience).") from exc
        except jwt.InvalidIssuerError as exc:
            raise _refused("The token was not issued by the configured issuer.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise _refused("The token is not valid yet.") from exc
        except jwt.InvalidTokenError as exc:
            raise _refused(f"The token is not valid: {exc}.") from exc
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        name = claims.get(self.name_claim)
        if not isinstance(name, str) or not name:
            raise _refused(f"The token has no {self.name_claim!r} claim to name its holder.")
        rep = claims.get(self.rep_claim) if self.rep_claim else None
        teams = claims.get(self.teams_claim) if self.teams_claim else None
        return Principal(
            name=name,
            scopes=frozenset(_words(claims.get(self.scope_claim))),
            rep=rep if isinstance(rep, str) and rep else None,
            teams=frozenset(_words(teams)) if teams is not None else None,
            via="oidc",
            claims=claims,
        )

    async def _key(self, kid: str) -> jwt.PyJWK:
        """The issuer's key `kid`, fetching the keys when stale or when `kid` is new."""
        async with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.cache_s
            unknown = kid not in self._keys
            may_refetch = self._fetched_at is None or now - self._fetched_at >= self.refetch_s
            if stale or (unknown and may_refetch):
                await self._refresh(now)
            found = self._keys.get(kid)
        if found is None:
            raise _refused("The token is signed by a key the issuer does not publish (kid).")
        return found

    async def _refresh(self, now: float) -> None:
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S) as client:
                url = self.jwks_url or await self._discover(client)
                response = await client.get(url)
                response.raise_for_status()
                keys = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            log.warning("the issuer's keys could not be fetched", extra={"reason": describe(exc)})
            if not self._keys:
                raise Problem(
                    503,
                    "issuer_unavailable",
                    "The identity provider's keys cannot be fetched right now; retry shortly.",
                    headers={"Retry-After": "5"},
                ) from exc
            # Keep the keys we have (a provider briefly away must not lock everyone out),
            # and wait a whole refetch interval before trying again.
            self._fetched_at = now - self.cache_s + self.refetch_s
            return
        self._keys = {k.key_id: k for k in keys.keys if k.key_id}
        self._fetched_at = now

    async def _discover(self, client: httpx.AsyncClient) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        response = await client.get(url)
        response.raise_for_status()
        document = response.json()
        jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(jwks_uri, str):
            raise ValueError(f"the discovery document at {url} has no jwks_uri")
        self.jwks_url = jwks_uri
        return jwks_uri


def _words(value: Any) -> list[str]:
    """A claim as a list of strings: a space-separated string or a JSON list."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(item) for item in value]
    return []
