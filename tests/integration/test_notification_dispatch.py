"""Dispatchers sharing one database (SQLite, PostgreSQL) and real HTTP receivers.

Every notification is sent exactly once across instances, a slow receiver holds up only
its own notifications, claims are judged by the database's clock and renewed while a
target's notifications are being sent, and a dispatcher that lost a claim sends no more.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

import leadflow.notifications
from leadflow.db.engine import create_engine, session_factory
from leadflow.delivery import message_digest
from leadflow.notifications import Notification, NotificationDispatcher, WebhookSender, pending
from leadflow.notifications import queue as queue_notification
from leadflow.processing import utcnow
from leadflow.settings import Settings
from tests.fixtures.receivers import Hooks, webhook_server

PRODUCER = "sla-monitor"
FAST = ("/fast-1", "/fast-2")
SLOW = "/slow"


class Gate:
    """Holds every request to `SLOW` until opened; counts the ones answered."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.answered = 0

    def __call__(self, path: str) -> None:
        if path == SLOW:
            self.opened.wait(timeout=60)
            self.answered += 1


@contextmanager
def gated_receiver() -> Iterator[tuple[str, Hooks, Gate]]:
    gate = Gate()
    with webhook_server(gate) as (url, hooks):
        try:
            yield url, hooks, gate
        finally:
            gate.opened.set()  # let held requests end so the server can stop


async def queue(engine: AsyncEngine, url: str, paths: list[str], when: datetime) -> list[str]:
    """Queue one webhook per entry of `paths` (in order); returns their dedupe keys."""
    keys = [f"sla:a{i}:breached:webhook:{path}" for i, path in enumerate(paths)]
    async with session_factory(engine)() as session, session.begin():
        for key, path in zip(keys, paths, strict=True):
            note = Notification("webhook", url + path, "Overdue", "late", key, {"key": key})
            assert await queue_notification(session, PRODUCER, note, when)
    return keys


def ids(hooks: Hooks, *paths: str) -> list[str]:
    return [h["webhook-id"] for p in paths for h, _ in hooks.at(p)]


def sent_by(hooks: Hooks, path: str) -> list[str]:
    """The user agent (the sending instance) of each delivery to `path`."""
    return [{k.lower(): v for k, v in h.items()}["user-agent"] for h, _ in hooks.at(path)]


def ids_from(hooks: Hooks, path: str, agent: str) -> list[str]:
    """The webhook-ids delivered to `path` by one instance, in order."""
    return [i for i, a in zip(ids(hooks, path), sent_by(hooks, path), strict=True) if a == agent]


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 30) -> None:
    """Wait until `check()` holds (a liveness bound, not a measurement)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {limit_s} s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def other_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A second engine on the same database: another instance's connections."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


class Instances:
    """Dispatchers of one producer, each with its own engine and HTTP client."""

    def __init__(self, stack: AsyncExitStack, settings: Settings) -> None:
        self._stack = stack
        self._settings = settings

    async def dispatcher(
        self, engine: AsyncEngine, name: str, claim_ttl: timedelta | None = None
    ) -> NotificationDispatcher:
        client = httpx.AsyncClient(headers={"user-agent": name})
        await self._stack.enter_async_context(client)
        return NotificationDispatcher(
            engine,
            self._settings,
            PRODUCER,
            {"webhook": WebhookSender(client)},
            claim_ttl=claim_ttl,
        )

    def run(self, dispatcher: NotificationDispatcher) -> None:
        task = asyncio.create_task(dispatcher.run())
        self._stack.push_async_callback(_cancel, task)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def test_two_dispatchers_send_each_once_and_a_slow_receiver_holds_up_only_its_own(
    engine: AsyncEngine, other_engine: AsyncEngine, stack: AsyncExitStack
) -> None:
    settings = Settings(notify_timeout_s=60, notify_poll_s=0.05)
    instances = Instances(stack, settings)
    with gated_receiver() as (url, hooks, gate):
        # The slow receiver's notifications are the oldest: first in every claim.
        keys = await queue(engine, url, [SLOW] * 6 + [*FAST] * 6, utcnow() - timedelta(seconds=1))
        instances.run(await instances.dispatcher(engine, "instance-a"))
        instances.run(await instances.dispatcher(other_engine, "instance-b"))

        async def fast_all_arrived() -> bool:
            return len(ids(hooks, *FAST)) >= 12

        await eventually(fast_all_arrived, "delivery to the fast receivers")
        # Every fast notification arrived while the slow receiver had answered nothing.
        assert gate.answered == 0
        assert 1 <= len(hooks.at(SLOW)) <= 2  # at most one held request per instance
        gate.opened.set()

        async def all_sent() -> bool:
            return await pending(engine, PRODUCER) == []

        await eventually(all_sent, "delivery of every notification")
        received = Counter(ids(hooks, SLOW, *FAST))
    assert received == Counter(f"msg_{message_digest(k)}" for k in keys)  # each exactly once


async def test_a_claim_is_renewed_while_its_target_is_worked_past_its_ttl(
    engine: AsyncEngine, other_engine: AsyncEngine, stack: AsyncExitStack
) -> None:
    # Five answers of 0.5 s each: the last is sent well after the claim's 1.5 s TTL.
    settings = Settings(notify_timeout_s=1.2, notify_poll_s=0.05)
    instances = Instances(stack, settings)
    ttl = timedelta(seconds=1.5)
    with webhook_server(lambda _path: time.sleep(0.5)) as (url, hooks):
        keys = await queue(engine, url, [SLOW] * 5, utcnow() - timedelta(seconds=1))
        waiting = await pending(engine, PRODUCER)
        assert [(w.notification.dedupe_key, w.attempts) for w in waiting] == [(k, 0) for k in keys]
        instances.run(await instances.dispatcher(engine, "instance-a", ttl))

        async def first_arrived() -> bool:
            return len(hooks.at(SLOW)) >= 1

        await eventually(first_arrived, "the first delivery")
        instances.run(await instances.dispatcher(other_engine, "instance-b", ttl))

        async def all_sent() -> bool:
            return await pending(engine, PRODUCER) == []

        await eventually(all_sent, "delivery of every notification")
    assert Counter(ids(hooks, SLOW)) == Counter(f"msg_{message_digest(k)}" for k in keys)
    assert set(sent_by(hooks, SLOW)) == {"instance-a"}  # b never took a renewed claim


@pytest.mark.parametrize(
    ("holder_skew", "contender_skew"),
    [(timedelta(hours=-1), timedelta(0)), (timedelta(0), timedelta(hours=1))],
    ids=["holder-clock-behind", "contender-clock-ahead"],
)
async def test_a_host_with_a_skewed_clock_cannot_take_a_live_claim(
    engine: AsyncEngine,
    other_engine: AsyncEngine,
    stack: AsyncExitStack,
    monkeypatch: pytest.MonkeyPatch,
    holder_skew: timedelta,
    contender_skew: timedelta,
) -> None:
    settings = Settings(notify_timeout_s=60)
    instances = Instances(stack, settings)
    start = utcnow()

    def skew(by: timedelta) -> None:
        """This process's clock now runs `by` off (for the dispatcher's module)."""
        monkeypatch.setattr(leadflow.notifications, "utcnow", lambda: utcnow() + by)

    with gated_receiver() as (url, hooks, gate):
        keys = await queue(engine, url, [SLOW] * 3, start - timedelta(hours=2))
        holder = await instances.dispatcher(engine, "holder")
        contender = await instances.dispatcher(other_engine, "contender")
        skew(holder_skew)
        holding = asyncio.create_task(holder.dispatch_once(start + holder_skew))

        async def held() -> bool:
            return len(hooks.at(SLOW)) == 1

        await eventually(held, "the holder's first send")
        skew(contender_skew)
        assert await contender.dispatch_once(start + contender_skew) == 0
        assert len(hooks.at(SLOW)) == 1
        gate.opened.set()
        assert await holding == 3
    assert Counter(ids(hooks, SLOW)) == Counter(f"msg_{message_digest(k)}" for k in keys)
    assert set(sent_by(hooks, SLOW)) == {"holder"}


class PausingSender:
    """Delivers, then freezes this process's event loop once, as if the process were paused
    (SIGSTOP, a stalled VM) right after a send: no renewal, no bookkeeping until `resume`."""

    def __init__(self, inner: WebhookSender, on_pause: Callable[[], None]) -> None:
        self._inner = inner
        self._on_pause = on_pause
        self.resume = threading.Event()

    async def send(self, notification: Notification) -> None:
        await self._inner.send(notification)
        if not self.resume.is_set():
            self._on_pause()
            self.resume.wait(timeout=60)  # blocks the whole loop on purpose
            self.resume.set()


def instance_in_its_own_thread(
    database_url: str, settings: Settings, ttl: timedelta, done: Callable[[int], None]
) -> threading.Thread:
    """Another instance: its own thread, event loop, engine and HTTP client."""

    async def dispatch_until_it_sends() -> int:
        engine = create_engine(database_url)
        try:
            async with httpx.AsyncClient(headers={"user-agent": "instance-b"}) as client:
                other = NotificationDispatcher(
                    engine, settings, PRODUCER, {"webhook": WebhookSender(client)}, claim_ttl=ttl
                )
                for _ in range(600):
                    if sent := await other.dispatch_once():
                        return sent
                    await asyncio.sleep(0.05)
                return 0
        finally:
            await engine.dispose()

    return threading.Thread(target=lambda: done(asyncio.run(dispatch_until_it_sends())))


async def test_a_dispatcher_paused_past_its_claims_sends_no_more_of_them(
    engine: AsyncEngine, database_url: str, stack: AsyncExitStack
) -> None:
    settings = Settings(notify_timeout_s=0.5)
    ttl = timedelta(seconds=2)
    with webhook_server() as (url, hooks):
        keys = await queue(engine, url, [SLOW] * 3, utcnow() - timedelta(seconds=1))
        client = httpx.AsyncClient(headers={"user-agent": "instance-a"})
        await stack.enter_async_context(client)
        sent_by_b: list[int] = []

        def b_done(sent: int) -> None:
            sent_by_b.append(sent)
            pausing.resume.set()

        b = instance_in_its_own_thread(database_url, settings, ttl, b_done)
        pausing = PausingSender(WebhookSender(client), b.start)
        paused = NotificationDispatcher(
            engine, settings, PRODUCER, {"webhook": pausing}, claim_ttl=ttl
        )
        # a sends the first row and freezes; its claims expire by the database's clock;
        # b takes all three over; a wakes up and must not send the two it had not sent.
        assert await paused.dispatch_once() == 1
        b.join(timeout=60)
    digests = [f"msg_{message_digest(k)}" for k in keys]
    by_a = ids_from(hooks, SLOW, "instance-a")
    by_b = ids_from(hooks, SLOW, "instance-b")
    assert by_a == digests[:1]
    # b resends the first (a had not recorded it; same webhook-id) and sends the others.
    assert sorted(by_b) == sorted(digests)
    assert sent_by_b == [3]
    assert await pending(engine, PRODUCER) == []


async def test_a_dispatcher_run_raises_when_the_database_fails(tmp_path: Path) -> None:
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}")
    try:
        dispatcher = NotificationDispatcher(broken, Settings(), PRODUCER, {})
        with pytest.raises(OperationalError):
            await asyncio.wait_for(dispatcher.run(), 30)
    finally:
        await broken.dispose()


async def test_a_claim_must_outlast_one_send(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with pytest.raises(ValueError, match="LEADFLOW_NOTIFY_TIMEOUT_S=10"):
        NotificationDispatcher(
            engine, Settings(notify_timeout_s=10), PRODUCER, {}, claim_ttl=timedelta(seconds=5)
        )
    await engine.dispose()
