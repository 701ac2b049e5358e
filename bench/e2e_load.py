"""The leads the end-to-end bench sends and the three ways it sends them: open loop at a
rate, a burst as fast as the intake takes it, and a hot lead every so often."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence

import orjson

from bench.e2e_http import WebhookPoster
from tests.fixtures.keys import lead_key_for

Lead = tuple[str, bytes]  # lead key, body


def new_run() -> str:
    """A short tag that makes this run's email addresses (so its people) new."""
    return uuid.uuid4().hex[:8]


def lead(run: str, number: int, activity: str = "demo_request") -> Lead:
    """A distinct person at a large software company, VP level: an MQL with a demo request
    (a hand-raise) and with a webinar sign-up (the leads of a webinar list import) alike."""
    email = f"e2e.{run}.{number}@bigco{number % 97}.example"
    body = {
        "event": "lead",
        "activity": activity,
        "lead": {
            "email": email,
            "job_title": "VP Operations",
            "company": {"name": "Bigco", "size": 1500, "industry": "software"},
            "country": "US",
        },
    }
    return lead_key_for(email), orjson.dumps(body)


def leads(run: str, count: int, activity: str = "demo_request") -> list[Lead]:
    """`count` distinct leads of one run."""
    return [lead(run, number, activity) for number in range(count)]


async def open_loop(
    poster: WebhookPoster, batch: Sequence[Lead], rate: float
) -> tuple[dict[str, float], float]:
    """Send `batch` at `rate` a second, each at its scheduled instant whatever the intake
    answers (so a slow answer delays no later send). Returns lead key -> scheduled send
    time (latencies count from it, the sender's view) and how late the bench itself got
    behind its schedule at worst (ms)."""
    sent: dict[str, float] = {}
    late = 0.0
    started = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for number, (key, body) in enumerate(batch):
            due = started + number / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, time.monotonic() - due)
            sent[key] = due
            group.create_task(poster.post(body))
    return sent, round(late * 1000, 1)


async def as_fast_as_taken(poster: WebhookPoster, batch: Sequence[Lead]) -> dict[str, float]:
    """Send `batch` through the poster's connections as fast as the intake accepts it;
    returns lead key -> when the intake accepted it."""
    accepted: dict[str, float] = {}

    async def one(key: str, body: bytes) -> None:
        await poster.post(body)
        accepted[key] = time.monotonic()

    async with asyncio.TaskGroup() as group:
        for key, body in batch:
            group.create_task(one(key, body))
    return accepted


async def every(
    poster: WebhookPoster, run: str, interval_s: float, stop: asyncio.Event, bound_s: float
) -> dict[str, float]:
    """Send a demo request every `interval_s` until `stop` is set (at most `bound_s`);
    returns lead key -> send time."""
    sent: dict[str, float] = {}
    started = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for number in range(int(bound_s / interval_s) + 1):
            if stop.is_set():
                break
            key, body = lead(run, number)
            sent[key] = time.monotonic()
            group.create_task(poster.post(body))
            next_at = started + (number + 1) * interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
    return sent
