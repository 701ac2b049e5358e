"""The end-to-end bench's arithmetic: percentiles, summaries, timelines, the rate search."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.e2e_stats import (
    RateSearch,
    counter_total,
    drain_rate,
    hops,
    latency_summary,
    per_event,
    percentile,
    sustained,
    timeline,
)


@pytest.mark.parametrize(
    ("share", "expected"), [(0.5, 50.0), (0.99, 99.0), (1.0, 100.0), (0.001, 1.0)]
)
def test_percentile_is_the_nearest_rank(share: float, expected: float) -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, share) == expected


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 0.99) == 7.0


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_summary_counts_the_leads_not_routed_as_backlog() -> None:
    sent = {"a": 10.0, "b": 10.5, "c": 11.0}
    seen = {"a": 10.05, "b": 10.7, "x": 1.0}
    assert latency_summary(sent, seen) == {
        "posted": 3,
        "assigned": 2,
        "backlog": 1,
        "p50_ms": 50.0,
        "p99_ms": 200.0,
        "max_ms": 200.0,
    }


def test_summary_of_nothing_routed_has_no_percentiles() -> None:
    summary = latency_summary({"a": 1.0}, {})
    assert (summary["backlog"], summary["p99_ms"], summary["max_ms"]) == (1, None, None)


def test_hops_split_each_lead_s_latency_between_the_stages_it_passed() -> None:
    sent = {"a": 0.0, "b": 1.0, "c": 2.0}
    received = {"a": 0.01, "b": 1.03, "c": 2.01}
    scored = {"a": 0.11, "b": 1.13}
    routed = {"a": 0.31, "b": 1.53, "x": 9.0}
    assert hops(sent, received, scored, routed) == {
        "intake": {"p50_ms": 10.0, "p99_ms": 30.0},
        "scoring": {"p50_ms": 100.0, "p99_ms": 100.0},
        "router": {"p50_ms": 200.0, "p99_ms": 400.0},
    }
    assert hops(sent, received, {}, routed) == {}


@pytest.mark.parametrize(
    ("backlog", "p99_ms", "expected"),
    [(0, 100.0, True), (0, 100.1, False), (1, 20.0, False), (0, None, False)],
)
def test_a_rate_is_sustained_when_all_is_routed_within_the_target(
    backlog: int, p99_ms: float | None, expected: bool
) -> None:
    assert sustained({"backlog": backlog, "p99_ms": p99_ms}, 100.0) is expected


def test_timeline_buckets_from_the_start_and_keeps_late_ones_in_the_last() -> None:
    times = [9.0, 10.0, 10.4, 10.5, 11.2, 12.9, 30.0]
    assert timeline(times, start=10.0, bucket_s=0.5, buckets=4) == [2, 1, 1, 2]


def test_drain_rate_needs_time_to_pass() -> None:
    assert drain_rate(300, 10.0, 12.0) == 150.0
    assert drain_rate(300, 10.0, 10.0) is None


EXPOSITION = """\
# HELP leadflow_sql_statements_total SQL statements this process sent.
# TYPE leadflow_sql_statements_total counter
leadflow_sql_statements_total 1234.0
leadflow_sql_statements_created 1.7e+09
# HELP leadflow_events_consumed_total Events consumed, by service and type.
# TYPE leadflow_events_consumed_total counter
leadflow_events_consumed_total{service="router",type="lead.scored"} 40.0
leadflow_events_consumed_total{service="router",type="sla.escalated"} 2.0
leadflow_events_consumed_created{service="router",type="lead.scored"} 1.7e+09
"""


def test_counter_total_sums_every_label_set_and_skips_created_samples() -> None:
    assert counter_total(EXPOSITION, "leadflow_sql_statements_total") == 1234.0
    assert counter_total(EXPOSITION, "leadflow_events_consumed_total") == 42.0
    assert counter_total(EXPOSITION, "leadflow_events_dead_lettered_total") == 0.0


def test_per_event_of_no_events_is_none() -> None:
    assert per_event(30, 10) == 3.0
    assert per_event(30, 0) is None


def test_search_bisects_between_the_measured_pass_and_fail() -> None:
    search = RateSearch(max_steps=3)
    for rate, passed in [(100, True), (200, False), (500, False)]:
        search.seed(rate, passed)
    assert search.next_rate() == 150
    search.record(150, True)
    assert search.next_rate() == 175
    search.record(175, False)
    assert search.next_rate() == 162
    search.record(162, True)
    assert search.next_rate() is None  # three steps taken
    assert (search.best, search.lowest_failed) == (162, 175)


def test_search_halves_down_to_its_floor_when_nothing_passed() -> None:
    search = RateSearch(max_steps=10, floor=20)
    search.seed(100, False)
    assert search.next_rate() == 50
    search.record(50, False)
    assert search.next_rate() == 25
    search.record(25, False)
    assert search.next_rate() is None
    assert search.best is None


def test_search_doubles_up_to_its_ceiling_when_everything_passed() -> None:
    search = RateSearch(max_steps=10, ceiling=700)
    search.seed(500, True)
    assert search.next_rate() == 700
    search.record(700, True)
    assert search.next_rate() is None
    assert search.best == 700


def test_search_starts_from_its_start_without_measurements() -> None:
    assert RateSearch(max_steps=2, start=80).next_rate() == 80


def test_search_stops_once_the_bracket_is_within_its_precision() -> None:
    search = RateSearch(max_steps=10, precision=0.1)
    search.seed(95, True)
    search.seed(100, False)
    assert search.next_rate() is None


def test_a_pass_above_a_failure_is_noise_not_the_best() -> None:
    search = RateSearch(max_steps=4)
    search.seed(100, False)
    search.seed(200, True)
    assert search.best is None
    assert search.next_rate() == 50


@given(capacity=st.floats(min_value=6, max_value=4000), start=st.sampled_from([50.0, 100.0]))
def test_search_brackets_the_capacity_of_a_system(capacity: float, start: float) -> None:
    search = RateSearch(max_steps=30, start=start, floor=5, ceiling=5000)
    while (rate := search.next_rate()) is not None:
        search.record(rate, rate <= capacity)
    best, failed = search.best, search.lowest_failed
    assert best is None or best <= capacity
    assert failed is None or failed > capacity
    if best is not None and failed is not None:
        assert failed - best <= max(0.1 * failed, 1)
