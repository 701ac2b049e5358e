"""The near horizon: what is kept in memory, when the scheduler wakes, what it fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadflow_sla.scheduler import TimerScheduler

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class Timers:
    """A stand-in for the timer rows: due times, and the ones fired."""

    def __init__(self, *offsets_s: float) -> None:
        self.open = sorted(T0 + timedelta(seconds=s) for s in offsets_s)
        self.fired: list[datetime] = []
        self.loads: list[tuple[datetime, int]] = []

    async def load(self, until: datetime, limit: int) -> list[datetime]:
        self.loads.append((until, limit))
        return [d for d in self.open if d <= until][:limit]

    async def fire(self, now: datetime) -> int:
        due = [d for d in self.open if d <= now][:2]  # batches of two
        for d in due:
            self.open.remove(d)
            self.fired.append(d)
        return len(due)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def test_only_the_horizon_is_kept_in_memory_and_the_next_due_time_wakes_it() -> None:
    timers = Timers(5, 30, 59, 61, 3600)
    clock = Clock()
    scheduler = TimerScheduler(horizon_s=60, clock=clock)

    assert await scheduler.step(timers.load, timers.fire) == 0

    assert scheduler.loaded
    assert scheduler.in_memory == 3
    assert timers.loads == [(T0 + timedelta(seconds=60), 10_000)]
    assert scheduler.seconds_to_next() == 5.0


async def test_due_timers_fire_in_batches_until_none_is_left() -> None:
    timers = Timers(-10, -5, -1, 0, 20)  # a backlog from while the process was down
    clock = Clock()
    scheduler = TimerScheduler(horizon_s=60, clock=clock)

    assert await scheduler.step(timers.load, timers.fire) == 4

    assert timers.open == [T0 + timedelta(seconds=20)]
    assert scheduler.seconds_to_next() == 20.0
    clock.now = T0 + timedelta(seconds=20)
    assert await scheduler.step(timers.load, timers.fire) == 1


async def test_the_horizon_is_reloaded_when_it_runs_out() -> None:
    timers = Timers(90)
    clock = Clock()
    scheduler = TimerScheduler(horizon_s=60, clock=clock)
    await scheduler.step(timers.load, timers.fire)
    assert scheduler.in_memory == 0
    assert scheduler.seconds_to_next() == 60.0

    clock.now = T0 + timedelta(seconds=60)
    await scheduler.step(timers.load, timers.fire)

    assert len(timers.loads) == 2
    assert scheduler.in_memory == 1
    assert scheduler.seconds_to_next() == 30.0


async def test_a_full_horizon_is_cut_at_its_last_timer() -> None:
    timers = Timers(*range(1, 50))
    clock = Clock()
    scheduler = TimerScheduler(horizon_s=60, horizon_max=10, clock=clock)

    await scheduler.step(timers.load, timers.fire)

    assert scheduler.in_memory == 10
    clock.now = T0 + timedelta(seconds=10)
    assert await scheduler.step(timers.load, timers.fire) == 10  # reloaded, then fired
    assert timers.fired[-1] == T0 + timedelta(seconds=10)
    assert len(timers.loads) == 2


async def test_hints_count_only_after_the_transaction_ends() -> None:
    timers = Timers()
    clock = Clock()
    scheduler = TimerScheduler(horizon_s=60, clock=clock)
    await scheduler.step(timers.load, timers.fire)

    scheduler.hint(T0 + timedelta(seconds=3))
    scheduler.hint(T0 + timedelta(seconds=600))  # beyond the horizon: loaded later
    assert scheduler.in_memory == 0
    scheduler.flush_hints()

    assert scheduler.in_memory == 1
    assert scheduler.seconds_to_next() == 3.0


async def test_hints_before_the_first_load_are_dropped_the_load_covers_them() -> None:
    scheduler = TimerScheduler(horizon_s=60, clock=Clock())

    scheduler.hint(T0)
    scheduler.flush_hints()

    assert scheduler.in_memory == 0
    assert not scheduler.loaded
    assert scheduler.seconds_to_next() == 0.0
