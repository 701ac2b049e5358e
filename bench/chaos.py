"""`make chaos`: infrastructure faults at random (seeded) under a steady stream of leads.

Run from the repository root: `PYTHONPATH=. python bench/chaos.py [--seconds N]
[--rate N] [--seed N] [--database postgres|sqlite]`.

Starts its own broker (behind a fault proxy), a private PostgreSQL server (initdb/pg_ctl,
behind a second proxy; or a SQLite file) and the four services as processes; posts
signed leads at `--rate` a second while it stops PostgreSQL, resets, slows down and
blackholes connections, pauses the broker, SIGKILLs services and fills the intake's spool
disk, in an order and for durations drawn from `--seed`. Then it reads Kafka and the
database and prints, per fault, how many leads were accepted during it and how many of
those were lost, duplicated or dead-lettered, and how long the services took to be ready
again. The exit status is 1 if anything was lost, duplicated or dead-lettered.

Filling the spool disk needs a tmpfs mount (root); without it that fault is left out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.fixtures.chaos import ChaosReport, applicable, plan, run_chaos
from tests.fixtures.faultbed import Database, fault_bed

SPOOL_DISK_BYTES = 4 * 1024 * 1024


def log(line: str) -> None:
    """A progress line with the time, flushed."""
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


async def chaos(
    database: Database, seed: int, seconds: float, rate: float, work: Path
) -> ChaosReport:
    """Set up the bed, run the schedule, tear it all down; the report."""
    disk = SPOOL_DISK_BYTES if os.geteuid() == 0 else None
    if disk is None:
        log("not root: the spool-disk-full fault is left out (it needs a tmpfs mount)")
    log(f"starting the broker, {database}, and the four services (logs in {work})")
    with fault_bed(database, work, spool_disk_bytes=disk) as bed:
        steps = plan(seed, seconds, applicable(bed))
        log("schedule: " + ", ".join(f"{s.fault.name} {s.hold_s:.0f} s" for s in steps))
        return await run_chaos(bed, seed=seed, seconds=seconds, rate=rate, on_step=log)


def main() -> int:
    """Parse the arguments, run, print the seed and the table; 1 if anything broke."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=180, help="length of the schedule")
    parser.add_argument("--rate", type=float, default=5, help="leads posted a second")
    parser.add_argument("--seed", type=int, help="the schedule's seed (random by default)")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    log(f"chaos seed {seed} (run it again with --seed {seed})")
    work = Path(tempfile.mkdtemp(prefix="leadflow-chaos-"))
    report = asyncio.run(chaos(args.database, seed, args.seconds, args.rate, work))
    print(report.render())
    if report.failed:
        print(f"FAILED: something was lost, duplicated or dead-lettered; logs kept in {work}")
        return 1
    slow = report.slow()
    if slow:
        print("slow recoveries (over 10 s): " + ", ".join(row.fault for row in slow))
    shutil.rmtree(work, ignore_errors=True)
    print("nothing lost, duplicated or dead-lettered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
