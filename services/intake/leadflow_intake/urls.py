"""The URL a sender called, as it signed it (Twilio and HubSpot sign the full URL)."""

from __future__ import annotations

from starlette.requests import Request


def _first(value: str | None) -> str | None:
    """The first (client-most) value of a forwarded header."""
    if not value:
        return None
    return value.split(",")[0].strip() or None


def signed_url(request: Request, source: str, public_base_url: str | None) -> str:
    """The full URL of the request as the sender saw it.

    The source's `public_base_url` wins when set; otherwise a proxy's
    `X-Forwarded-Proto`/`X-Forwarded-Host` are honoured; otherwise the request's own URL.
    Trusting the forwarded headers is safe here: they only change which URL the signature
    is checked against, and a forged signature matches none.
    """
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    path = raw_path.decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    suffix = f"{path}?{query}" if query else path
    if public_base_url:
        return public_base_url.rstrip("/") + suffix
    scheme = _first(request.headers.get("x-forwarded-proto")) or request.url.scheme
    host = _first(request.headers.get("x-forwarded-host")) or request.headers.get("host")
    if not host:
        host = request.url.netloc or f"intake-{source}"
    return f"{scheme}://{host}{suffix}"
