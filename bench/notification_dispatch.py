"""Notification dispatch: delivery rate to webhook receivers, and what a slow receiver costs.

Usage (SQLite always; PostgreSQL too with a server URL, on a scratch database):

    PYTHONPATH=. python bench/notification_dispatch.py \\
        [--server postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Each scenario queues webhooks for several receivers on a local HTTP server, starts one
dispatcher and measures the time until every notification of the fast receivers has
arrived, and the dispatcher process's CPU per notification. Scenarios: receivers that
answer at once, receivers that answer in 50 ms, and one receiver taking 0.5 s an answer
with 5 notifications queued ahead of everyone else's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx

from leadflow.db.engine import create_engine, session_factory
from leadflow.db.migrate import upgrade
from leadflow.notifications import Notification, NotificationDispatcher, WebhookSender, queue
from leadflow.processing import utcnow
from leadflow.settings import Settings
from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.fixtures.receivers import webhook_server


@dataclass(frozen=True)
class Scenario:
    name: str
    fast: int  # notifications to the fast receivers
    targets: int  # fast receivers
    answer_s: float  # how long a fast receiver takes to answer
    slow: int = 0  # notifications to the slow receiver, queued first
    slow_answer_s: float = 0.5


SCENARIOS = [
    Scenario("8 receivers answering at once", fast=400, targets=8, answer_s=0.0),
    Scenario("8 receivers answering in 50 ms", fast=200, targets=8, answer_s=0.05),
    Scenario("4 at once, 1 slow (0.5 s) ahead", fast=100, targets=4, answer_s=0.0, slow=5),
]


async def measure(url: str, scenario: Scenario) -> tuple[float, float]:
    """Seconds until the fast receivers got everything, and CPU ms per notification."""

    def answer(path: str) -> None:
        time.sleep(scenario.slow_answer_s if path == "/slow" else scenario.answer_s)

    fast_paths = [f"/fast-{i}" for i in range(scenario.targets)]
    with webhook_server(answer) as (base, hooks):
        engine = create_engine(url)
        when = utcnow() - timedelta(seconds=1)
        paths = ["/slow"] * scenario.slow + [
            fast_paths[i % scenario.targets] for i in range(scenario.fast)
        ]
        async with session_factory(engine)() as session, session.begin():
            for i, path in enumerate(paths):
                note = Notification("webhook", base + path, "s", "b", f"bench:{i}", {})
                await queue(session, "bench", note, when)
        settings = Settings(notify_poll_s=0.05, notify_timeout_s=5)
        async with httpx.AsyncClient() as client:
            dispatcher = NotificationDispatcher(
                engine, settings, "bench", {"webhook": WebhookSender(client)}
            )
            started, cpu = time.perf_counter(), time.process_time()
            running = asyncio.create_task(dispatcher.run())
            # The receiver records from its own threads: poll it.
            while sum(len(hooks.at(p)) for p in fast_paths) < scenario.fast:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - started
            cpu_ms = (time.process_time() - cpu) * 1000 / scenario.fast
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await engine.dispose()
    return elapsed, cpu_ms


def database(kind: str, server: str | None) -> str:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    else:
        assert server is not None
        url = create_postgres_database(server)
    upgrade(url)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="PostgreSQL server URL (a scratch database is used)")
    args = parser.parse_args()
    kinds = ["sqlite"] + (["postgres"] if args.server else [])
    print(f"{'database':<9} {'scenario':<34} {'fast delivered':>14} {'per s':>6} {'cpu/notif':>9}")
    for kind in kinds:
        for scenario in SCENARIOS:
            url = database(kind, args.server)
            try:
                elapsed, cpu_ms = asyncio.run(measure(url, scenario))
            finally:
                if kind == "postgres":
                    drop_postgres_database(url)
            print(
                f"{kind:<9} {scenario.name:<34} {elapsed:>12.2f} s "
                f"{scenario.fast / elapsed:>6.0f} {cpu_ms:>7.2f} ms"
            )


if __name__ == "__main__":
    main()
