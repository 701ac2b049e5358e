"""Which due notifications a dispatcher claims in one round (pure)."""

from __future__ import annotations

from leadflow.notification_claims import pick


def test_pick_keeps_order_and_caps_each_target() -> None:
    due = [(1, "slow"), (2, "slow"), (3, "slow"), (4, "fast"), (5, "slow"), (6, "other")]
    assert pick(due, limit=10, per_target=2) == [1, 2, 4, 6]


def test_pick_stops_at_the_limit() -> None:
    due = [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert pick(due, limit=3, per_target=5) == [1, 2, 3]


def test_pick_of_nothing_or_no_room_is_nothing() -> None:
    assert pick([], limit=5, per_target=5) == []
    assert pick([(1, "a")], limit=0, per_target=5) == []
