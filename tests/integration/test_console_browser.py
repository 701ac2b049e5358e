"""The managers' console in a real browser (Debian's chromium, headless, by Playwright) on the
four real service processes, a real broker and SQLite or PostgreSQL.

An admin signs in, watches a lead go overdue live (Server-Sent Events, no reload), opens
its timeline and reads the router's reason, a rep claims a pool lead from the pool, and
the ROI chart's numbers are the reports API's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fixtures.auth import AUTH, TEST_TOKEN
from tests.fixtures.browser import chromium
from tests.fixtures.console import BEN, WINDOW_S, console_stack, post_lead
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    yield from console_stack(request.param, tmp_path_factory.mktemp(f"console-{request.param}"))


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    # After the stack, and closed before the next one starts: Playwright's loop runs in this
    # thread while the browser is open, and a stack's setup runs its own (asyncio.run).
    with chromium() as found:
        yield found


def console_url(stack: Stack) -> str:
    return f"{stack.services['sla-monitor'].url}/console"


def sign_in(browser: Browser, stack: Stack, token: str, width: int = 1280) -> Page:
    """A fresh browser context `width` pixels wide signed in with `token`, on the Now page."""
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(console_url(stack))
    expect(page).to_have_url(f"{console_url(stack)}/sign-in?next=/console")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Now", exact=True)).to_be_visible()
    return page


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def api(stack: Stack, service: str, path: str) -> httpx.Response:
    return httpx.get(f"{stack.services[service].url}{path}", headers=AUTH, timeout=10)


def test_a_lead_goes_overdue_live_and_its_timeline_says_why_it_went_where(
    stack: Stack, browser: Browser
) -> None:
    page = sign_in(browser, stack, TEST_TOKEN)
    expect(page.locator("#live-state")).to_have_text("Live.")
    page.evaluate("window.notReloaded = true")
    lead_key = post_lead(stack, 40)  # a small company: the smb team's round robin

    row = page.locator(f'#board table.at-risk tr[data-lead="{lead_key}"]')
    expect(row).to_be_visible(timeout=30_000)
    due = datetime.fromisoformat(str(row.locator("time").get_attribute("data-due")))
    # When the stream's board first shows it overdue (polling from here would lag).
    page.evaluate(
        """selector => new MutationObserver((_, observer) => {
            if (document.querySelector(selector)) {
                window.shownOverdue = Date.now();
                observer.disconnect();
            }
        }).observe(document.getElementById("board"), {childList: true, subtree: true})""",
        f'#board table.overdue tr[data-lead="{lead_key}"]',
    )
    overdue = page.locator(f'#board table.overdue tr[data-lead="{lead_key}"]')
    expect(overdue).to_be_visible(timeout=(WINDOW_S + 10) * 1000)
    seen = datetime.fromtimestamp(page.evaluate("window.shownOverdue") / 1000, UTC)
    assert page.evaluate("window.notReloaded") is True  # moved by the live stream
    assert seen >= due
    assert seen - due < timedelta(seconds=1), f"shown overdue {seen - due} after its due time"
    expect(overdue.locator("time")).to_contain_text("overdue by")

    overdue.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Routing")).to_be_visible()
    routing = api(stack, "router", f"/v1/leads/{lead_key}/routing").json()
    reason = routing["decisions"][0]["reason"]
    expect(page.locator(".decision .reason").first).to_have_text(reason)
    expect(page.locator("#routing-summary")).to_have_text(routing["summary"])
    expect(page.locator(".timeline")).to_contain_text("window opened for")
    expect(page.locator(".timeline")).to_contain_text("touch: demo_request")
    profile = api(stack, "scoring", f"/v1/leads/{lead_key}/profile").json()
    for found in profile["reasons"]:
        expect(page.get_by_role("rowheader", name=found["rule"], exact=True)).to_be_visible()


def test_a_rep_claims_a_lead_from_the_pool(stack: Stack, browser: Browser) -> None:
    lead_key = post_lead(stack, 1500)  # enterprise: waits in the pool
    wait_until(
        lambda: (
            lead_key
            in [
                one["lead_key"]
                for one in api(stack, "router", "/v1/pools/enterprise").json()["leads"]
            ]
        ),
        "the lead in the enterprise pool",
    )
    page = sign_in(browser, stack, BEN)
    row = page.locator(f'tr[data-lead="{lead_key}"]')
    expect(row).to_be_visible(timeout=10_000)
    row.get_by_role("button", name="Claim").click()
    expect(page.locator(".flash")).to_have_text(
        f"You claimed lead {lead_key}: its follow-up window is open."
    )
    routing = api(stack, "router", f"/v1/leads/{lead_key}/routing").json()
    assert routing["current"]["rep_id"] == "ben"
    expect(page.locator(f'tr[data-lead="{lead_key}"]')).to_have_count(0)


def test_the_roi_chart_shows_the_reports_apis_numbers(stack: Stack, browser: Browser) -> None:
    lead_key = post_lead(stack, 40)
    won_at = datetime.now(UTC).isoformat()
    body = {"event": "won", "lead_key": lead_key, "occurred_at": won_at, "amount": 5000}
    assert stack.post("crm", body).status_code == 202
    wait_until(
        lambda: api(stack, "sla-monitor", f"/v1/reports/leads/{lead_key}").json().get("won_at"),
        "the won deal in the reports",
    )
    page = sign_in(browser, stack, TEST_TOKEN)
    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="ROI per segment")).to_be_visible()
    roi = api(stack, "sla-monitor", "/v1/reports/roi").json()
    smb = next(r for r in roi["rows"] if r["key"] == "smb")
    assert smb["sales"] >= 1
    assert smb["max_cost_per_lead"] is not None
    for row in roi["rows"]:
        shown = page.locator(f'#roi-table tr[data-segment="{row["key"]}"]')
        expected = "" if row["max_cost_per_lead"] is None else str(row["max_cost_per_lead"])
        expect(shown).to_have_attribute("data-max-cost", expected)
        expect(shown).to_have_attribute("data-verdict", row["verdict"])
        expect(shown.locator("td").nth(0)).to_have_text(str(row["leads"]))
        if row["max_cost_per_lead"] is not None:
            money = f"{row['max_cost_per_lead']:,.2f} {roi['currency']}"
            expect(page.locator("svg.chart").last).to_contain_text(f"max {money}")
    # At 1280 px the table shows every column, "Cost per lead" included, without scrolling.
    box = page.locator("#roi-table").locator("xpath=..")
    assert box.evaluate("el => el.scrollWidth <= el.clientWidth")
    last = page.get_by_role("columnheader", name="Cost per lead", exact=True)
    assert last.evaluate("th => th.getBoundingClientRect().right <= innerWidth")
    csv = page.request.get(f"{console_url(stack)}/reports/roi.csv")
    assert csv.ok
    assert any(
        line.startswith(f"smb,{smb['leads']},{smb['sales']},") for line in csv.text().splitlines()
    )


def scrolls_sideways(page: Page) -> bool:
    """Whether the page is wider than the window (a reader would scroll sideways)."""
    return bool(
        page.evaluate(
            "() => document.scrollingElement.scrollWidth > document.scrollingElement.clientWidth"
        )
    )


def test_every_page_reads_at_320_pixels_without_scrolling_sideways(
    stack: Stack, browser: Browser
) -> None:
    lead_key = post_lead(stack, 40, job_title="Vice President of Revenue Operations, EMEA")
    wait_until(
        lambda: api(stack, "sla-monitor", f"/v1/reports/leads/{lead_key}").status_code == 200,
        "the lead in the SLA monitor",
    )
    page = sign_in(browser, stack, TEST_TOKEN, width=320)
    pages = {
        "Now": console_url(stack),
        "Lead": f"{console_url(stack)}/leads/{lead_key}",
        "Team": f"{console_url(stack)}/team",
        "Reports": f"{console_url(stack)}/reports",
    }
    for name, url in pages.items():
        page.goto(url)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert page.locator("table.cards").count() > 0, name
        assert not scrolls_sideways(page), f"{name} scrolls sideways at 320 px"
    # The rows are cards to the eye and still a table's rows and headers to assistive
    # technology.
    page.goto(pages["Reports"])
    first = page.locator("#roi-table tbody tr").first
    assert first.evaluate("row => getComputedStyle(row).display") == "block"
    expect(page.get_by_role("columnheader", name="Max cost per lead")).to_have_count(1)
    expect(page.get_by_role("rowheader", name="smb", exact=True)).to_have_count(1)


def test_a_page_whose_session_ends_elsewhere_stops_saying_it_is_live(
    stack: Stack, browser: Browser
) -> None:
    page = sign_in(browser, stack, TEST_TOKEN)
    state = page.locator("#live-state")
    expect(state).to_have_text("Live.")
    # Signed out from another tab: the same cookie and the page's CSRF token.
    cookie = next(c for c in page.context.cookies() if c["name"] == "leadflow_console")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    signed_out = httpx.post(
        f"{console_url(stack)}/sign-out",
        cookies={cookie["name"]: cookie["value"]},
        data={"csrf": csrf or ""},
        timeout=10,
    )
    assert signed_out.status_code == 303

    # The stream ends within its session check and the browser is refused a new one: the
    # page says it is no longer live, not that it is reconnecting.
    expect(state).to_contain_text("Not live any more", timeout=15_000)
    state.get_by_role("link", name="reload the page").click()
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
