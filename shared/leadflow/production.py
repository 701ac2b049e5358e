"""What production refuses, each refusal one sentence naming the setting to fix.

Services run under production rules unless `LEADFLOW_ENV=development` says otherwise, and
only the local stack (`leadflow run`) says so. Production refuses:

- the documented development secrets, wherever a secret is read;
- secrets shorter than `MIN_SECRET_BYTES`, and `whsec_` secrets whose body is not base64
  (two secrets joined by a comma look like that: a rotation separates them by whitespace);
- outgoing webhooks that are not https or not signed with a secret of their own
  (`leadflow.webhook_targets`);
- an API with protected routes that no token and no OIDC issuer can open.

Development listens on loopback only, wherever it runs: its secrets are public.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any, Final

from fastapi.routing import APIRoute

# The shortest secret production accepts: 192 bits, the Standard Webhooks minimum.
MIN_SECRET_BYTES: Final = 24
LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_NEW_SECRET: Final = "e.g. `echo whsec_$(openssl rand -base64 32)`"


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is this machine's loopback interface only."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def development_host_problem(env: str, host: str) -> str | None:
    """Why development must not listen on `host`, or None when it may."""
    if env != "development" or is_loopback(host):
        return None
    return (
        f"LEADFLOW_HOST is {host} but LEADFLOW_ENV is development: development accepts the "
        "secrets the README publishes, so it listens on loopback only (127.0.0.1); set "
        "LEADFLOW_ENV=production, with real secrets, to listen on a network."
    )


def weak_secret_problem(variable: str, secret: str) -> str | None:
    """Why production refuses `secret` read from `variable` (too short, malformed), or None."""
    if secret.startswith("whsec_"):
        body = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            return (
                f"{variable} starts with whsec_ but the rest is not base64; the secrets of a "
                "rotation are separated by whitespace (a space or a newline), not commas."
            )
        size = len(key)
    else:
        size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        return (
            f"{variable} is {size} bytes long; production needs a random secret of at least "
            f"{MIN_SECRET_BYTES} bytes ({_NEW_SECRET})."
        )
    return None


def protected_routes(app: Any) -> list[str]:
    """The paths of `app` whose routes declare a scope (leadflow.auth.require)."""
    from leadflow.auth import route_scope  # it imports the settings, which import this module

    return [
        route.path
        for route in app.routes
        if isinstance(route, APIRoute) and route_scope(route.dependant) is not None
    ]


def api_problem(app: Any, env: str) -> str | None:
    """Why production refuses to serve `app`: protected routes nobody could be let into."""
    if env != "production" or not protected_routes(app):
        return None
    authenticator = getattr(app.state, "auth", None)
    if authenticator is not None and authenticator.enabled:
        return None
    return (
        "LEADFLOW_TOKENS is not set: production refuses to serve an API nobody can call; "
        "make tokens with `leadflow tokens new NAME --scope SCOPE` (or set LEADFLOW_OIDC_ISSUER)."
    )
