"""`/console`: the sales managers' pages (Now, Lead, Team, Reports), sign-in and actions.

Thin routes: each builds its page's numbers (board, journey, insights) and renders a
template. Every route is `PUBLIC` to the bearer-token rules and signs its viewer in
through the session cookie (leadflow_sla.console.access).
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadflow.auth import PUBLIC
from leadflow.processing import utcnow
from leadflow.runtime import RuntimeDep, SessionDep, stopping
from leadflow_sla.console import board, insights, journey, live
from leadflow_sla.console.access import (
    ConsoleState,
    QuietViewerDep,
    Refused,
    SignInNeeded,
    StateDep,
    ViewerDep,
    checked_form,
    invalid_request,
    need,
    read_form,
    safe_next,
    sign_in_url,
)
from leadflow_sla.console.rendering import HERE, page
from leadflow_sla.console.sessions import COOKIE, SIGN_IN_COOKIE, ConsoleSession, SessionStore
from leadflow_sla.console.upstream import Upstream
from leadflow_sla.reporting import repository as reporting_repository
from leadflow_sla.reporting.query import QueryError, ReportQuery, make_query
from leadflow_sla.settings import SlaSettings

router = APIRouter(prefix="/console", tags=["console"], dependencies=[PUBLIC])

STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    # Linked from every page, so that a browser does not ask for /favicon.ico.
    "icon.svg": "image/svg+xml",
}
LeadKey = Annotated[str, Path(min_length=1, max_length=64)]
# A console address with no page, or asked with the wrong method, answers the console's own
# page with this sentence (the APIs answer problem+json).
CONSOLE_HTTP_ERRORS = {
    404: "There is no console page at this address.",
    405: "This console address does not take that kind of request.",
}


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        body,
        status,
        headers={
            "cache-control": "no-store",
            "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
            "x-content-type-options": "nosniff",
            "referrer-policy": "same-origin",
        },
    )


def _layout(session: ConsoleSession, current: str) -> dict[str, object]:
    flash, session.flash = session.flash, None
    return {"viewer": session.principal, "csrf": session.csrf, "current": current, "flash": flash}


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    """The console's stylesheet, script and icon."""
    if name not in STATIC:
        raise Refused(404, f"The console has no file {name!r}.")
    return Response(
        (HERE / "static" / name).read_bytes(),
        media_type=STATIC[name],
        headers={"cache-control": "public, max-age=300"},
    )


@router.get("/sign-in", include_in_schema=False)
async def sign_in_page(
    request: Request, console: StateDep, next_: Annotated[str, Query(alias="next")] = "/console"
) -> Response:
    """The sign-in form: paste a token."""
    token = request.cookies.get(SIGN_IN_COOKIE) or console.sessions.sign_in_token()
    response = _html(page("sign_in.html", next=safe_next(next_), csrf=token, error=None))
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=3600,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=console.secure_cookies,
    )
    return response


@router.post("/sign-in", include_in_schema=False)
async def sign_in(request: Request, console: StateDep) -> Response:
    """Check a pasted token (or OIDC access token) and open a session."""
    fields = await read_form(request)
    expected = request.cookies.get(SIGN_IN_COOKIE)
    if not expected or not hmac.compare_digest(fields.get("csrf", "").encode(), expected.encode()):
        raise Refused(403, "The sign-in form expired (CSRF): reload the page and try again.")
    credential = fields.get("token", "").strip()
    principal = await request.app.state.auth.principal(credential) if credential else None
    if principal is None:
        body = page(
            "sign_in.html",
            next=safe_next(fields.get("next")),
            csrf=expected,
            error="That token is not valid here. Paste the whole token, lf_ included.",
        )
        return _html(body, 401)
    if (previous := request.cookies.get(COOKIE)) is not None:
        # Signing in again replaces the browser's session: the one it held ends too.
        await console.sessions.close(previous)
    session = await console.sessions.open(principal, credential, utcnow())
    response = RedirectResponse(safe_next(fields.get("next")), 303)
    # A browser-session cookie: the server's record lapses after the idle TTL, counted
    # from the last request; a Max-Age set once here would end an active session early.
    response.set_cookie(
        COOKIE,
        session.id,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=console.secure_cookies,
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return response


@router.post("/sign-out", include_in_schema=False)
async def sign_out(request: Request, viewer: ViewerDep, console: StateDep) -> Response:
    """Close the session."""
    await checked_form(request, viewer)
    await console.sessions.close(viewer.id)
    response = RedirectResponse("/console/sign-in", 303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("", include_in_schema=False)
async def now_page(
    viewer: ViewerDep, console: StateDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Now: overdue and at-risk leads, load per rep, the pools."""
    config = runtime.settings.app
    found = await board.build(session, console.upstream, config, viewer.principal, utcnow())
    return _html(page("now.html", board=found, reps=config.reps, **_layout(viewer, "now")))


@router.get("/board", include_in_schema=False)
async def board_fragment(
    viewer: QuietViewerDep, console: StateDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """The Now page's board alone (what the live stream sends)."""
    config = runtime.settings.app
    found = await board.build(session, console.upstream, config, viewer.principal, utcnow())
    return _html(
        page("board.html", board=found, reps=config.reps, csrf=viewer.csrf, viewer=viewer.principal)
    )


@router.get("/events", include_in_schema=False)
async def events(
    request: Request, viewer: QuietViewerDep, console: StateDep, runtime: RuntimeDep
) -> Response:
    """The Now page's board whenever it changes, as Server-Sent Events."""
    config = runtime.settings.app

    teams = board.visible_teams(config, viewer.principal)

    async def windows() -> board.Board:
        async with runtime.sessions() as session:
            return await board.build(
                session, console.upstream, config, viewer.principal, utcnow(), pools=False
            )

    async def pools() -> list[board.Pool]:
        return await board.pools_part(console.upstream, config, viewer.principal, teams)

    def render(found: board.Board) -> str:
        return page(
            "board.html", board=found, reps=config.reps, csrf=viewer.csrf, viewer=viewer.principal
        )

    return StreamingResponse(
        live.stream(
            windows,
            pools,
            render,
            request.is_disconnected,
            lambda: console.sessions.alive(viewer.id, utcnow()),
            lambda: stopping(request),
        ),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


@router.get("/leads", include_in_schema=False)
async def find_lead(
    viewer: QuietViewerDep, key: Annotated[str, Query(max_length=64)] = ""
) -> Response:
    """The lead search box: to the lead's page."""
    if not key.strip():
        return RedirectResponse("/console", 303)
    return RedirectResponse(f"/console/leads/{quote(key.strip(), safe='')}", 303)


@router.get("/leads/{lead_key}", include_in_schema=False)
async def lead_page(
    lead_key: LeadKey, viewer: ViewerDep, console: StateDep, session: SessionDep
) -> Response:
    """Lead: one person's journey."""
    need(viewer.principal, "leads:read")
    found = await journey.build(session, console.upstream, lead_key)
    if not found.known or not found.visible_to(viewer.principal):
        raise Refused(404, f"No lead {lead_key!r} that you can see is known.")
    return _html(page("lead.html", journey=found, **_layout(viewer, "lead")))


@router.post("/leads/{lead_key}/claim", include_in_schema=False)
async def claim(
    lead_key: LeadKey, request: Request, viewer: ViewerDep, console: StateDep
) -> Response:
    """Claim a pool lead for the signed-in rep (the router decides, with their token)."""
    await checked_form(request, viewer)
    need(viewer.principal, "leads:claim")
    answer = await console.upstream.claim(lead_key, viewer.credential)
    await console.sessions.leave_flash(
        viewer, answer.problem or f"You claimed lead {lead_key}: its follow-up window is open."
    )
    return RedirectResponse("/console", 303)


@router.post("/leads/{lead_key}/reassign", include_in_schema=False)
async def reassign(
    lead_key: LeadKey, request: Request, viewer: ViewerDep, console: StateDep
) -> Response:
    """Give a lead to another rep by hand (admin; the router audits it under their name)."""
    fields = await checked_form(request, viewer)
    need(viewer.principal, "admin")
    rep_id, reason = fields.get("rep_id", "").strip(), fields.get("reason", "").strip()
    if not rep_id or not reason:
        await console.sessions.leave_flash(
            viewer, "Choose the rep and say why, to reassign a lead."
        )
        return RedirectResponse("/console", 303)
    answer = await console.upstream.reassign(lead_key, rep_id, reason, viewer.credential)
    await console.sessions.leave_flash(
        viewer, answer.problem or f"Lead {lead_key} now goes to {rep_id}."
    )
    return RedirectResponse("/console", 303)


@router.get("/team", include_in_schema=False)
async def team_page(
    viewer: ViewerDep,
    console: StateDep,
    session: SessionDep,
    runtime: RuntimeDep,
    days: Annotated[int, Query(ge=1, le=365)] = 7,
) -> Response:
    """Team: load per rep, fairness over a period, who is away and until when."""
    need(viewer.principal, "sla:read")
    config = runtime.settings.app
    now = utcnow()
    teams = board.visible_teams(config, viewer.principal)
    reps = await console.upstream.reps()  # before our own reads (see journey.build)
    tallies = await reporting_repository.rep_tallies(session, now - timedelta(days=days), teams)
    visible = {rep for t in config.teams if t.name in teams for rep in t.reps}
    rows = [r for r in reps.data.get("reps", []) if r["id"] in visible] if reps.ok else []
    return _html(
        page(
            "team.html",
            teams=teams,
            reps=rows,
            reps_problem=reps.problem,
            fairness=insights.fairness(tallies, config, teams),
            days=days,
            now=now,
            **_layout(viewer, "team"),
        )
    )


def _query(runtime: RuntimeDep, start: str | None, end: str | None) -> ReportQuery:
    try:
        return make_query(runtime.settings.app.reporting, start=start, end=end)
    except QueryError as exc:
        raise Refused(422, str(exc)) from exc


@router.get("/reports", include_in_schema=False)
async def reports_page(
    viewer: ViewerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
) -> Response:
    """Reports: funnel, speed to lead, rejection reasons and ROI, as charts and numbers."""
    need(viewer.principal, "reports:read")
    config = runtime.settings.app
    query = _query(runtime, start, end)
    found = {
        kind: await insights.report(session, config, kind, query, viewer.principal)
        for kind in insights.REPORTS
    }
    charts = {
        "funnel": insights.funnel_chart(found["funnel"]),
        "speed": insights.speed_chart(found["speed"]),
        "reasons": insights.reasons_chart(found["reasons"]),
        "roi": insights.roi_chart(found["roi"]),
    }
    period = "&".join(f"{k}={quote(v)}" for k, v in (("from", start), ("to", end)) if v)
    return _html(
        page(
            "reports.html",
            reports=found,
            charts=charts,
            start=start or "",
            end=end or "",
            period=period,
            money=insights.money,
            bucket_names=insights.BUCKET_NAMES,
            **_layout(viewer, "reports"),
        )
    )


@router.get("/reports/{kind}.csv", include_in_schema=False)
async def report_csv(
    kind: insights.ReportKind,
    viewer: ViewerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
) -> Response:
    """One report as CSV (the numbers of its chart)."""
    need(viewer.principal, "reports:read")
    query = _query(runtime, start, end)
    found = await insights.report(session, runtime.settings.app, kind, query, viewer.principal)
    return PlainTextResponse(
        insights.csv_of(kind, query, found, utcnow()),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="leadflow-{kind}.csv"'},
    )


def install(app: FastAPI, sla: SlaSettings, env: str) -> None:
    """Serve the console on `app`: its routes, its sessions, and its answers to a visitor
    who must sign in (a redirect) or may not see a page (an HTML page with the status)."""
    token = sla.service_token.get_secret_value() if sla.service_token else None
    app.state.console = ConsoleState(
        sessions=SessionStore(sla.session_ttl_s, lambda: app.state.runtime.sessions),
        upstream=Upstream(sla.router_url, sla.scoring_url, token),
        secure_cookies=env != "development",
    )

    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        return RedirectResponse(sign_in_url(exc.then), 303)

    async def refused_page(request: Request, status: int, message: str) -> Response:
        session = await app.state.console.sessions.get(request.cookies.get(COOKIE), utcnow())
        viewer = session.principal if session is not None else None
        csrf = session.csrf if session is not None else ""
        body = page(
            "refused.html",
            status=status,
            message=message,
            viewer=viewer,
            csrf=csrf,
            current="",
            flash=None,
        )
        return _html(body, status)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return await refused_page(request, exc.status, exc.message)

    # The APIs answer a request they cannot read with problem+json; a browser that typed a
    # console address gets the console's own page saying what was wrong with it.
    api_invalid = app.exception_handlers[RequestValidationError]
    api_http_error = app.exception_handlers[StarletteHTTPException]

    def in_console(request: Request) -> bool:
        path = request.url.path
        return path == router.prefix or path.startswith(router.prefix + "/")

    async def answered_by_api(
        handler: Callable[[Request, Exception], Any], request: Request, exc: Exception
    ) -> Response:
        answer = handler(request, exc)
        response: Response = await answer if inspect.isawaitable(answer) else answer
        return response

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not in_console(request):
            return await answered_by_api(api_invalid, request, exc)
        return await refused_page(request, 422, invalid_request(exc.errors()))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not in_console(request) or exc.status_code not in CONSOLE_HTTP_ERRORS:
            return await answered_by_api(api_http_error, request, exc)
        response = await refused_page(
            request, exc.status_code, CONSOLE_HTTP_ERRORS[exc.status_code]
        )
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(SignInNeeded, sign_in_needed)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.include_router(router)
