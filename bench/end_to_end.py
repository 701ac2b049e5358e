"""`make bench`, end to end: webhook accepted -> `lead.assigned` on Kafka, at a fixed rate.

Run from the repository root: `PYTHONPATH=. python bench/end_to_end.py [--rate N]`.

Starts its own broker, a fresh database (SQLite by default, or `--postgres URL` of a
server to create a database on) and the four services as processes; routes a few warm-up
leads first (consumers join their groups; how long that took is reported as the cold
start), then posts signed leads open-loop at `--rate` per second for `--seconds`, reads
`leads.assigned`, and reports the latency from each POST's send to its lead's assignment
being readable on Kafka (p50, p99, max) and how many were assigned. Writes
bench/results/end_to_end.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from leadflow.broker import start_broker
from leadflow.db.migrate import upgrade
from leadflow.events import Envelope, lead_key_for
from leadflow.settings import DEV_SECRETS
from leadflow.webhooks import sign
from tests.fixtures.broker import free_port
from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.fixtures.stack import wait_ready

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SERVICES = ("intake", "scoring", "router", "sla-monitor")
ROUTED = {"lead.assigned", "lead.unassigned"}


def body(i: int, run: str) -> tuple[str, bytes]:
    """A distinct MQL (demo request from a VP at a large company) and its lead key."""
    email = f"e2e.{run}.{i}@bigco{i % 97}.example"
    lead = {
        "event": "lead",
        "activity": "demo_request",
        "lead": {
            "email": email,
            "job_title": "VP Operations",
            "company": {"name": "Bigco", "size": 1500, "industry": "software"},
            "country": "US",
        },
    }
    return lead_key_for(email), orjson.dumps(lead)


async def post_all(url: str, rate: float, seconds: float, run: str) -> dict[str, float]:
    """Post leads open-loop (sends are scheduled, not paced by answers); lead key -> send time."""
    sent: dict[str, float] = {}
    count = int(rate * seconds)
    secret = DEV_SECRETS["web"]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(i: int) -> None:
            key, raw = body(i, run)
            msg_id, ts = f"msg_{uuid.uuid4().hex}", int(time.time())
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": sign(secret, msg_id, ts, raw),
            }
            sent[key] = time.monotonic()
            response = await client.post(url, content=raw, headers=headers)
            if response.status_code != 202:
                raise RuntimeError(f"intake answered {response.status_code}: {response.text}")

        started = time.monotonic()
        tasks = []
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return sent


async def read_assignments(
    bootstrap: str, keys: set[str], seen: dict[str, float], deadline: float
) -> None:
    """Record when each lead's `lead.assigned` becomes readable."""
    consumer = AIOKafkaConsumer(
        "leads.assigned",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    try:
        while time.monotonic() < deadline and not keys <= seen.keys():
            batches = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for messages in batches.values():
                for message in messages:
                    event = Envelope.from_bytes(message.value)
                    # Queued leads (every rep capped) are routed too: the decision is out.
                    if event.type in ROUTED and event.subject in keys:
                        seen.setdefault(event.subject, now)
    finally:
        await consumer.stop()


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def warm_up(intake: str, bootstrap: str) -> float:
    """Post a few leads and wait until all are routed: the consumers have joined their groups
    and every path is warm. Returns the slowest of them (ms), the cold-start latency."""
    run = uuid.uuid4().hex[:6]
    keys = {body(i, run)[0] for i in range(20)}
    seen: dict[str, float] = {}
    reader = asyncio.create_task(read_assignments(bootstrap, keys, seen, time.monotonic() + 90))
    sent = await post_all(f"{intake}/v1/webhooks/web", 20, 1, run)
    await reader
    if not keys <= seen.keys():
        raise RuntimeError("the warm-up leads were not all routed within 90 s")
    return max(seen[k] - sent[k] for k in keys) * 1000


async def measure(intake: str, bootstrap: str, rate: float, seconds: float) -> dict[str, Any]:
    """Warm the running stack up, then drive it; returns the latency summary."""
    cold_start_ms = await warm_up(intake, bootstrap)
    run = uuid.uuid4().hex[:6]
    keys = {body(i, run)[0] for i in range(int(rate * seconds))}
    seen: dict[str, float] = {}
    reader = asyncio.create_task(
        read_assignments(bootstrap, keys, seen, time.monotonic() + seconds + 60)
    )
    sent = await post_all(f"{intake}/v1/webhooks/web", rate, seconds, run)
    await reader
    latencies = [(seen[k] - sent[k]) * 1000 for k in sent if k in seen]
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "posted": len(sent),
        "assigned": len(latencies),
        "p50_ms": percentile(latencies, 0.5) if latencies else None,
        "p99_ms": percentile(latencies, 0.99) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
        "cold_start_ms": cold_start_ms,
        "target_p99_ms": 100,
    }


def main() -> int:
    """Run the measurement; prints a line and writes JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (postgresql+asyncpg://...)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="leadflow-e2e-"))
    url = (
        create_postgres_database(args.postgres)
        if args.postgres
        else f"sqlite+aiosqlite:///{work / 'leadflow.db'}"
    )
    upgrade(url)
    port = free_port()
    broker = start_broker(port, log=work / "broker.log")
    bootstrap = f"127.0.0.1:{port}"
    ports = {name: free_port() for name in SERVICES}
    env = {
        **os.environ,
        "LEADFLOW_DATABASE_URL": url,
        "LEADFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "LEADFLOW_INTAKE_SPOOL_DIR": str(work / "spool"),
        "LEADFLOW_CONSUMER_SESSION_TIMEOUT_MS": "3000",
        "LEADFLOW_CONSUMER_HEARTBEAT_MS": "500",
        "LEADFLOW_CONSUMER_REBALANCE_TIMEOUT_MS": "3000",
        "LEADFLOW_LOG_LEVEL": "WARNING",
    }
    processes = []
    try:
        for name in SERVICES:
            log = work / f"{name}.log"
            command = [sys.executable, "-m", "leadflow", name, "--port", str(ports[name])]
            process = subprocess.Popen(
                command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
            )
            processes.append(process)
            wait_ready(name, f"http://127.0.0.1:{ports[name]}", process, log, timeout_s=90)
        result = asyncio.run(
            measure(f"http://127.0.0.1:{ports['intake']}", bootstrap, args.rate, args.seconds)
        )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        broker.terminate()
        broker.wait(10)
        if args.postgres:
            drop_postgres_database(url)
    result["database"] = "postgresql" if args.postgres else "sqlite"
    sys.stdout.write(
        f"end to end at {args.rate:.0f} leads/s for {args.seconds:.0f} s ({result['database']}): "
        f"{result['assigned']}/{result['posted']} assigned, p50 {result['p50_ms']:.0f} ms, "
        f"p99 {result['p99_ms']:.0f} ms, max {result['max_ms']:.0f} ms (target p99 100 ms); "
        f"before that, warm-up leads took up to {result['cold_start_ms']:.0f} ms\n"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "end_to_end.json").write_text(
        orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
