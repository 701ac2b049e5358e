"""The managers' console on the SLA monitor's real app, on SQLite and PostgreSQL: every page,
signing in and out, who sees what, and CSRF on every action.

The router's and scoring's answers come from an in-process HTTP double shaped like their
APIs (their real processes answer in the browser test, tests/integration/test_console_browser.py);
the SLA monitor's windows and lifecycles are its own, stored through its own service.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from leadflow.auth import token_hash
from leadflow.config import load_config
from leadflow.db.engine import create_engine, session_factory
from leadflow.events import Envelope, Lead, LeadActivity, LeadAssigned, LeadReceived, new_event
from leadflow.processing import utcnow
from leadflow.settings import Settings
from leadflow_sla import service
from leadflow_sla.app import create_app
from leadflow_sla.console.access import ConsoleState
from leadflow_sla.console.upstream import Upstream
from leadflow_sla.reporting import service as reporting_service
from tests.fixtures.auth import AUTH, TEST_ENTRY, TEST_TOKEN
from tests.fixtures.stack import CONFIG

TOKENS = {name: f"lf_console-{name}-" + "p" * 24 for name in ("grace", "henry", "ben", "nobody")}
ENTRIES = [
    TEST_ENTRY.model_dump(mode="json", exclude_none=True),
    {
        "name": "grace",
        "sha256": token_hash(TOKENS["grace"]),
        "scopes": ["leads:read", "sla:read", "reports:read"],
        "teams": ["enterprise"],
    },
    {
        "name": "henry",
        "sha256": token_hash(TOKENS["henry"]),
        "scopes": ["leads:read", "sla:read", "reports:read"],
        "teams": ["smb"],
    },
    {"name": "ben", "sha256": token_hash(TOKENS["ben"]), "scopes": ["leads:claim"], "rep": "ben"},
]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class FakeServices:
    """The router's and scoring's APIs as the console calls them; records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, request.url.path, token, body))
        path = request.url.path
        if "lk_nobody" in path:
            return httpx.Response(404, json={"detail": "No lead has that key."})
        if token != TEST_TOKEN and not path.endswith(("/claim", "/reassign")):
            return httpx.Response(401, json={"detail": "The token is not valid."})
        if match := re.fullmatch(r"/v1/leads/([^/]+)/routing", path):
            return httpx.Response(200, json=routing(match[1]))
        if match := re.fullmatch(r"/v1/leads/([^/]+)/profile", path):
            return httpx.Response(200, json=profile(match[1]))
        if path == "/v1/admin/reps":
            return httpx.Response(200, json={"reps": reps()})
        if match := re.fullmatch(r"/v1/leads/([^/]+)/claim", path):
            if token != TOKENS["ben"]:
                return httpx.Response(403, json={"detail": "The token speaks for no rep."})
            return httpx.Response(200, json={"lead_key": match[1], "rep_id": "ben"})
        return httpx.Response(404, json={"detail": f"No route {path}."})


def routing(lead_key: str) -> dict[str, Any]:
    team, rep = ("smb", "dev") if "smb" in lead_key else ("enterprise", "ana")
    return {
        "lead_key": lead_key,
        "summary": f"Assigned to {rep}: round robin's turn.",
        "history": [{"team": team, "rep_id": rep}],
        "decisions": [
            {
                "decided_at": utcnow().isoformat(),
                "kind": "route",
                "outcome": "assigned",
                "rule": "enterprise-size",
                "team": team,
                "rep_id": rep,
                "rep_name": rep.title(),
                "method": "round_robin",
                "reason": f"round robin: {rep.title()}'s turn in {team}",
                "candidates": [
                    {"rep_id": rep, "rep_name": rep.title(), "outcome": "chosen", "why": "turn"},
                    {"rep_id": "zed", "rep_name": "Zed", "outcome": "skipped", "why": "off shift"},
                ],
                "skipped_before": [],
            }
        ],
    }


def profile(lead_key: str) -> dict[str, Any]:
    return {
        "lead_key": lead_key,
        "score": 72,
        "fit": 50,
        "engagement": 22,
        "grade": "A",
        "tier": "mql",
        "model_version": "v1",
        "qualified_at": utcnow().isoformat(),
        "updated_at": utcnow().isoformat(),
        "reasons": [
            {"rule": "senior-title", "group": "fit", "points": 20, "detail": "VP Operations"},
            {"rule": "demo-request", "group": "engagement", "points": 22, "detail": "demo"},
        ],
        "identifiers": ["email:abc"],
        "merged_from": ["lk_old"],
        "touches": [
            {"activity": "demo_request", "source": "web", "occurred_at": utcnow().isoformat()}
        ],
    }


def reps() -> list[dict[str, Any]]:
    until = (utcnow() + timedelta(days=2)).isoformat()
    return [
        {
            "id": "ana",
            "name": "Ana Silva",
            "teams": ["enterprise"],
            "load": {"today": 3, "open": 2},
            "available_now": True,
            "unavailable_because": None,
            "absences": [],
            "out_of_office": [],
        },
        {
            "id": "ben",
            "name": "Ben Carter",
            "teams": ["enterprise"],
            "load": {"today": 0, "open": 0},
            "available_now": False,
            "unavailable_because": "out of office",
            "absences": [{"id": 1, "start": utcnow().isoformat(), "end": until, "note": "leave"}],
            "out_of_office": [],
        },
        {
            "id": "dev",
            "name": "Dev Patel",
            "teams": ["smb"],
            "load": {"today": 1, "open": 1},
            "available_now": True,
            "unavailable_because": None,
            "absences": [],
            "out_of_office": [],
        },
    ]


def assigned(lead_key: str, rep_id: str, team: str, at: datetime) -> Envelope:
    data = LeadAssigned(
        lead_key=lead_key,
        assignment_id=f"{lead_key}-1",
        rep_id=rep_id,
        rep_name=rep_id.title(),
        team=team,
        rule="enterprise-size",
        tier="mql",
        reason="test",
        assigned_at=at,
        received_at=at,
        source="web",
    )
    return new_event("lead.assigned", data, source="/test", time=at, event_id=f"e-{lead_key}")


def received(lead_key: str, at: datetime, size: int) -> Envelope:
    data = LeadReceived(
        lead_key=lead_key,
        source="web",
        source_kind="standard",
        delivery_id=f"d-{lead_key}",
        received_at=at,
        lead=Lead.model_validate({"email": f"{lead_key}@buyer.example", "company": {"size": size}}),
    )
    return new_event("lead.received", data, source="/test", time=at, event_id=f"i-{lead_key}")


def won(lead_key: str, at: datetime, amount: float) -> Envelope:
    data = LeadActivity(
        lead_key=lead_key, activity="won", occurred_at=at, source="crm", amount=amount
    )
    return new_event("lead.won", data, source="/test", time=at, event_id=f"w-{lead_key}")


def rejected(lead_key: str, at: datetime) -> Envelope:
    data = LeadActivity(
        lead_key=lead_key, activity="rejected", occurred_at=at, source="crm", reason="no budget"
    )
    return new_event("lead.rejected", data, source="/test", time=at, event_id=f"r-{lead_key}")


async def seed(database_url: str) -> None:
    """An overdue enterprise lead, a fresh smb lead, and a rejected one, stored by the SLA
    monitor's and reporting's own services."""
    config = load_config(CONFIG)
    now = utcnow()
    events = [
        assigned("lk_ent_late", "ana", "enterprise", now - timedelta(minutes=1)),
        assigned("lk_smb_soon", "dev", "smb", now),
    ]
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await service.apply_events(session, events, config, now, lambda _: None)
            await reporting_service.apply_events(
                session,
                [
                    received("lk_ent_late", now - timedelta(minutes=2), 1500),
                    received("lk_smb_soon", now - timedelta(minutes=1), 50),
                    *events,
                    rejected("lk_smb_soon", now),
                    won("lk_ent_late", now, 5000.0),
                ],
                config.reporting,
                now,
            )
    finally:
        await engine.dispose()


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def client(
    database_url: str, monkeypatch: pytest.MonkeyPatch, services: FakeServices
) -> Iterator[TestClient]:
    asyncio.run(seed(database_url))
    monkeypatch.setenv("LEADFLOW_TOKENS", json.dumps(ENTRIES))
    monkeypatch.setenv("LEADFLOW_SLA_SERVICE_TOKEN", TEST_TOKEN)
    settings = Settings(
        env="development", config=CONFIG, database_url=database_url, kafka_bootstrap="127.0.0.1:9"
    )
    app = create_app(settings)
    state: ConsoleState = app.state.console
    state.upstream = Upstream(
        "http://router.test", "http://scoring.test", TEST_TOKEN, httpx.MockTransport(services)
    )
    with TestClient(app, base_url="http://127.0.0.1:8003") as test_client:
        yield test_client


def sign_in(client: TestClient, who: str) -> str:
    """Sign `who` in; the CSRF token of their session."""
    form = client.get("/console/sign-in")
    csrf = CSRF.search(form.text)
    assert csrf is not None
    token = TEST_TOKEN if who == "admin" else TOKENS[who]
    answer = client.post(
        "/console/sign-in", data={"csrf": csrf[1], "token": token, "next": "/console"}
    )
    assert answer.status_code == 200, answer.text
    found = CSRF.search(answer.text)
    assert found is not None
    return found[1]


def test_anonymous_visitors_are_sent_to_sign_in(client: TestClient) -> None:
    for path in ("/console", "/console/leads/lk_ent_late", "/console/team", "/console/reports"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/sign-in?next=/console")
    post = client.post("/console/leads/lk_x/claim", data={}, follow_redirects=False)
    assert post.status_code == 303


def test_every_page_links_the_consoles_icon_so_browsers_do_not_ask_for_favicon(
    client: TestClient,
) -> None:
    link = '<link rel="icon" href="/console/static/icon.svg" type="image/svg+xml">'
    assert link in client.get("/console/sign-in").text
    sign_in(client, "admin")
    assert link in client.get("/console").text
    icon = client.get("/console/static/icon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg")


def test_signing_in_sets_a_strict_httponly_session_cookie_and_a_wrong_token_is_refused(
    client: TestClient,
) -> None:
    form = client.get("/console/sign-in")
    csrf = CSRF.search(form.text)
    assert csrf is not None
    wrong = client.post("/console/sign-in", data={"csrf": csrf[1], "token": "lf_wrong"})
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    no_csrf = client.post("/console/sign-in", data={"token": TEST_TOKEN})
    assert no_csrf.status_code == 403
    answer = client.post(
        "/console/sign-in", data={"csrf": csrf[1], "token": TEST_TOKEN}, follow_redirects=False
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert "leadflow_console=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # development: plain http on 127.0.0.1
    assert TEST_TOKEN.lower() not in cookie
    [session_cookie] = [
        c for c in answer.headers.get_list("set-cookie") if c.startswith("leadflow_console=")
    ]
    # The server's record lapses after the idle TTL; the browser keeps no deadline of its
    # own that would end an active session early.
    assert "max-age" not in session_cookie.lower()
    assert "expires" not in session_cookie.lower()


def test_the_now_page_shows_overdue_and_at_risk_leads_of_every_team_to_an_admin(
    client: TestClient,
) -> None:
    sign_in(client, "admin")
    page = client.get("/console")
    assert page.status_code == 200
    assert "lk_ent_late" in page.text
    assert "lk_smb_soon" in page.text
    assert 'data-due="' in page.text
    overdue = page.text.split('id="overdue-title"')[1].split('id="risk-title"')[0]
    assert "lk_ent_late" in overdue
    assert "Reassign" in page.text  # an admin may reassign
    reps = page.text.split('id="reps-title"')[1].split("</table>")[0]
    assert '<th scope="col" role="columnheader">Awaiting contact</th>' in reps
    assert ">Open<" not in reps  # the Team page's open assignments are another number
    fragment = client.get("/console/board")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "lk_ent_late" in fragment.text


def test_a_manager_sees_only_their_teams(client: TestClient) -> None:
    sign_in(client, "grace")
    page = client.get("/console")
    assert "lk_ent_late" in page.text
    assert "lk_smb_soon" not in page.text
    assert "Reassign" not in page.text  # not an admin
    assert client.get("/console/leads/lk_smb_soon").status_code == 404
    lead = client.get("/console/leads/lk_ent_late")
    assert lead.status_code == 200
    team = client.get("/console/team")
    assert "Ana Silva" in team.text
    assert "Dev Patel" not in team.text


def test_the_lead_page_shows_the_whole_journey(client: TestClient) -> None:
    sign_in(client, "admin")
    page = client.get("/console/leads/lk_ent_late")
    assert page.status_code == 200
    text = page.text
    assert "round robin: Ana&#39;s turn in enterprise" in text  # routing's why
    assert "off shift" in text  # a skipped candidate and why
    assert "senior-title" in text
    assert "VP Operations" in text
    assert "merged from profile" in text
    assert "lk_old" in text
    assert "window opened for ana (enterprise)" in text
    assert "hot-mql" in text
    windows = text.split('id="sla-title"')[1].split("</section>")[0]
    assert ">ana (enterprise)</th>" in windows  # the window's row
    assert "breached: " in windows  # and its ladder's timer (open, or fired by now)
    unknown = client.get("/console/leads/lk_nobody_knows")
    assert unknown.status_code == 404
    assert "No lead &#39;lk_nobody_knows&#39; that you can see" in unknown.text


def test_a_console_address_it_cannot_read_answers_the_consoles_page_and_the_api_problem_json(
    client: TestClient,
) -> None:
    sign_in(client, "admin")
    too_long = client.get("/console/leads/" + "k" * 65)
    assert too_long.status_code == 422
    assert too_long.headers["content-type"].startswith("text/html")
    assert '<p class="error" role="alert">The lead key should have at most 64 characters.' in (
        too_long.text
    )
    days = client.get("/console/team?days=0")
    assert days.status_code == 422
    assert "The number of days should be greater than or equal to 1." in days.text
    api = client.get("/v1/reports/funnel?segment=" + "x" * 65, headers=AUTH)
    assert api.status_code == 422
    assert api.headers["content-type"].startswith("application/problem+json")


def test_a_console_address_with_no_page_answers_the_consoles_page_and_the_api_problem_json(
    client: TestClient,
) -> None:
    sign_in(client, "admin")
    nowhere = client.get("/console/nowhere")
    assert nowhere.status_code == 404
    assert nowhere.headers["content-type"].startswith("text/html")
    assert "There is no console page at this address." in nowhere.text
    wrong_method = client.delete("/console/team")
    assert wrong_method.status_code == 405
    assert "does not take that kind of request" in wrong_method.text
    assert "GET" in wrong_method.headers["allow"]
    api = client.get("/v1/nowhere", headers=AUTH)
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")


def test_the_team_page_shows_load_absences_and_fairness(client: TestClient) -> None:
    sign_in(client, "admin")
    page = client.get("/console/team?days=7")
    assert page.status_code == 200
    assert "out of office" in page.text
    assert "leave" in page.text
    load = page.text.split("<caption>Leads assigned to each rep")[1].split("</table>")[0]
    assert '<th scope="col" role="columnheader">Assigned, open</th>' in load
    assert ">Open<" not in load  # the Now page's leads awaiting contact are another number
    fairness = page.text.split('id="fair-title"')[1]
    assert "Ana Silva" in fairness
    assert "33.3 %" in fairness


def test_the_reports_page_shows_the_numbers_of_the_reports_api(client: TestClient) -> None:
    sign_in(client, "admin")
    page = client.get("/console/reports")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 4
    assert "no budget" in page.text
    speed = page.text.split('id="speed-title"')[1].split("</section>")[0]
    assert '<th scope="row" role="rowheader" data-label="Bucket">no contact reported</th>' in speed
    assert "the funnel also counts a lead that reached a later stage" in speed
    assert "never contacted" not in page.text
    roi = client.get("/v1/reports/roi", headers=AUTH).json()
    for row in roi["rows"]:
        cell = re.search(rf'data-segment="{row["key"]}" data-max-cost="([^"]*)"', page.text)
        assert cell is not None
        expected = "" if row["max_cost_per_lead"] is None else str(row["max_cost_per_lead"])
        assert cell[1] == expected
    # 5,000 won at an 80 % margin, one sale of one lead, a 25 % target ROI: 3,200 a lead.
    assert 'data-segment="enterprise" data-max-cost="3200.0" data-cost="300.0" ' in page.text
    assert 'data-verdict="within"' in page.text
    csv = client.get("/console/reports/roi.csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    assert csv.text.splitlines()[0].startswith("key,leads,sales,conversion")
    assert any(line.startswith("enterprise,1,1,") for line in csv.text.splitlines())
    bad = client.get("/console/reports?from=yesterday")
    assert bad.status_code == 422
    assert "not a date" in bad.text


def test_a_manager_without_reports_scope_is_refused_the_reports(client: TestClient) -> None:
    sign_in(client, "ben")
    assert client.get("/console/reports").status_code == 403
    assert client.get("/console/leads/lk_ent_late").status_code == 403


def test_every_action_needs_the_sessions_csrf_token(
    client: TestClient, services: FakeServices
) -> None:
    csrf = sign_in(client, "ben")
    refused = client.post("/console/leads/lk_pool/claim", data={})
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    forged = client.post("/console/leads/lk_pool/claim", data={"csrf": "x" * 43})
    assert forged.status_code == 403
    assert not [c for c in services.calls if c[1].endswith("/claim")]
    claimed = client.post("/console/leads/lk_pool/claim", data={"csrf": csrf})
    assert claimed.status_code == 200
    assert "You claimed lead lk_pool" in claimed.text
    [call] = [c for c in services.calls if c[1].endswith("/claim")]
    assert call[2] == TOKENS["ben"]  # the router judges the rep's own token
    assert client.post("/console/sign-out", data={}).status_code == 403
    out = client.post("/console/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_reassigning_needs_admin_and_sends_the_admins_own_token(
    client: TestClient, services: FakeServices
) -> None:
    csrf = sign_in(client, "grace")
    refused = client.post(
        "/console/leads/lk_ent_late/reassign", data={"csrf": csrf, "rep_id": "ben", "reason": "x"}
    )
    assert refused.status_code == 403
    client.cookies.clear()
    csrf = sign_in(client, "admin")
    client.post(
        "/console/leads/lk_ent_late/reassign",
        data={"csrf": csrf, "rep_id": "ben", "reason": "Ana is ill"},
    )
    [call] = [c for c in services.calls if c[1].endswith("/reassign")]
    assert call[2] == TEST_TOKEN
    assert call[3] == {"rep_id": "ben", "reason": "Ana is ill"}
