"""The system under the end-to-end bench: a broker, a fresh database and every service as
processes (one or more scoring and router instances), with a reader that notes when each
lead's events become readable on Kafka.

Everything started here is stopped here, by pid, also when a measurement fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from sqlalchemy.engine import make_url

from bench.e2e_stats import counter_total
from leadflow import topics
from leadflow.broker import start_broker
from leadflow.db.migrate import upgrade
from leadflow.settings import Settings
from tests.fixtures.broker import free_port
from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.fixtures.stack import SERVICES, Stack

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "example.yaml"
ROUTED = {"lead.assigned", "lead.unassigned"}  # a queued lead (every rep capped) is routed too
SCALED = ("scoring", "router")
READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class StackShape:
    """What to start: the database, the topics' partitions and instances of the consumers."""

    postgres: str | None
    partitions: int = 4
    instances: int = 1
    # A paused (SIGSTOPped) consumer must not be taken for dead while the bench loads its topic.
    session_timeout_ms: int = 3000


def postgres_answers(url: str, timeout_s: float = 3.0) -> bool:
    """Whether a PostgreSQL server answers at `url` (an SQLAlchemy asyncpg URL)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def connect() -> None:
        connection = await asyncpg.connect(dsn, timeout=timeout_s)
        await connection.close()

    try:
        asyncio.run(connect())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def _product_defaults() -> dict[str, str]:
    # The test stack polls faster than the product does; the bench measures the product.
    fields = Settings.model_fields
    return {
        "LEADFLOW_OUTBOX_POLL_S": str(fields["outbox_poll_s"].default),
        "LEADFLOW_SLA_POLL_S": str(fields["sla_poll_s"].default),
    }


class PipelineWatch:
    """Reads the pipeline's topics from the beginning and notes when each lead's events
    first became readable: received (from the intake), scored, and routed."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            topics.RECEIVED,
            topics.SCORED,
            topics.ASSIGNED,
            # A burst posted to a bulk source (--burst-source import) takes the bulk lane.
            topics.RECEIVED_BULK,
            topics.SCORED_BULK,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=10,
        )
        self._task: asyncio.Task[None] | None = None
        # lead key -> monotonic time its event was first readable, by stage
        self.received: dict[str, float] = {}
        self.scored: dict[str, float] = {}
        self.routed: dict[str, float] = {}
        self._stages = {"lead.received": self.received, "lead.scored": self.scored}
        self._stages.update(dict.fromkeys(ROUTED, self.routed))

    async def start(self) -> None:
        """Start reading in the background."""
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def wait_for(self, keys: Iterable[str], deadline: float) -> bool:
        """Wait until every one of `keys` was routed or the deadline passed; True if all were."""
        missing = set(keys) - self.routed.keys()
        while missing and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            missing -= self.routed.keys()
        return not missing

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for messages in batches.values():
                for message in messages:
                    # CloudEvents in structured JSON: the type and subject are all it needs.
                    event = orjson.loads(message.value)
                    stage = self._stages.get(event.get("type"))
                    if stage is not None:
                        stage.setdefault(event["subject"], now)


@dataclass(frozen=True)
class Counters:
    """What one process counted so far."""

    statements: float
    events: float


@dataclass
class BenchStack:
    """A running system: its intake address, its consumers' instances and the watch."""

    shape: StackShape
    stack: Stack
    watch: PipelineWatch
    broker_pid: int
    posted: set[str] = field(default_factory=set)  # every lead key posted to this system

    @property
    def intake(self) -> tuple[str, int]:
        """The intake's host and port."""
        return "127.0.0.1", self.stack.services["intake"].port

    def instances(self, service: str) -> list[str]:
        """The names of the running instances of a consumer service."""
        return [service] + [f"{service}-{n}" for n in range(2, self.shape.instances + 1)]

    def backlog(self) -> int:
        """Leads posted to this system and not routed yet."""
        return len(self.posted - self.watch.routed.keys())

    def pause(self, services: Iterable[str] = SCALED) -> None:
        """SIGSTOP every instance of the consumer services (they resume where they were)."""
        self._signal(services, signal.SIGSTOP)

    def resume(self, services: Iterable[str] = SCALED) -> None:
        """SIGCONT every instance of the consumer services."""
        self._signal(services, signal.SIGCONT)

    async def counters(self, service: str) -> list[Counters]:
        """SQL statements sent and events consumed so far by each instance of a service."""
        found = []
        async with httpx.AsyncClient(timeout=10) as client:
            for name in self.instances(service):
                text = (await client.get(f"{self.stack.services[name].url}/metrics")).text
                found.append(
                    Counters(
                        counter_total(text, "leadflow_sql_statements_total"),
                        counter_total(text, "leadflow_events_consumed_total"),
                    )
                )
        return found

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each part of the system: the services
        (instances of one service added up), the broker, and the whole PostgreSQL server
        (every process named postgres on this machine) when the system runs on it."""
        used: dict[str, float] = {}
        for name, service in self.stack.services.items():
            if service.process is not None:
                part = name if name in SERVICES else name.rsplit("-", 1)[0]
                used[part] = used.get(part, 0.0) + _cpu_seconds(service.process.pid)
        used["broker"] = _cpu_seconds(self.broker_pid)
        if self.shape.postgres:
            used["postgres"] = sum(_cpu_seconds(pid) for pid in _pids_named("postgres"))
        return used

    def _signal(self, services: Iterable[str], signum: signal.Signals) -> None:
        for service in services:
            for name in self.instances(service):
                process = self.stack.services[name].process
                if process is not None and process.poll() is None:
                    os.kill(process.pid, signum)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids_named(command: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm", encoding="utf-8") as f:
                if f.read().strip() == command:
                    pids.append(int(entry))
    return pids


def _start(shape: StackShape, work: Path) -> tuple[Stack, subprocess.Popen[bytes], str | None]:
    url = (
        create_postgres_database(shape.postgres)
        if shape.postgres
        else f"sqlite+aiosqlite:///{work / 'leadflow.db'}"
    )
    broker: subprocess.Popen[bytes] | None = None
    stack: Stack | None = None
    try:
        upgrade(url)
        port = free_port()
        broker = start_broker(port, log=work / "broker.log")
        session = shape.session_timeout_ms
        env = {
            **_product_defaults(),
            "LEADFLOW_CONFIG": str(CONFIG),
            "LEADFLOW_TOPIC_PARTITIONS": str(shape.partitions),
            "LEADFLOW_CONSUMER_SESSION_TIMEOUT_MS": str(session),
            "LEADFLOW_CONSUMER_HEARTBEAT_MS": str(min(1000, session // 3)),
            "LEADFLOW_CONSUMER_REBALANCE_TIMEOUT_MS": "3000",
            "LEADFLOW_LOG_LEVEL": "WARNING",
        }
        stack = Stack(f"127.0.0.1:{port}", url, work, config=CONFIG, env=env)
        stack.env["LEADFLOW_SLA_ROUTER_URL"] = stack.services["router"].url
        extra = [
            stack.add(f"{service}-{n}", service).name
            for service in SCALED
            for n in range(2, shape.instances + 1)
        ]
        stack.start(*SERVICES, *extra, wait=False)
        for name in (*SERVICES, *extra):
            stack.wait_ready(name, READY_TIMEOUT_S)
    except BaseException:
        if stack is not None:
            stack.stop()
        _stop_broker(broker)
        if shape.postgres:
            drop_postgres_database(url)
        raise
    return stack, broker, url if shape.postgres else None


def _stop_broker(broker: subprocess.Popen[bytes] | None) -> None:
    if broker is None:
        return
    broker.terminate()
    try:
        broker.wait(10)
    except subprocess.TimeoutExpired:
        broker.kill()
        broker.wait()


def _stop(stack: Stack, broker: subprocess.Popen[bytes], postgres_url: str | None) -> None:
    try:
        stack.stop()
    finally:
        _stop_broker(broker)
        if postgres_url is not None:
            drop_postgres_database(postgres_url)


@contextlib.asynccontextmanager
async def running(shape: StackShape) -> AsyncIterator[BenchStack]:
    """Start a fresh system of `shape`; stop all of it (by pid) and drop its database after
    (its logs are kept when something failed)."""
    work = Path(tempfile.mkdtemp(prefix="leadflow-e2e-"))
    stack, broker, postgres_url = await asyncio.to_thread(_start, shape, work)
    bench = BenchStack(shape, stack, PipelineWatch(stack.bootstrap), broker.pid)
    try:
        await bench.watch.start()
        yield bench
    finally:
        bench.resume()  # a stopped process would not see SIGTERM
        with contextlib.suppress(Exception):
            await bench.watch.stop()
        await asyncio.to_thread(_stop, stack, broker, postgres_url)
    # Kept when anything failed: the errors name the services' logs in it.
    shutil.rmtree(work, ignore_errors=True)
