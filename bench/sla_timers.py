"""SLA monitor at scale: memory and restart-to-ready with a million open timers, alert lateness.

Usage (PostgreSQL server URL; a scratch database is created and dropped):

    python bench/sla_timers.py --server postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

It loads N open windows with one timer each (due over the next 24 hours) with COPY,
starts a local broker and one SLA monitor process, and measures: time from process start
to /readyz = 200 and resident memory once ready; the same after a restart (SIGTERM, start
again; both include joining the Kafka consumer group); the recovery query alone; and how
late 500 timers falling due 15 seconds later fire (from the monitor's lateness histogram).
Prints a table and writes bench/results/sla_timers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from leadflow.broker import start_broker
from leadflow.db.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dsn(url: str, database: str) -> str:
    """An asyncpg DSN for `database` on the server of `url`."""
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(False)


async def load_timers(url: str, count: int, now: datetime) -> None:
    """COPY `count` open windows and their breach timers, due over the next 24 hours."""
    conn = await asyncpg.connect(dsn(url, make_url(url).database or "postgres"))
    try:
        step = 86_400 / count
        windows = []
        timers = []
        for i in range(count):
            assigned = now - timedelta(seconds=60)
            due = now + timedelta(seconds=60 + i * step)
            assignment = f"bench-{i}"
            lead = f"lk_bench{i:016d}"
            windows.append(
                (
                    assignment,
                    lead,
                    "hot-mql",
                    "wall",
                    300.0,
                    "mql",
                    "ana",
                    "enterprise",
                    0,
                    assigned,
                    due,
                    "open",
                )
            )
            timers.append(
                (
                    assignment,
                    "breached",
                    lead,
                    "hot-mql",
                    "ana",
                    "enterprise",
                    assigned,
                    due,
                    "open",
                )
            )
        await conn.copy_records_to_table(
            "sla_windows",
            records=windows,
            columns=[
                "assignment_id",
                "lead_key",
                "policy",
                "clock",
                "window_s",
                "tier",
                "rep_id",
                "team",
                "escalations",
                "assigned_at",
                "due_at",
                "status",
            ],
        )
        await conn.copy_records_to_table(
            "sla_timers",
            records=timers,
            columns=[
                "assignment_id",
                "stage",
                "lead_key",
                "policy",
                "rep_id",
                "team",
                "assigned_at",
                "due_at",
                "status",
            ],
        )
        await conn.execute("ANALYZE sla_timers; ANALYZE sla_windows")
    finally:
        await conn.close()


async def add_soon(url: str, count: int, due: datetime) -> None:
    """`count` more timers, all due at `due` (to measure how late they fire)."""
    conn = await asyncpg.connect(dsn(url, make_url(url).database or "postgres"))
    try:
        await conn.copy_records_to_table(
            "sla_timers",
            records=[
                (
                    f"soon-{i}",
                    "breached",
                    f"lk_soon{i:016d}",
                    "hot-mql",
                    "ana",
                    "enterprise",
                    due - timedelta(minutes=5),
                    due,
                    "open",
                )
                for i in range(count)
            ],
            columns=[
                "assignment_id",
                "stage",
                "lead_key",
                "policy",
                "rep_id",
                "team",
                "assigned_at",
                "due_at",
                "status",
            ],
        )
    finally:
        await conn.close()


async def horizon_query_s(url: str) -> float:
    """Seconds the monitor's recovery query takes: the next horizon of open timers."""
    from leadflow.db.engine import create_engine, session_factory
    from leadflow_sla.repository import due_times

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            started = time.perf_counter()
            await due_times(session, datetime.now(UTC) + timedelta(seconds=10), 10_000)
            return time.perf_counter() - started
    finally:
        await engine.dispose()


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_monitor(
    env: dict[str, str], port: int, log: Path
) -> tuple[subprocess.Popen[bytes], float]:
    """Start the SLA monitor; returns the process and the seconds until /readyz answered 200."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "leadflow_cli", "sla-monitor", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    while time.monotonic() - started < 120:
        if process.poll() is not None:
            raise SystemExit(f"the monitor exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process, time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"the monitor was not ready within 120 s; see {log}")


def lateness(port: int) -> dict[str, float]:
    """Count, mean and bucket counts of the monitor's timer lateness histogram."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("leadflow_sla_timer_lateness_seconds"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    count = found.get("leadflow_sla_timer_lateness_seconds_count", 0.0)
    total = found.get("leadflow_sla_timer_lateness_seconds_sum", 0.0)
    within_1s = found.get('leadflow_sla_timer_lateness_seconds_bucket{le="1.0"}', 0.0)
    return {"fired": count, "mean_s": total / count if count else 0.0, "within_1s": within_1s}


def main() -> None:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default=os.environ.get("LEADFLOW_TEST_POSTGRES_URL"))
    parser.add_argument("--timers", type=int, default=1_000_000)
    args = parser.parse_args()
    if not args.server:
        raise SystemExit("give --server postgresql+asyncpg://... (or LEADFLOW_TEST_POSTGRES_URL)")
    name = f"leadflow_bench_{uuid.uuid4().hex[:8]}"
    admin = dsn(args.server, "postgres")
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    url = make_url(args.server).set(database=name).render_as_string(False)
    work = ROOT / "var" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    broker_port = free_port()
    broker = start_broker(broker_port, "127.0.0.1", work / "broker.log")
    monitor: subprocess.Popen[bytes] | None = None
    try:
        upgrade(url)
        loaded = time.monotonic()
        asyncio.run(load_timers(url, args.timers, datetime.now(UTC)))
        load_s = time.monotonic() - loaded
        recovery_query_s = asyncio.run(horizon_query_s(url))
        env = {
            **os.environ,
            "LEADFLOW_DATABASE_URL": url,
            "LEADFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}",
            "LEADFLOW_CONFIG": str(ROOT / "config" / "example.yaml"),
            "LEADFLOW_SMTP_PORT": str(free_port()),  # nobody listens: sends are retried
            "LEADFLOW_LOG_LEVEL": "WARNING",
        }
        port = free_port()
        monitor, first_ready_s = start_monitor(env, port, work / "sla-monitor.log")
        time.sleep(3)
        first_rss = rss_mib(monitor.pid)
        monitor.send_signal(signal.SIGTERM)
        monitor.wait(30)
        monitor, restart_ready_s = start_monitor(env, port, work / "sla-monitor.log")
        soon = datetime.now(UTC) + timedelta(seconds=15)
        asyncio.run(add_soon(url, 500, soon))
        time.sleep(22)
        late = lateness(port)
        rss_after = rss_mib(monitor.pid)
    finally:
        if monitor is not None and monitor.poll() is None:
            monitor.send_signal(signal.SIGTERM)
            monitor.wait(30)
        broker.terminate()
        broker.wait(10)
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    results = {
        "open_timers": args.timers,
        "load_rows_s": round(load_s, 1),
        "horizon_query_s": round(recovery_query_s, 4),
        "start_to_ready_s": round(first_ready_s, 2),
        "restart_to_ready_s": round(restart_ready_s, 2),
        "rss_ready_mib": round(first_rss, 1),
        "rss_after_firing_mib": round(rss_after, 1),
        "alerts_fired": late["fired"],
        "alerts_within_1s": late["within_1s"],
        "mean_lateness_s": round(late["mean_s"], 3),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sla_timers.json").write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


async def _admin(admin_dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
