"""`make bench`, part 1: the intake against a bare FastAPI endpoint, on this machine, in one run.

Starts its own broker on a free port, a bare FastAPI JSON endpoint and the intake (one
uvicorn worker each), drives each with wrk (the same signed Standard Webhooks requests,
cycled through distinct leads), and measures a raw aiokafka producer as the ceiling.
Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from leadflow.broker import start_broker
from leadflow.settings import DEV_SECRETS
from leadflow.webhooks import sign
from tests.fixtures.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def signed_requests(count: int) -> list[tuple[bytes, dict[str, str]]]:
    """Distinct, validly signed demo requests (valid for the signature window)."""
    now = int(time.time())
    requests = []
    for i in range(count):
        body = orjson.dumps(
            {
                "event": "lead",
                "activity": "demo_request",
                "lead": {
                    "email": f"bench.{i}@bigco{i % 97}.example",
                    "first_name": "Bench",
                    "job_title": "VP Operations",
                    "phone": f"+1415{2_000_000 + i * 37:07d}",  # distinct, valid
                    "company": {"name": "Bigco", "size": 1500, "industry": "software"},
                    "country": "US",
                    "utm": {"source": "bench", "medium": "cpc"},
                },
            }
        )
        msg_id = f"msg_{uuid.uuid4().hex}"
        requests.append(
            (
                body,
                {
                    "content-type": "application/json",
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(now),
                    "webhook-signature": sign(DEV_SECRETS["web"], msg_id, now, body),
                },
            )
        )
    return requests


def wrk_script(requests: list[tuple[bytes, dict[str, str]]], path: Path) -> Path:
    """A wrk Lua script that cycles through the requests."""
    lines = ["local reqs = {}"]
    for body, headers in requests:
        header_table = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
        lines.append(
            "reqs[#reqs + 1] = wrk.format('POST', '/v1/webhooks/web', "
            f"{{{header_table}}}, [==[{body.decode()}]==])"
        )
    lines += [
        "local i = 0",
        "request = function()",
        "  i = i % #reqs + 1",
        "  return reqs[i]",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not match:
        raise ValueError(f"unexpected wrk latency {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, script: Path, seconds: int, connections: int, pid: int) -> dict[str, Any]:
    """Drive `url` with wrk; returns requests/s, p50/p99 (ms), errors, and the server's CPU
    per request and share of a core (less sensitive than requests/s to a drifting machine)."""
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    cpu = cpu_seconds(pid) - cpu_before
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.MULTILINE))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "requests": requests,
        "server_cpu_us_per_request": cpu * 1e6 / max(requests, 1),
        "server_cpu_share": cpu / seconds,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each measure's median over the rounds; counts are summed, every round is kept."""
    return {
        "requests_per_s": statistics.median(r["requests_per_s"] for r in rounds),
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
        "server_cpu_us_per_request": statistics.median(
            r["server_cpu_us_per_request"] for r in rounds
        ),
        "server_cpu_share": statistics.median(r["server_cpu_share"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "socket_errors": "; ".join(r["socket_errors"] for r in rounds if r["socket_errors"]),
        "rounds": rounds,
    }


def wait_http(url: str, timeout_s: float = 60) -> None:
    """Block until `url` answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


async def producer_ceiling(bootstrap: str, messages: int, size: int) -> dict[str, Any]:
    """A raw aiokafka producer (acks=all, linger 1 ms), pipelined: messages/s acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await producer.start()
    try:
        value = b"x" * size
        await producer.send_and_wait("bench.ceiling", value, key=b"warmup")
        started = time.perf_counter()
        futures = [
            await producer.send("bench.ceiling", value, key=f"k{i % 1000}".encode())
            for i in range(messages)
        ]
        await asyncio.gather(*futures)
        seconds = time.perf_counter() - started
        sequential = time.perf_counter()
        for i in range(500):
            await producer.send_and_wait("bench.ceiling", value, key=f"s{i}".encode())
        one_by_one = 500 / (time.perf_counter() - sequential)
    finally:
        await producer.stop()
    return {
        "messages_per_s": messages / seconds,
        "sequential_acks_per_s": one_by_one,
        "message_bytes": size,
    }


def serve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server process (its output in `log`)."""
    handle = log.open("ab")
    return subprocess.Popen(args, env=env, stdout=handle, stderr=handle, cwd=ROOT)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it hangs."""
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8, help="per server and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (Debian/Ubuntu).", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="leadflow-bench-"))
    requests = signed_requests(args.requests)
    script = wrk_script(requests, work / "requests.lua")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    broker_port, bare_port, intake_port = free_port(), free_port(), free_port()
    broker = start_broker(broker_port, log=work / "broker.log")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        bootstrap = f"127.0.0.1:{broker_port}"
        bare = serve(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bare:app",
                "--port",
                str(bare_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env,
            work / "bare.log",
        )
        processes.append(bare)
        intake_env = {
            **env,
            "LEADFLOW_KAFKA_BOOTSTRAP": bootstrap,
            "LEADFLOW_CONFIG": str(ROOT / "config" / "example.yaml"),
            "LEADFLOW_INTAKE_SPOOL_DIR": str(work / "spool"),
            "LEADFLOW_LOG_LEVEL": "WARNING",
            # wrk posts each lead many times: a per-person budget none of them reaches keeps
            # the check on the measured path without refusing anything.
            "LEADFLOW_INTAKE_IDENTITY_BURST": "1000000000",
        }
        intake = serve(
            [sys.executable, "-m", "leadflow_cli", "intake", "--port", str(intake_port)],
            intake_env,
            work / "intake.log",
        )
        processes.append(intake)
        wait_http(f"http://127.0.0.1:{bare_port}/docs")
        wait_http(f"http://127.0.0.1:{intake_port}/readyz")
        # Warm both up, then measure them in turn, round after round: a shared machine's
        # speed drifts, and alternating exposes both servers to the same drift. Each
        # figure is the median over the rounds.
        bare_url, intake_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{intake_port}"
        run_wrk(bare_url, script, 3, args.connections, bare.pid)
        run_wrk(intake_url, script, 3, args.connections, intake.pid)
        bare_rounds, intake_rounds = [], []
        for _ in range(args.rounds):
            bare_rounds.append(run_wrk(bare_url, script, args.seconds, args.connections, bare.pid))
            intake_rounds.append(
                run_wrk(intake_url, script, args.seconds, args.connections, intake.pid)
            )
        bare_result, intake_result = median_of(bare_rounds), median_of(intake_rounds)
        metrics = httpx.get(f"http://127.0.0.1:{intake_port}/metrics").text
        spooled = sum(
            float(v)
            for v in re.findall(
                r"^leadflow_intake_spooled_events_total\{.*\} (\S+)$", metrics, re.M
            )
        )
        ceiling = asyncio.run(producer_ceiling(bootstrap, 20000, len(requests[0][0]) + 400))
    finally:
        for process in processes:
            stop(process)
        broker.terminate()
        broker.wait(10)
    result = {
        "benchmark": "intake",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "load": {
            "tool": "wrk",
            "threads": 1,
            "connections": args.connections,
            "seconds": args.seconds,
            "rounds": args.rounds,
        },
        "bare_fastapi": bare_result,
        "intake": {**intake_result, "events_spooled": spooled},
        "ratio_intake_over_bare": intake_result["requests_per_s"] / bare_result["requests_per_s"],
        "ratio_per_round": [
            i["requests_per_s"] / b["requests_per_s"]
            for b, i in zip(bare_result["rounds"], intake_result["rounds"], strict=True)
        ],
        "target_ratio": 0.6,
        "raw_producer_ceiling": ceiling,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"intake-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(
        f"{'':<28}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>8}"
        f"{'CPU us/req':>12}{'CPU share':>10}"
    )
    for name, row in (
        ("bare FastAPI endpoint", bare_result),
        ("intake (sign+validate+ack)", intake_result),
    ):
        print(
            f"{name:<28}{row['requests_per_s']:>8.0f}{row['p50_ms']:>8.2f}"
            f"{row['p99_ms']:>8.2f}{row['non_2xx']:>8}"
            f"{row['server_cpu_us_per_request']:>12.0f}{row['server_cpu_share']:>10.0%}"
        )
    print(
        f"ratio intake / bare: {result['ratio_intake_over_bare']:.2f} (target >= 0.60); "
        f"per round: {' '.join(f'{r:.2f}' for r in result['ratio_per_round'])}"
    )
    print(
        f"raw aiokafka producer ceiling: {ceiling['messages_per_s']:.0f} msg/s pipelined, "
        f"{ceiling['sequential_acks_per_s']:.0f} acks/s one by one"
    )
    print(f"events spooled during the run: {spooled:.0f} (0 = every event broker-acknowledged)")
    print(f"written: {path.relative_to(ROOT)}")
    valid = bare_result["non_2xx"] == 0 and intake_result["non_2xx"] == 0
    return 0 if valid else 1


if __name__ == "__main__":
    raise SystemExit(main())
