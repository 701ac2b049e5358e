"""Who may call an API: bearer tokens with scopes, one parser and one set of rules everywhere.

A token is a random string its holder sends as `Authorization: Bearer <token>`. The
services never store it: settings hold its SHA-256, its name (what audit logs record),
its scopes and, for a rep's own token, the rep it speaks for.

Tokens come from `LEADFLOW_TOKENS` (a JSON list) or `LEADFLOW_TOKENS_FILE` (the same list
as a YAML or JSON file), each entry::

    {"name": "ops-dashboard", "sha256": "<hex>", "scopes": ["sla:read", "reports:read"]}
    {"name": "ana", "sha256": "<hex>", "scopes": ["leads:claim"], "rep": "ana"}
    {"name": "emea-manager", "sha256": "<hex>", "scopes": ["sla:read"], "teams": ["emea"]}

`leadflow tokens new NAME --scope ...` makes a token and prints the entry to add.

Scopes:

- `leads:read`   profiles, routing decisions and the pools' contents
- `leads:claim`  take a lead from a pool (a rep's token, bound to the rep with `rep`)
- `sla:read`     follow-up windows, breaches, lifecycles
- `reports:read` the reports
- `metrics:read` `/metrics` on the API port (Prometheus sends the token; unneeded when
                 `LEADFLOW_METRICS_PORT` serves the metrics on a port of their own)
- `admin`        every change (reps, reassignments, costs, erasure) and every other scope

Every route says who may call it: `require(scope)`, or `PUBLIC` for the few that anyone
may (signed webhooks, which authenticate themselves, and the probes). The authorization
matrix test fails on a route that says neither.

`LEADFLOW_OIDC_ISSUER` adds JSON Web Tokens signed by an identity provider (leadflow.oidc).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import yaml
from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadflow.config import yaml_problem
from leadflow.problems import Problem
from leadflow.settings import ConfigError

Scope = Literal["leads:read", "leads:claim", "sla:read", "reports:read", "metrics:read", "admin"]
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
ADMIN: Final = "admin"

# Tokens shorter than this are refused when they are configured in plain text.
MIN_TOKEN_LENGTH: Final = 24
TOKEN_PREFIX: Final = "lf_"

# The token `leadflow run` configures when none is: development only, refused in production.
DEV_TOKEN: Final = "lf_dev-local-stack-only-not-a-secret"

_REALM: Final = {"WWW-Authenticate": 'Bearer realm="leadflow"'}


class TokenEntry(BaseModel):
    """One token as settings hold it: never the token itself, only its SHA-256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: tuple[Scope, ...] = Field(min_length=1)
    rep: str | None = Field(default=None, min_length=1, max_length=64)
    teams: tuple[str, ...] | None = None

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.removeprefix("sha256:").strip().lower()
        return value


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name, what it may do, and whom it speaks for."""

    name: str
    scopes: frozenset[str]
    rep: str | None = None
    # The teams this caller may see; None is every team.
    teams: frozenset[str] | None = None
    via: Literal["token", "oidc", "session"] = "token"
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    def allows(self, scope: str) -> bool:
        """Whether this caller holds `scope` (admin holds every scope)."""
        return ADMIN in self.scopes or scope in self.scopes

    def sees_team(self, team: str) -> bool:
        """Whether this caller may see the leads of `team`."""
        return self.teams is None or team in self.teams


def token_hash(token: str) -> str:
    """The SHA-256 hex digest settings store in place of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenSet:
    """The configured tokens, looked up by the hash of what a caller presents."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._by_hash: dict[str, TokenEntry] = {}
        names: set[str] = set()
        for entry in entries:
            if entry.name in names:
                raise ValueError(f"token name {entry.name!r} is used twice; names must be unique.")
            if entry.sha256 in self._by_hash:
                raise ValueError(f"tokens {entry.name!r} and another have the same hash.")
            names.add(entry.name)
            self._by_hash[entry.sha256] = entry

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def entries(self) -> list[TokenEntry]:
        """Every configured token entry."""
        return list(self._by_hash.values())

    def find(self, token: str) -> Principal | None:
        """The principal `token` stands for, or None when it is not a configured token."""
        digest = token_hash(token)
        found: TokenEntry | None = None
        for known, entry in self._by_hash.items():
            # Compare every entry in constant time: the time taken says nothing.
            if hmac.compare_digest(known, digest):
                found = entry
        if found is None:
            return None
        return Principal(
            name=found.name,
            scopes=frozenset(found.scopes),
            rep=found.rep,
            teams=None if found.teams is None else frozenset(found.teams),
        )


def parse_entries(raw: str, origin: str) -> list[TokenEntry]:
    """Token entries from JSON or YAML text; the error names `origin` and the entry."""
    try:
        data = yaml.safe_load(raw) if raw.strip() else []
    except yaml.YAMLError as exc:
        where, what = yaml_problem(exc)
        at = f" ({where})" if where else ""
        raise ValueError(f"{origin} is not valid JSON or YAML{at}: {what}") from exc
    if isinstance(data, dict) and "tokens" in data:
        data = data["tokens"]
    if not isinstance(data, list):
        raise ValueError(f"{origin} must be a list of token entries.")
    entries: list[TokenEntry] = []
    for index, item in enumerate(data):
        try:
            entries.append(TokenEntry.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'entry'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ValueError(f"{origin}, token entry {index}: {problems}") from exc
    return entries


def plain_admin_entries(raw: str, origin: str) -> list[TokenEntry]:
    """Admin tokens given in plain text: `token`, or `name:token` pairs separated by commas.

    Kept for deployments that set `LEADFLOW_ADMIN_TOKEN`; each becomes an `admin` token.
    """
    entries: list[TokenEntry] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, token = item.partition(":")
        if not sep:
            name, token = "admin", item
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"{origin}: the token of {name!r} is shorter than {MIN_TOKEN_LENGTH} characters; "
                "use `leadflow tokens new` for a random one."
            )
        entries.append(TokenEntry(name=name, sha256=token_hash(token), scopes=(ADMIN,)))
    return entries


class AuthSettings(BaseSettings):
    """`LEADFLOW_TOKENS`, `LEADFLOW_TOKENS_FILE`, `LEADFLOW_ADMIN_TOKEN` and the OIDC issuer."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    tokens: str | None = None
    tokens_file: Path | None = None
    admin_token: SecretStr | None = None
    # OpenID Connect: accept JWTs signed by the issuer's keys (JWKS), so an operations team
    # can sign in with its single sign-on. Scopes are read from `oidc_scope_claim`.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_scope_claim: str = "scope"
    # The claim that names the caller in audit logs.
    oidc_name_claim: str = "sub"
    oidc_rep_claim: str | None = None
    oidc_teams_claim: str | None = None
    oidc_leeway_s: float = Field(default=60.0, ge=0)
    oidc_jwks_cache_s: float = Field(default=300.0, gt=0)
    # An unknown key id fetches the keys again (the issuer rotated them), at most this often.
    oidc_jwks_refetch_s: float = Field(default=30.0, ge=0)

    def token_set(self) -> TokenSet:
        """Every configured token; raises ValueError naming the setting that is wrong."""
        entries: list[TokenEntry] = []
        if self.tokens:
            entries += parse_entries(self.tokens, "LEADFLOW_TOKENS")
        if self.tokens_file is not None:
            try:
                raw = self.tokens_file.read_text()
            except OSError as exc:
                raise ValueError(
                    f"LEADFLOW_TOKENS_FILE {self.tokens_file} cannot be read: {exc.strerror}"
                ) from exc
            entries += parse_entries(raw, str(self.tokens_file))
        if self.admin_token is not None:
            entries += plain_admin_entries(
                self.admin_token.get_secret_value(), "LEADFLOW_ADMIN_TOKEN"
            )
        return TokenSet(entries)

    @model_validator(mode="after")
    def _oidc_settings_fit_together(self) -> AuthSettings:
        if self.oidc_issuer is None:
            return self
        if not self.oidc_issuer.startswith(("https://", "http://")):
            raise ValueError("LEADFLOW_OIDC_ISSUER must be the issuer's URL (https://...).")
        if not self.oidc_audience:
            raise ValueError(
                "LEADFLOW_OIDC_ISSUER is set but LEADFLOW_OIDC_AUDIENCE is not: without it, a "
                "token the issuer made for any other application would be accepted."
            )
        return self


def _settings_problem(exc: ValidationError) -> str:
    """A pydantic error of AuthSettings as sentences naming the variables."""
    return "; ".join(
        f"LEADFLOW_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
        if err["loc"]
        else str(err["msg"]).removeprefix("Value error, ")
        for err in exc.errors()
    )


def build_authenticator(env: str, settings: AuthSettings | None = None) -> Authenticator:
    """A service's Authenticator from its settings (`AuthSettings()` by default).

    Raises ConfigError naming the variable that is wrong; production also refuses to run
    with nobody able to call the API, and with the development token.
    """
    try:
        settings = settings or AuthSettings()
        tokens = settings.token_set()
    except ValidationError as exc:
        raise ConfigError(_settings_problem(exc)) from exc
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    verifiers: list[Verifier] = []
    if settings.oidc_issuer is not None:
        from leadflow.oidc import OidcVerifier  # it imports this module

        verifiers.append(OidcVerifier.from_settings(settings, env))
    if env == "production":
        if not len(tokens) and not verifiers:
            raise ConfigError(
                "LEADFLOW_TOKENS is not set: production refuses to serve an API nobody can "
                "call; make tokens with `leadflow tokens new NAME --scope SCOPE` (or set "
                "LEADFLOW_OIDC_ISSUER)."
            )
        if tokens.find(DEV_TOKEN) is not None:
            raise ConfigError(
                "LEADFLOW_TOKENS holds the development token of `leadflow run`; production "
                "refuses it: make real ones with `leadflow tokens new`."
            )
    return Authenticator(tokens, verifiers)


# An extra verifier for bearer credentials that are not tokens (OIDC JWTs): returns the
# principal, None when the credential is not its kind, or raises a 401 Problem.
Verifier = Callable[[str], Awaitable[Principal | None]]


@dataclass
class Authenticator:
    """Turns the `Authorization` header into a principal; installed on `app.state.auth`."""

    tokens: TokenSet
    verifiers: list[Verifier] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        """Whether anyone at all can be let in."""
        return bool(len(self.tokens) or self.verifiers)

    async def principal(self, credential: str) -> Principal | None:
        """The caller `credential` identifies, or None."""
        found = self.tokens.find(credential)
        if found is not None:
            return found
        for verify in self.verifiers:
            principal = await verify(credential)
            if principal is not None:
                return principal
        return None


_bearer = HTTPBearer(auto_error=False, description="A Leadflow token or an OIDC access token.")


def install(app: FastAPI, authenticator: Authenticator) -> None:
    """Make `authenticator` the one every `require(...)` of `app` consults; its refusals
    are answered as problem+json."""
    app.state.auth = authenticator
    if Problem not in app.exception_handlers:

        async def refused(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, Problem)
            return exc.response(request.url.path)

        app.add_exception_handler(Problem, refused)


async def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    authenticator: Authenticator | None = getattr(request.app.state, "auth", None)
    if authenticator is None or not authenticator.enabled:
        raise Problem(
            403,
            "auth_not_configured",
            "No token is configured for this service: set LEADFLOW_TOKENS (see "
            "`leadflow tokens new`) or LEADFLOW_OIDC_ISSUER.",
        )
    if credentials is None or not credentials.credentials.strip():
        raise Problem(
            401,
            "missing_token",
            "This route needs a token: send `Authorization: Bearer <token>`.",
            headers=_REALM,
        )
    principal = await authenticator.principal(credentials.credentials.strip())
    if principal is None:
        raise Problem(401, "bad_token", "The token is not valid.", headers=_REALM)
    request.state.principal = principal
    return principal


class _ScopeCheck:
    """The dependency of a route that needs `scope`; the route's declared scope."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not principal.allows(self.scope):
            raise Problem(
                403,
                "missing_scope",
                f"The token {principal.name!r} does not have the scope {self.scope!r} "
                "this route needs.",
            )
        return principal


def require(scope: Scope) -> Any:
    """A dependency that lets through only callers holding `scope`; returns the Principal.

    Use as ``principal: Annotated[Principal, require("leads:read")]``, or in a router's
    ``dependencies=[require("sla:read")]``.
    """
    return Depends(_ScopeCheck(scope))


async def _anyone() -> None:
    """Lets every caller through: the marker of a route that is public on purpose."""


# `dependencies=[PUBLIC]` on a route that anyone may call (signed webhooks, probes).
PUBLIC: Final[Any] = Depends(_anyone)


def route_scopes(dependant: Any) -> frozenset[Scope]:
    """Every scope a route requires through `require`, found in its dependency tree."""
    found: set[Scope] = set()
    stack = [dependant]
    while stack:
        node = stack.pop()
        if isinstance(node.call, _ScopeCheck):
            found.add(node.call.scope)
        stack.extend(node.dependencies)
    return frozenset(found)


def route_scope(dependant: Any) -> Scope | None:
    """The scope a route declares through `require` (`admin` when it requires several)."""
    scopes = route_scopes(dependant)
    if len(scopes) > 1:
        return ADMIN if ADMIN in scopes else sorted(scopes)[0]
    return next(iter(scopes), None)


def is_public(dependant: Any) -> bool:
    """Whether a route is declared public (`PUBLIC` among its dependencies)."""
    stack = [dependant]
    while stack:
        node = stack.pop()
        if node.call is _anyone:
            return True
        stack.extend(node.dependencies)
    return False


# The entry `leadflow run` configures when no token is: `DEV_TOKEN` with every scope.
DEV_ENTRY: Final = TokenEntry(name="development", sha256=token_hash(DEV_TOKEN), scopes=SCOPES)
# Where client commands (`leadflow demo`) find the token they send.
CLIENT_TOKEN_ENV: Final = "LEADFLOW_API_TOKEN"


def client_token(env: str, given: str | None = None) -> str | None:
    """The token a client command sends: `given` (`--token`, `LEADFLOW_API_TOKEN`), else in
    development the token `leadflow run` gives the local stack."""
    if given:
        return given
    return DEV_TOKEN if env == "development" else None


def dump_entry(entry: TokenEntry) -> str:
    """The JSON line to add to `LEADFLOW_TOKENS` for `entry`."""
    return json.dumps(entry.model_dump(exclude_none=True))
