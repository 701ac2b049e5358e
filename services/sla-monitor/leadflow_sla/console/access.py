"""Who is looking at the console: the signed-in session, CSRF on every form, scope checks.

Every console route is `PUBLIC` to the API's bearer-token rules (the authorization matrix):
a browser sends no `Authorization` header, so a page answers a visitor who is not signed
in by sending them to the sign-in page, and checks the signed-in viewer's scopes itself
(`need`). A form that changes something carries the session's CSRF token; one without it
is refused with 403.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request

from leadflow.auth import Principal, Scope
from leadflow.processing import utcnow
from leadflow_sla.console.sessions import COOKIE, ConsoleSession, SessionStore
from leadflow_sla.console.upstream import Upstream

# Form bodies larger than this are refused: the console's forms are a few short fields.
MAX_FORM_BYTES = 16_384


class SignInNeeded(Exception):
    """The visitor is not signed in (or their session expired): go to the sign-in page."""

    def __init__(self, then: str) -> None:
        super().__init__(then)
        self.then = then


class Refused(Exception):
    """A page or action the viewer may not have: answered as an HTML page with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ConsoleState:
    """What the console's routes share, on `app.state.console`."""

    sessions: SessionStore
    upstream: Upstream
    # Cookies get `Secure` everywhere but in development (plain http on 127.0.0.1).
    secure_cookies: bool


def state(request: Request) -> ConsoleState:
    """The console's shared state."""
    found: ConsoleState = request.app.state.console
    return found


StateDep = Annotated[ConsoleState, Depends(state)]


async def _viewer(request: Request, console: ConsoleState, *, take_flash: bool) -> ConsoleSession:
    session = await console.sessions.get(request.cookies.get(COOKIE), utcnow(), take_flash)
    # The credential is checked again on each request, as an API call's would be: a token
    # taken out of LEADFLOW_TOKENS (or given other scopes) counts at once on every SLA
    # monitor, not only once its sessions lapse (they outlive restarts in the database).
    principal = (
        None if session is None else await request.app.state.auth.principal(session.credential)
    )
    if session is None or principal is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        raise SignInNeeded(target if request.method == "GET" else "/console")
    session.principal = principal
    return session


async def signed_in(request: Request, console: StateDep) -> ConsoleSession:
    """The viewer's live session; a visitor who has none is sent to sign in. A page (GET)
    takes the flash the viewer's last action left, to show it once."""
    return await _viewer(request, console, take_flash=request.method == "GET")


async def signed_in_quietly(request: Request, console: StateDep) -> ConsoleSession:
    """The viewer's live session, its flash left for the next page (fragments, streams)."""
    return await _viewer(request, console, take_flash=False)


ViewerDep = Annotated[ConsoleSession, Depends(signed_in)]
QuietViewerDep = Annotated[ConsoleSession, Depends(signed_in_quietly)]


def need(principal: Principal, *scopes: Scope) -> None:
    """Refuse (403) a viewer who holds none of `scopes`."""
    if not any(principal.allows(scope) for scope in scopes):
        wanted = " or ".join(repr(s) for s in scopes)
        raise Refused(
            403, f"Your token {principal.name!r} does not have the scope {wanted} this page needs."
        )


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the last value of each)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise Refused(415, "Send the form as application/x-www-form-urlencoded.")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise Refused(413, "The form is too large.")
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


async def checked_form(request: Request, session: ConsoleSession) -> dict[str, str]:
    """The fields of a form the viewer sent from one of their pages (its CSRF token checked)."""
    try:
        fields = await read_form(request)
    except Refused:
        fields = {}  # not a form at all: it carries no CSRF token either
    if not session.csrf_matches(fields.get("csrf")):
        raise Refused(
            403,
            "The form did not carry this sign-in's security token (CSRF): reload the page and "
            "try again.",
        )
    return fields


# What a console URL's parameters are, in the words its pages use.
PARAMETER_NAMES = {"lead_key": "lead key", "key": "lead key", "days": "number of days"}


def invalid_request(errors: Sequence[Any]) -> str:
    """A validation error as a sentence for the console's error page: which part of the
    address was wrong and how (`The lead key should have at most 64 characters.`)."""
    sentences = []
    for error in errors:
        name = str(error["loc"][-1]) if error.get("loc") else "address"
        wanted = str(error["msg"]).removeprefix("Value error, ")
        for subject in ("String ", "Input ", "Value "):
            wanted = wanted.removeprefix(subject)
        sentences.append(f"The {PARAMETER_NAMES.get(name, repr(name))} {wanted}.")
    found = " ".join(sentences) or "The address is not valid."
    return f"{found} Correct the address and try again."


def sign_in_url(then: str) -> str:
    """The sign-in page, coming back to `then` afterwards."""
    return "/console/sign-in?next=" + quote(then, safe="/")


def safe_next(value: Any) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if isinstance(value, str) and value.startswith("/console") and "//" not in value:
        return value
    return "/console"
