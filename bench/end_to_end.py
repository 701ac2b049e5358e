"""`make bench`, end to end: webhook accepted -> `lead.assigned` readable on Kafka.

Run from the repository root:
`PYTHONPATH=. python bench/end_to_end.py [--postgres URL] [--only rates,search,burst,scale]
[--quick]`.

Starts its own broker, a fresh database (on the `--postgres` server, else a SQLite file) and
every service as processes, on topics of 4 partitions, with the product's settings and
config/example.yaml; warms each system up (the slowest warm-up lead is the cold start).
Then, in one run:

* rates: signed demo requests posted open loop at 100, 200 and 500 leads/s (5 s each);
  latency from each send to its `lead.assigned` (p50/p99/max) and by hop (to
  `lead.received`, `lead.scored`, `lead.assigned`), how many were routed within
  20 s of the last send and the backlog left, and SQL statements per consumed event of
  scoring and the router (their `/metrics` scraped before and after), and the CPU
  milliseconds per lead of each part (each service, the broker, the whole PostgreSQL
  server, the bench's own sending): where the machine's time goes. The rates share one
  system, except that a run which leaves a backlog is followed by a fresh system.
* search: the highest rate sustained with p99 <= 100 ms and every lead routed, by
  bisection from those rates (3 s runs, at most 4, within 100 s).
* burst: on a fresh system, 10,000 webinar sign-ups (a list import) posted through 32
  connections as fast as the intake takes them, with a demo request every 0.5 s
  meanwhile: the time until the last of the burst is routed, and the hot leads' latency.
* scale: the same 3,000 leads queued while scoring and router are stopped (SIGSTOP), then
  drained: leads routed per second with 2 instances of each vs 1, each on a fresh system.

Prints a table and writes bench/results/end_to_end.json and end_to_end.png. `--quick`
shrinks every part (2 s per rate, a 1,000-lead burst, 500 leads to scale) to check the
bench itself in about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from bench.e2e_phases import QUICK, Sizes, Systems, burst, rates, scale, search
from bench.e2e_report import plot, table
from bench.e2e_stack import CONFIG, StackShape, postgres_answers
from leadflow.config import load_config
from leadflow.settings import DEV_SECRETS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PARTS = ("rates", "search", "burst", "scale")


def log(line: str) -> None:
    """A progress line with the time, flushed."""
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", help="a PostgreSQL server URL (postgresql+asyncpg://...)")
    parser.add_argument(
        "--sqlite-if-unreachable",
        action="store_true",
        help="run on SQLite, with a note, when the --postgres server does not answer",
    )
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"the parts to run, comma-separated, of {', '.join(PARTS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the bench")
    parser.add_argument("--rates", help="the open-loop rates, comma-separated (leads/s)")
    parser.add_argument("--seconds", type=float, help="how long each rate runs")
    parser.add_argument("--burst", type=int, help="how many leads the burst has")
    parser.add_argument(
        "--burst-source",
        help="the source the burst is posted to (a Standard Webhooks source; default web)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"--only takes {', '.join(PARTS)}; not {', '.join(sorted(unknown))}.")
    try:
        rates = [float(r) for r in args.rates.split(",")] if args.rates else [1.0]
    except ValueError:
        rates = []
    if not rates or min(rates) <= 0 or (args.seconds is not None and args.seconds <= 0):
        parser.error("--rates takes rates above 0, comma-separated; --seconds above 0.")
    if args.burst is not None and args.burst < 1:
        parser.error("--burst takes a number of leads, at least 1.")
    if args.burst_source:
        sources = load_config(CONFIG).sources
        signable = sorted(
            name for name, s in sources.items() if s.kind == "standard" and name in DEV_SECRETS
        )
        if args.burst_source not in signable:
            parser.error(
                f"--burst-source must be a Standard Webhooks source of {CONFIG.name} with a "
                f"development secret: one of {', '.join(signable)}."
            )
    return args


def sizes_of(args: argparse.Namespace) -> Sizes:
    """The sizes the command line asks for."""
    sizes = QUICK if args.quick else Sizes()
    if args.rates:
        sizes = replace(sizes, rates=tuple(float(r) for r in args.rates.split(",")))
    if args.seconds:
        sizes = replace(sizes, rate_seconds=args.seconds)
    if args.burst:
        sizes = replace(sizes, burst=args.burst)
    if args.burst_source:
        sizes = replace(sizes, burst_source=args.burst_source)
    return sizes


async def run(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """Every part asked for, in order. A part that fails is reported (its error in
    `errors`) and the others still run."""
    parts = args.only.split(",")
    shape = StackShape(args.postgres)
    result: dict[str, Any] = {
        "database": "postgresql" if args.postgres else "sqlite",
        "partitions": shape.partitions,
        "quick": args.quick,
        "errors": {},
    }
    started = time.monotonic()
    systems = Systems(shape, log)

    async def attempt(part: str, measure: Callable[[], Awaitable[Any]]) -> None:
        if part not in parts:
            return
        try:
            result[part] = await measure()
        except Exception as exc:
            log(f"{part} failed: {exc}")
            traceback.print_exc()
            result["errors"][part] = f"{type(exc).__name__}: {exc}"[:2000]
            await systems.discard()

    await attempt("rates", lambda: rates(systems, sizes, log))
    await attempt("search", lambda: search(systems, sizes, result.get("rates", []), log))
    result["cold_start_ms"] = systems.cold_start_ms
    result["idle_statements_per_s"] = systems.idle_statements_per_s
    await systems.discard()
    await attempt("burst", lambda: burst(shape, sizes, log))
    await attempt("scale", lambda: scale(args.postgres, sizes, log))
    result["bench_seconds"] = round(time.monotonic() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for; print the table; write the JSON and the plot."""
    args = parse(argv)
    sizes = sizes_of(args)
    if args.postgres and args.sqlite_if_unreachable and not postgres_answers(args.postgres):
        log(
            "note: no PostgreSQL server answers at the --postgres URL; measuring on SQLite "
            "instead (the targets are for PostgreSQL: set LEADFLOW_TEST_POSTGRES_URL)"
        )
        args.postgres = None
    result = asyncio.run(run(args, sizes))
    print(table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "end_to_end.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    plot(result, args.out / "end_to_end.png")
    log(f"wrote {args.out / 'end_to_end.json'} and {args.out / 'end_to_end.png'}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
