"""A browser watching the console's live stream does not hold up the SLA monitor's shutdown:
the real process, a real broker, an open Server-Sent Events connection, then SIGTERM.

The graceful-shutdown timeout is set to 10 s here, so a stream that held the server open
would show as a stop of 10 s or more; the bound below is far from both.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.auth import TEST_TOKEN
from tests.fixtures.broker import running_broker
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

STOP_TIMEOUT_S = 10
# Well under the timeout: the stream notices within its 0.5 s tick, then the service stops.
STOPS_WITHIN_S = 3.0


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[Stack]:
    with running_broker() as bootstrap:
        for url in migrated_database_url("sqlite", tmp_path):
            stack = Stack(
                bootstrap, url, tmp_path, env={"LEADFLOW_STOP_TIMEOUT_S": str(STOP_TIMEOUT_S)}
            )
            stack.start("sla-monitor")
            try:
                yield stack
            finally:
                stack.stop()


def sign_in(client: httpx.Client) -> None:
    """Give `client` a console session cookie."""
    form = client.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = client.post("/console/sign-in", data={"csrf": csrf[1], "token": TEST_TOKEN})
    assert answer.status_code == 303, answer.text


def test_an_open_event_stream_does_not_delay_the_shutdown(monitor: Stack) -> None:
    service = monitor.services["sla-monitor"]
    process = service.process
    assert process is not None
    with httpx.Client(base_url=service.url, timeout=10) as client:
        sign_in(client)
        with client.stream("GET", "/console/events", timeout=30) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            received = ""
            lines = stream.iter_lines()
            while "event: board" not in received:
                received += next(lines) + "\n"
            # The stream is open and live: now stop the server under it.
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S + 5)
            except subprocess.TimeoutExpired:
                pytest.fail("the SLA monitor did not stop")
            took = time.monotonic() - started
            # The stream ended properly (a cut one raises RemoteProtocolError here).
            for _ in lines:
                pass
    assert took < STOPS_WITHIN_S, f"stopping took {took:.1f} s with a stream open"
    log = service.log.read_text()
    assert "service stopped" in log, log[-2000:]  # the lifespan's exit ran to its end
    assert "timeout graceful shutdown exceeded" not in log
