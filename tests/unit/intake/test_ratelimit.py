"""Token buckets per source and per key: budgets, refill, all-or-nothing, bounded memory."""

from __future__ import annotations

import pytest

from leadflow_intake.ratelimit import KeyedLimit, retry_after


def test_a_key_gets_its_burst_then_waits_for_the_refill() -> None:
    limit = KeyedLimit(per_second=0.5, burst=3, max_keys=10)
    assert [limit.take("ana", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.take("ana", 100.0) == pytest.approx(2.0)
    assert limit.take("bob", 100.0) == 0.0  # another key has its own budget
    assert limit.wait("ana", 101.0) == pytest.approx(1.0)
    assert limit.take("ana", 102.0) == 0.0
    assert limit.take("ana", 102.0) == pytest.approx(2.0)


def test_an_idle_key_is_full_again_and_never_over_its_burst() -> None:
    limit = KeyedLimit(per_second=1.0, burst=2, max_keys=10)
    limit.take("ana", 0.0)
    limit.take("ana", 0.0)
    assert limit.take("ana", 3600.0) == 0.0
    assert limit.take("ana", 3600.0) == 0.0
    assert limit.take("ana", 3600.0) > 0


def test_take_all_takes_nothing_unless_every_key_has_a_token() -> None:
    limit = KeyedLimit(per_second=1.0, burst=1, max_keys=10)
    limit.take("spent", 0.0)
    assert limit.take_all(["fresh", "spent"], 0.0) == {"spent": pytest.approx(1.0)}
    assert limit.wait("fresh", 0.0) == 0.0  # not charged for the refused delivery
    assert limit.take_all(["fresh", "fresh"], 0.0) == {}  # one token per key per delivery
    assert limit.wait("fresh", 0.0) > 0


def test_memory_is_bounded_by_evicting_the_least_recently_used() -> None:
    limit = KeyedLimit(per_second=0.001, burst=1, max_keys=3)
    for key in ("a", "b", "c"):
        limit.take(key, 0.0)
    limit.take("a", 1.0)  # a is used again: b is now the oldest
    limit.take("d", 2.0)

    assert len(limit) == 3
    assert limit.wait("b", 2.0) == 0.0  # forgotten: a full bucket again
    assert limit.wait("a", 2.0) > 0
    assert limit.wait("c", 2.0) > 0
    for i in range(10_000):
        limit.take(f"key{i}", 3.0)
    assert len(limit) == 3


@pytest.mark.parametrize(("wait", "header"), [(0.0, 0), (0.01, 1), (1.0, 1), (1.2, 2), (59.5, 60)])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: int) -> None:
    assert retry_after(wait) == header
