"""The end-to-end bench's measurements: latency at fixed rates, the highest rate sustained,
a burst with hot leads in it, and the scale-out ratio. Each returns a JSON-ready dict."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.e2e_http import WebhookPoster
from bench.e2e_load import as_fast_as_taken, every, leads, new_run, open_loop
from bench.e2e_stack import SCALED, BenchStack, Counters, StackShape, running
from bench.e2e_stats import (
    RateSearch,
    drain_rate,
    hops,
    latency_summary,
    per_event,
    sustained,
    timeline,
)

TARGET_P99_MS = 100.0
WARM_UP_LEADS = 20
WARM_UP_ROUNDS = 5
WARM_UP_BOUND_S = 90.0
PAUSED_SESSION_TIMEOUT_MS = 30_000
TIMELINE_BUCKET_S = 0.5
IDLE_S = 2.0


@dataclass(frozen=True)
class Sizes:
    """How much each measurement sends and how long it may wait."""

    rates: tuple[float, ...] = (100, 200, 500)
    rate_seconds: float = 5.0
    drain_s: float = 20.0  # how long a rate run waits for its last leads
    search_steps: int = 4
    search_seconds: float = 3.0
    search_drain_s: float = 5.0  # a lead this late has failed p99 <= 100 ms anyway
    search_budget_s: float = 100.0
    burst: int = 10_000
    burst_bound_s: float = 90.0
    hot_interval_s: float = 0.5
    scale_leads: int = 3_000
    scale_bound_s: float = 45.0
    connections: int = 32
    # The source the burst is posted to: a Standard Webhooks source of the configuration
    # with a development secret (a bulk source, where one is configured).
    burst_source: str = "web"


QUICK = Sizes(
    rate_seconds=2.0,
    drain_s=10.0,
    search_steps=2,
    search_seconds=2.0,
    search_drain_s=3.0,
    search_budget_s=40.0,
    burst=1_000,
    burst_bound_s=30.0,
    scale_leads=500,
    scale_bound_s=20.0,
)

Log = Callable[[str], None]


async def warm_up(bench: BenchStack) -> float:
    """Route a few leads until every consumer instance has consumed some (the groups are
    joined and every path is warm); returns the slowest of the first round (ms)."""
    poster = WebhookPoster(*bench.intake)
    cold_start_ms = 0.0
    try:
        for round_number in range(WARM_UP_ROUNDS):
            sent, _ = await open_loop(poster, leads(new_run(), WARM_UP_LEADS), WARM_UP_LEADS)
            bench.posted.update(sent)
            if not await bench.watch.wait_for(sent, time.monotonic() + WARM_UP_BOUND_S):
                raise RuntimeError(
                    f"The warm-up leads were not all routed within {WARM_UP_BOUND_S:.0f} s; "
                    f"the services' logs are in {bench.stack.logs}."
                )
            if round_number == 0:
                cold_start_ms = max(bench.watch.routed[k] - at for k, at in sent.items()) * 1000
            unused = [
                c for service in SCALED for c in await bench.counters(service) if c.events == 0
            ]
            if not unused:
                return round(cold_start_ms, 1)
    finally:
        await poster.close()
    raise RuntimeError(
        f"A consumer instance had no partition after {WARM_UP_ROUNDS} warm-up rounds; "
        f"the services' logs are in {bench.stack.logs}."
    )


async def _counters(bench: BenchStack) -> dict[str, list[Counters]]:
    return {service: await bench.counters(service) for service in SCALED}


def _deltas(
    before: dict[str, list[Counters]], after: dict[str, list[Counters]]
) -> dict[str, list[Counters]]:
    """What each instance of each consumer service counted between two scrapes."""
    return {
        service: [
            Counters(a.statements - b.statements, a.events - b.events)
            for a, b in zip(after[service], before[service], strict=True)
        ]
        for service in SCALED
    }


def _per_event(
    before: dict[str, list[Counters]], after: dict[str, list[Counters]]
) -> dict[str, Any]:
    """SQL statements per consumed event of each consumer service over a measured run."""
    found: dict[str, Any] = {}
    for service, counted in _deltas(before, after).items():
        statements = sum(c.statements for c in counted)
        events = sum(c.events for c in counted)
        found[service] = {
            "statements": statements,
            "events": events,
            "per_event": per_event(statements, events),
        }
    return found


async def idle_statements(bench: BenchStack) -> dict[str, float]:
    """SQL statements a second each consumer service sends with nothing to consume (its
    background work: outbox sweeps, timers, gauges), to tell from the per-event cost."""
    before = await _counters(bench)
    await asyncio.sleep(IDLE_S)
    after = await _counters(bench)
    return {
        service: round(sum(c.statements for c in counted) / IDLE_S, 1)
        for service, counted in _deltas(before, after).items()
    }


def _hops(bench: BenchStack, sent: dict[str, float]) -> dict[str, Any]:
    watch = bench.watch
    return hops(sent, watch.received, watch.scored, watch.routed)


class Systems:
    """The system the rate runs share: started when first needed, and started afresh after
    a run that left a backlog (so no run starts behind another's queue)."""

    def __init__(self, shape: StackShape, log: Log) -> None:
        self._shape = shape
        self._log = log
        self._exit: contextlib.AsyncExitStack | None = None
        self._bench: BenchStack | None = None
        self.cold_start_ms: list[float] = []
        self.idle_statements_per_s: list[dict[str, float]] = []

    async def get(self) -> tuple[BenchStack, bool]:
        """The running system, and whether it was started just now."""
        if self._bench is not None:
            return self._bench, False
        self._log("starting a fresh system (broker, database, services) and warming it up")
        self._exit = contextlib.AsyncExitStack()
        self._bench = await self._exit.enter_async_context(running(self._shape))
        self.cold_start_ms.append(await warm_up(self._bench))
        self.idle_statements_per_s.append(await idle_statements(self._bench))
        return self._bench, True

    async def discard(self) -> None:
        """Stop the running system (the next run starts a fresh one)."""
        exit_stack, self._exit, self._bench = self._exit, None, None
        if exit_stack is not None:
            await exit_stack.aclose()


async def measure_rate(
    systems: Systems, rate: float, seconds: float, drain_s: float
) -> dict[str, Any]:
    """Post leads open loop at `rate` for `seconds`, wait up to `drain_s` for the last ones;
    latency from each send to its routing decision on Kafka, backlog, statements per event."""
    bench, fresh = await systems.get()
    poster = WebhookPoster(*bench.intake)
    batch = leads(new_run(), max(1, round(rate * seconds)))
    bench.posted.update(key for key, _ in batch)
    before = await _counters(bench)
    parts_before = bench.cpu_seconds()
    cpu = time.process_time()
    try:
        sent, late_ms = await open_loop(poster, batch, rate)
    finally:
        await poster.close()
    cpu = time.process_time() - cpu  # the bench's own share of the two cores, while sending
    await bench.watch.wait_for(sent, time.monotonic() + drain_s)
    parts_after = bench.cpu_seconds()
    result: dict[str, Any] = {
        "rate_per_s": rate,
        "seconds": seconds,
        **latency_summary(sent, bench.watch.routed),
        "hops": _hops(bench, sent),
        "sustained": False,
        "bench_late_ms": late_ms,
        "bench_cpu_ms_per_lead": round(cpu * 1000 / len(sent), 2),
        # Where the machine's time went: CPU ms per lead of each part, sending to drained.
        "cpu_ms_per_lead": {
            part: round((parts_after[part] - parts_before.get(part, 0.0)) * 1000 / len(sent), 2)
            for part in parts_after
        },
        "refusals": poster.refusals,
        "fresh_system": fresh,
        "sql": _per_event(before, await _counters(bench)),
    }
    result["sustained"] = sustained(result, TARGET_P99_MS)
    if bench.backlog():
        await systems.discard()
    return result


async def rates(systems: Systems, sizes: Sizes, log: Log) -> list[dict[str, Any]]:
    """Latency at each of the fixed rates, lowest first."""
    found = []
    for rate in sizes.rates:
        log(f"open loop at {rate:.0f} leads/s for {sizes.rate_seconds:.0f} s")
        found.append(await measure_rate(systems, rate, sizes.rate_seconds, sizes.drain_s))
    return found


async def search(
    systems: Systems, sizes: Sizes, measured: list[dict[str, Any]], log: Log
) -> dict[str, Any]:
    """The highest rate sustained with p99 <= 100 ms: bisection from the rates measured,
    in a few short runs and within a time budget."""
    finder = RateSearch(max_steps=sizes.search_steps, start=min(sizes.rates))
    for run in measured:
        finder.seed(run["rate_per_s"], run["sustained"])
    deadline = time.monotonic() + sizes.search_budget_s
    trials = []
    while (rate := finder.next_rate()) is not None:
        if time.monotonic() + sizes.search_seconds + sizes.search_drain_s > deadline:
            break
        log(f"search: {rate:.0f} leads/s for {sizes.search_seconds:.0f} s")
        run = await measure_rate(systems, rate, sizes.search_seconds, sizes.search_drain_s)
        finder.record(rate, run["sustained"])
        trials.append(run)
    return {
        "target_p99_ms": TARGET_P99_MS,
        "best_rate_per_s": finder.best,
        "below_rate_per_s": finder.lowest_failed,
        "trials": trials,
    }


async def burst(shape: StackShape, sizes: Sizes, log: Log) -> dict[str, Any]:
    """A list import of `sizes.burst` leads posted as fast as the intake takes them, with a
    demo request every `hot_interval_s` meanwhile: the time to drain it and the hot leads'
    latency, on a fresh system."""
    async with running(shape) as bench:
        cold_start_ms = await warm_up(bench)
        idle = await idle_statements(bench)
        log(f"burst of {sizes.burst} leads, a hot lead every {sizes.hot_interval_s} s")
        batch = leads(new_run(), sizes.burst, activity="webinar")
        keys = [key for key, _ in batch]
        bench.posted.update(keys)
        bulk = WebhookPoster(
            *bench.intake, source=sizes.burst_source, connections=sizes.connections
        )
        hot = WebhookPoster(*bench.intake, connections=4)
        before = await _counters(bench)
        stop = asyncio.Event()
        started = time.monotonic()
        hot_task = asyncio.create_task(
            every(hot, new_run(), sizes.hot_interval_s, stop, sizes.burst_bound_s)
        )
        try:
            accepted = await as_fast_as_taken(bulk, batch)
            posted_at = time.monotonic()
            drained = await bench.watch.wait_for(keys, started + sizes.burst_bound_s)
            waited_at = time.monotonic()
            stop.set()
            hot_sent = await hot_task
            await bench.watch.wait_for(hot_sent, time.monotonic() + 5)
        finally:
            stop.set()
            hot_task.cancel()  # a no-op once it ended; stops it when the burst failed
            await asyncio.gather(hot_task, return_exceptions=True)
            await bulk.close()
            await hot.close()
        after = await _counters(bench)
        seen = bench.watch.routed
        routed = [seen[key] for key in keys if key in seen]
        finished = max(routed) if drained else waited_at
        buckets = int((max(finished, posted_at) - started) // TIMELINE_BUCKET_S) + 1
        return {
            "leads": sizes.burst,
            "source": sizes.burst_source,
            "cold_start_ms": cold_start_ms,
            "idle_statements_per_s": idle,
            "intake_seconds": round(posted_at - started, 2),
            "intake_rate_per_s": drain_rate(len(accepted), started, posted_at),
            "drained": len(routed),
            "backlog": len(keys) - len(routed),
            "drain_seconds": round(finished - started, 2) if drained else None,
            "drain_rate_per_s": drain_rate(len(routed), started, finished),
            "refusals": bulk.refusals,
            "hot_interval_s": sizes.hot_interval_s,
            "hot": latency_summary(hot_sent, seen),
            "hot_hops": _hops(bench, hot_sent),
            "sql": _per_event(before, after),
            "timeline": {
                "bucket_s": TIMELINE_BUCKET_S,
                "accepted": timeline(accepted.values(), started, TIMELINE_BUCKET_S, buckets),
                "routed": timeline(routed, started, TIMELINE_BUCKET_S, buckets),
                "hot": [
                    [round(at - started, 2), round((seen[key] - at) * 1000, 1)]
                    for key, at in hot_sent.items()
                    if key in seen
                ],
            },
        }


async def drained_per_second(shape: StackShape, sizes: Sizes, log: Log) -> dict[str, Any]:
    """Scoring and router saturated: the load is posted while they are stopped (SIGSTOP),
    then they are resumed and the leads routed per second until it is drained is measured."""
    async with running(shape) as bench:
        await warm_up(bench)
        log(
            f"scale: {shape.instances} scoring + {shape.instances} router, "
            f"{sizes.scale_leads} leads queued while they are stopped"
        )
        batch = leads(new_run(), sizes.scale_leads)
        keys = [key for key, _ in batch]
        bench.posted.update(keys)
        poster = WebhookPoster(*bench.intake, connections=sizes.connections)
        before = await _counters(bench)
        bench.pause()
        try:
            await as_fast_as_taken(poster, batch)
        finally:
            bench.resume()
            await poster.close()
        resumed = time.monotonic()
        drained = await bench.watch.wait_for(keys, resumed + sizes.scale_bound_s)
        waited_at = time.monotonic()
        after = await _counters(bench)
        routed = [bench.watch.routed[key] for key in keys if key in bench.watch.routed]
        finished = max(routed) if drained else waited_at
        return {
            "instances": shape.instances,
            "partitions": shape.partitions,
            "leads": len(keys),
            "drained": len(routed),
            "seconds": round(finished - resumed, 2),
            "drained_per_s": drain_rate(len(routed), resumed, finished),
            "events_by_instance": {
                service: [c.events for c in counted]
                for service, counted in _deltas(before, after).items()
            },
            "sql": _per_event(before, after),
        }


async def scale(postgres: str | None, sizes: Sizes, log: Log) -> dict[str, Any]:
    """The same saturated load on 1 and on 2 instances of scoring and router (4 partitions):
    the throughput ratio."""
    runs = []
    for instances in (1, 2):
        shape = StackShape(
            postgres, instances=instances, session_timeout_ms=PAUSED_SESSION_TIMEOUT_MS
        )
        runs.append(await drained_per_second(shape, sizes, log))
    one, two = (run["drained_per_s"] for run in runs)
    return {
        "runs": runs,
        "ratio": round(two / one, 2) if one and two else None,
        "target_ratio": 1.6,
    }
