"""The end-to-end bench's outputs: the printed table, the JSON and the PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server

import matplotlib.pyplot as plt

LATE_NOTE_MS = 50.0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _sql(run: dict[str, Any]) -> str:
    return " / ".join(
        "-" if run["sql"][s]["per_event"] is None else f"{run['sql'][s]['per_event']:.1f}"
        for s in ("scoring", "router")
    )


def _hops(hops: dict[str, Any]) -> str:
    return " / ".join(
        _ms(hops[hop]["p50_ms"]) if hop in hops else "-" for hop in ("intake", "scoring", "router")
    )


def _cpu_lines(runs: list[dict[str, Any]]) -> list[str]:
    """CPU ms per lead of each part of the system (two cores give 2,000 ms a second)."""
    measured = [run for run in runs if run.get("cpu_ms_per_lead")]
    if not measured:
        return []
    parts = list(measured[0]["cpu_ms_per_lead"])
    lines = [f"  CPU ms per lead {'leads/s':>8}  " + " ".join(f"{p:>11}" for p in parts)]
    for run in measured:
        cpu = run["cpu_ms_per_lead"]
        lines.append(
            f"  {'':>15} {run['rate_per_s']:>8.0f}  "
            + " ".join(f"{cpu.get(p, 0.0):>11.2f}" for p in parts)
            + f"   (bench {run['bench_cpu_ms_per_lead']:.2f} while sending)"
        )
    return lines


def table(result: dict[str, Any]) -> str:
    """The results as lines of text, each with its target."""
    lines = [f"end to end on {result['database']} ({result['partitions']} partitions)"]
    runs = result.get("rates", []) + result.get("search", {}).get("trials", [])
    if runs:
        lines.append(
            f"{'leads/s':>8} {'posted':>7} {'routed':>7} {'backlog':>7} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'max ms':>8} {'kept up':>7}  p50 ms by hop: intake / scoring / "
            "router   SQL/event: scoring / router"
        )
        for run in runs:
            lines.append(
                f"{run['rate_per_s']:>8.0f} {run['posted']:>7} {run['assigned']:>7} "
                f"{run['backlog']:>7} {_ms(run['p50_ms']):>8} {_ms(run['p99_ms']):>8} "
                f"{_ms(run['max_ms']):>8} {'yes' if run['sustained'] else 'no':>7}  "
                f"{_hops(run['hops']):>39}   {_sql(run)}"
            )
        lines.append("  target: p99 <= 100 ms at 500 leads/s; <= 1 SQL statement per event")
        lines += _cpu_lines(result.get("rates", []))
        late = max(run["bench_late_ms"] for run in runs)
        if late > LATE_NOTE_MS:
            lines.append(
                f"  note: the bench's own sends fell up to {late:,.0f} ms behind schedule (a busy "
                "machine); latencies count from the scheduled instant"
            )
        for idle in result.get("idle_statements_per_s", [])[:1]:
            lines.append(
                "  SQL/event counts every statement of the processes during the run; idle, "
                f"they send {idle['scoring']:.0f} / {idle['router']:.0f} a second"
            )
    if "search" in result:
        found = result["search"]
        best = found["best_rate_per_s"]
        lines.append(
            "highest rate sustained with p99 <= 100 ms: "
            + (f"{best:.0f} leads/s" if best is not None else "none of the rates tried")
            + (
                f" ({found['below_rate_per_s']:.0f} leads/s was not)"
                if found["below_rate_per_s"] is not None
                else ""
            )
        )
    if "burst" in result:
        lines += _burst_lines(result["burst"])
    if "scale" in result:
        scale = result["scale"]
        one, two = scale["runs"]
        lines.append(
            f"scale-out (saturated, {one['leads']} leads queued): 1 scoring + 1 router "
            f"{_ms(one['drained_per_s'])} leads/s, 2 + 2 {_ms(two['drained_per_s'])} leads/s: "
            f"ratio {scale['ratio'] if scale['ratio'] is not None else '-'} "
            f"(target >= {scale['target_ratio']})"
        )
    for part, error in result.get("errors", {}).items():
        lines.append(f"{part} failed: {error.splitlines()[0][:300]}")
    return "\n".join(lines)


def _burst_lines(burst: dict[str, Any]) -> list[str]:
    hot = burst["hot"]
    drained = (
        f"drained in {burst['drain_seconds']:.1f} s"
        if burst["drain_seconds"] is not None
        else f"{burst['drained']:,} drained before the bound, {burst['backlog']:,} left"
    )
    return [
        f"burst of {burst['leads']:,} leads: the intake took them in "
        f"{burst['intake_seconds']:.1f} s ({_ms(burst['intake_rate_per_s'])}/s); {drained} "
        f"({_ms(burst['drain_rate_per_s'])} leads/s routed; target <= 20 s for 10,000); "
        f"SQL/event {_sql(burst)}",
        f"  hot leads meanwhile: {hot['assigned']}/{hot['posted']} routed, "
        f"p50 {_ms(hot['p50_ms'])} ms, p99 {_ms(hot['p99_ms'])} ms, "
        f"max {_ms(hot['max_ms'])} ms (target p99 <= 1,000 ms); p50 ms by hop "
        f"{_hops(burst['hot_hops'])}",
    ]


def plot(result: dict[str, Any], path: Path) -> None:
    """Latency percentiles by rate, and the burst's timeline with its hot leads."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    runs = sorted(
        (r for r in result.get("rates", []) + result.get("search", {}).get("trials", [])),
        key=lambda r: r["rate_per_s"],
    )
    runs = [r for r in runs if r["p50_ms"] is not None]
    if runs:
        x = [r["rate_per_s"] for r in runs]
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max")):
            left.plot(x, [r[key] for r in runs], marker="o", label=label)
        left.axhline(100, color="grey", linestyle="--", label="p99 target (100 ms)")
        left.set_yscale("log")
        left.legend()
    left.set_title("Webhook to lead.assigned, open loop")
    left.set_xlabel("leads/s")
    left.set_ylabel("latency (ms)")
    burst = result.get("burst")
    if burst is not None:
        line = burst["timeline"]
        bucket = line["bucket_s"]
        edges = [i * bucket for i in range(len(line["routed"]) + 1)]
        for key, label in (("accepted", "accepted by the intake"), ("routed", "routed")):
            right.stairs([n / bucket for n in line[key]], edges, label=f"{label} /s")
        right.set_xlabel("seconds since the burst began")
        right.set_ylabel("leads per second")
        hot_axis = right.twinx()
        if line["hot"]:
            hot_axis.scatter(*zip(*line["hot"], strict=True), s=10, color="red", label="hot lead")
        hot_axis.axhline(1000, color="red", linestyle=":", label="hot target (1 s)")
        hot_axis.set_ylabel("hot lead latency (ms)")
        hot_axis.set_yscale("log")
        right.legend(loc="upper left")
        hot_axis.legend(loc="upper right")
        right.set_title(
            f"Burst of {burst['leads']:,} leads, a hot lead every {burst['hot_interval_s']} s"
        )
    else:
        right.set_axis_off()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
