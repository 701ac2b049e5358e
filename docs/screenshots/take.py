"""`make screenshots`: PNGs of each console page, taken by Debian's chromium (Playwright).

Starts the four services on a local broker and SQLite (as the browser tests do), sends a
few demo leads (a small company's that goes overdue, enterprise leads waiting in the pool,
a won deal and a rejected lead for the reports), signs in as an admin and photographs Now,
a Lead, Team, Reports, the sign-in page, and Now 320 px wide, into this folder.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.fixtures.auth import AUTH, TEST_TOKEN
from tests.fixtures.browser import chromium
from tests.fixtures.console import WINDOW_S, console_stack, post_lead
from tests.fixtures.stack import Stack

HERE = Path(__file__).resolve().parent


def outcome(stack: Stack, lead_key: str, event: str, **fields: object) -> None:
    """A CRM outcome through the intake's signed CRM webhook."""
    at = datetime.now(UTC).isoformat()
    answer = stack.post("crm", {"event": event, "lead_key": lead_key, "occurred_at": at, **fields})
    assert answer.status_code == 202, answer.text


def demo(stack: Stack) -> str:
    """Demo leads; the key of the one to show on the Lead page."""
    shown = post_lead(stack, 40, job_title="VP Sales")
    for size in (60, 250, 30):
        post_lead(stack, size)
    won = post_lead(stack, 120)
    rejected = post_lead(stack, 80)
    for size in (1500, 4000):
        post_lead(stack, size)
    time.sleep(5)  # scored and routed
    outcome(stack, won, "won", amount=12000)
    outcome(stack, rejected, "rejected", reason="no budget")
    time.sleep(WINDOW_S)  # the first windows fall due
    return shown


def shoot(page: Page, name: str) -> None:
    path = HERE / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    sys.stdout.write(f"{path}\n")


def main() -> None:
    """Every page, photographed."""
    with tempfile.TemporaryDirectory() as tmp:
        for stack in console_stack("sqlite", Path(tmp)):
            lead_key = demo(stack)
            url = f"{stack.services['sla-monitor'].url}/console"
            assert httpx.get(f"{url}/sign-in").status_code == 200
            with chromium() as browser:
                page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
                page.goto(url)
                shoot(page, "sign-in")
                page.get_by_label("Token").fill(TEST_TOKEN)
                page.get_by_role("button", name="Sign in").click()
                expect(page.locator("#live-state")).to_have_text("Live.")
                shoot(page, "now")
                page.goto(f"{url}/leads/{lead_key}")
                expect(page.get_by_role("heading", name="Routing")).to_be_visible()
                shoot(page, "lead")
                page.goto(f"{url}/team")
                shoot(page, "team")
                page.goto(f"{url}/reports")
                shoot(page, "reports")
                narrow = browser.new_context(viewport={"width": 320, "height": 640})
                narrow.add_cookies(page.context.cookies())
                small = narrow.new_page()
                small.goto(url)
                shoot(small, "now-320px")
            assert httpx.get(f"{stack.services['router'].url}/readyz", headers=AUTH).is_success


if __name__ == "__main__":
    main()
