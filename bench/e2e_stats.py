"""The end-to-end bench's arithmetic: percentiles, timelines, the sustained-rate search and
per-event ratios from scraped Prometheus counters. Pure: no IO, no clock."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def percentile(values: Sequence[float], share: float) -> float:
    """The value below which `share` of `values` fall (nearest rank); `values` not empty."""
    if not values:
        raise ValueError("a percentile of no values is undefined.")
    ordered = sorted(values)
    rank = math.ceil(share * len(ordered))
    return ordered[min(len(ordered), max(1, rank)) - 1]


def latency_summary(sent: Mapping[str, float], seen: Mapping[str, float]) -> dict[str, Any]:
    """Latencies (ms) from each lead's send to its routing: p50/p99/max over the routed ones,
    how many of those sent were routed, and the backlog (sent, not routed)."""
    latencies = [(seen[key] - at) * 1000 for key, at in sent.items() if key in seen]
    summary: dict[str, Any] = {
        "posted": len(sent),
        "assigned": len(latencies),
        "backlog": len(sent) - len(latencies),
        "p50_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }
    if latencies:
        summary["p50_ms"] = round(percentile(latencies, 0.5), 1)
        summary["p99_ms"] = round(percentile(latencies, 0.99), 1)
        summary["max_ms"] = round(max(latencies), 1)
    return summary


def hops(
    sent: Mapping[str, float],
    received: Mapping[str, float],
    scored: Mapping[str, float],
    routed: Mapping[str, float],
) -> dict[str, dict[str, float]]:
    """Where the time goes, hop by hop (p50 and p99, ms) for the leads seen at every stage:
    intake (send to `lead.received` readable), scoring (to `lead.scored` readable) and
    router (to the routing decision readable)."""
    keys = [k for k in sent if k in received and k in scored and k in routed]
    stages = {
        "intake": [received[k] - sent[k] for k in keys],
        "scoring": [scored[k] - received[k] for k in keys],
        "router": [routed[k] - scored[k] for k in keys],
    }
    return {
        hop: {
            "p50_ms": round(percentile(spans, 0.5) * 1000, 1),
            "p99_ms": round(percentile(spans, 0.99) * 1000, 1),
        }
        for hop, spans in stages.items()
        if spans
    }


def sustained(summary: Mapping[str, Any], target_p99_ms: float) -> bool:
    """Whether a run kept up: every lead routed, and p99 within the target."""
    p99 = summary.get("p99_ms")
    return summary["backlog"] == 0 and p99 is not None and p99 <= target_p99_ms


def timeline(times: Iterable[float], start: float, bucket_s: float, buckets: int) -> list[int]:
    """How many of `times` fall in each of `buckets` consecutive buckets from `start`
    (times before the first bucket are left out; times after the last count in the last)."""
    counts = [0] * buckets
    for at in times:
        if at < start or buckets == 0:
            continue
        counts[min(buckets - 1, int((at - start) / bucket_s))] += 1
    return counts


def drain_rate(drained: int, started: float, finished: float) -> float | None:
    """Leads routed per second between two instants (None when no time passed)."""
    elapsed = finished - started
    return round(drained / elapsed, 1) if elapsed > 0 else None


@dataclass
class RateSearch:
    """Finds the highest rate a system sustains by bisection between the highest rate that
    passed and the lowest that failed (doubling up or halving down while one side is
    missing; from `start` when nothing was measured), in at most `max_steps` trials and to
    within `precision` of the rate."""

    max_steps: int
    start: float = 100.0
    precision: float = 0.1
    floor: float = 5.0
    ceiling: float = 5000.0
    trials: list[tuple[float, bool]] = field(default_factory=list)
    steps: int = 0

    def seed(self, rate: float, passed: bool) -> None:
        """Record a rate measured before the search (it costs no step)."""
        self.trials.append((rate, passed))

    def record(self, rate: float, passed: bool) -> None:
        """Record one trial of the search."""
        self.trials.append((rate, passed))
        self.steps += 1

    @property
    def best(self) -> float | None:
        """The highest rate that passed and is below every rate that failed."""
        failed = self.lowest_failed
        passing = [r for r, ok in self.trials if ok and (failed is None or r < failed)]
        return max(passing) if passing else None

    def next_rate(self) -> float | None:
        """The next rate to try, or None when the search is done."""
        if self.steps >= self.max_steps:
            return None
        low, high = self.best, self.lowest_failed
        if low is None and high is None:
            return self.start
        if high is None:
            assert low is not None
            candidate = min(self.ceiling, low * 2)
            return float(round(candidate)) if candidate > low else None
        if low is None:
            candidate = high / 2
            return float(round(candidate)) if candidate >= self.floor else None
        if high - low <= self.precision * high:
            return None
        candidate = float(round((low + high) / 2))
        return candidate if low < candidate < high else None

    @property
    def lowest_failed(self) -> float | None:
        """The lowest rate that failed, if any did."""
        failed = [rate for rate, ok in self.trials if not ok]
        return min(failed) if failed else None


def counter_total(exposition: str, name: str) -> float:
    """The sum over every label set of the counter sample `name` in a Prometheus text
    exposition (0 when it is absent, as before the first increment)."""
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


def per_event(statements: float, events: float) -> float | None:
    """Statements per event consumed, or None when nothing was consumed."""
    return round(statements / events, 2) if events > 0 else None
