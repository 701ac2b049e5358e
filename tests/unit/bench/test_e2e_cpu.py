"""The end-to-end bench's account of where the machine's time went."""

from __future__ import annotations

import os
import time

from bench.e2e_report import table
from bench.e2e_stack import _cpu_seconds, _pids_named


def test_cpu_seconds_of_this_process_grow_with_its_work() -> None:
    before = _cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert _cpu_seconds(os.getpid()) > before


def test_a_process_that_is_gone_used_nothing() -> None:
    assert _cpu_seconds(2**22 + 1) == 0.0  # above the kernel's largest pid


def test_processes_are_found_by_command_name() -> None:
    with open(f"/proc/{os.getpid()}/comm", encoding="utf-8") as comm:
        assert os.getpid() in _pids_named(comm.read().strip())


def test_the_table_shows_each_part_s_cpu_per_lead_for_each_rate() -> None:
    run = {
        "rate_per_s": 100,
        "posted": 10,
        "assigned": 10,
        "backlog": 0,
        "p50_ms": 30.0,
        "p99_ms": 60.0,
        "max_ms": 70.0,
        "sustained": True,
        "hops": {},
        "sql": {s: {"per_event": 1.0} for s in ("scoring", "router")},
        "bench_late_ms": 0.0,
        "bench_cpu_ms_per_lead": 0.5,
        "cpu_ms_per_lead": {"intake": 0.7, "router": 3.25, "postgres": 2.0},
    }
    lines = table({"database": "postgresql", "partitions": 4, "rates": [run]}).splitlines()
    header = next(line for line in lines if "CPU ms per lead" in line)
    assert header.split()[-3:] == ["intake", "router", "postgres"]
    row = lines[lines.index(header) + 1]
    assert row.split()[:4] == ["100", "0.70", "3.25", "2.00"]
