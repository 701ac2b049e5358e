"""The supervisor restarts background work that fails, and says which work keeps failing."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from leadflow.supervisor import Supervisor


def restarts(service: str, task: str) -> float:
    value = REGISTRY.get_sample_value(
        "leadflow_task_restarts_total", {"service": service, "task": task}
    )
    return value or 0.0


async def until(condition: object, timeout_s: float = 5.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - polling state that has no event
            await asyncio.sleep(0.005)


async def test_a_task_that_raises_is_restarted_and_counted() -> None:
    runs: list[int] = []
    done = asyncio.Event()

    async def work() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise OSError("disk full")
        done.set()
        await asyncio.Event().wait()

    supervisor = Supervisor("svc-a", backoff_min_s=0.001, backoff_max_s=0.01)
    supervisor.spawn("relay", work)
    await asyncio.wait_for(done.wait(), 5)

    assert runs == [0, 1, 2]
    assert restarts("svc-a", "relay") == 2
    assert supervisor.running("relay")
    assert supervisor.failing() == {}  # two failures in a row: not yet reported
    await supervisor.stop()
    assert not supervisor.running("relay")


async def test_work_that_keeps_failing_is_reported_until_it_recovers() -> None:
    healthy = asyncio.Event()

    async def work() -> None:
        if not healthy.is_set():
            raise ConnectionRefusedError("Connect call failed")
        await asyncio.Event().wait()

    supervisor = Supervisor(
        "svc-b", failing_after=3, backoff_min_s=0.001, backoff_max_s=0.01, healthy_after_s=0.05
    )
    supervisor.spawn("timers", work)
    await until(lambda: "timers" in supervisor.failing())
    assert "ConnectionRefusedError" in supervisor.failing()["timers"]

    healthy.set()  # the next run stays up: after healthy_after_s it is no longer failing
    await until(lambda: supervisor.failing() == {})
    await supervisor.stop()


async def test_a_task_may_say_it_succeeded() -> None:
    supervisor = Supervisor("svc-c", failing_after=1, backoff_min_s=10, healthy_after_s=60)
    failed = asyncio.Event()

    async def work() -> None:
        failed.set()
        raise TimeoutError

    supervisor.spawn("lag", work)
    await asyncio.wait_for(failed.wait(), 5)
    await until(lambda: "lag" in supervisor.failing())
    supervisor.ok("lag")
    assert supervisor.failing() == {}
    await supervisor.stop()


async def test_finished_work_is_not_restarted_and_names_are_unique() -> None:
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1

    supervisor = Supervisor("svc-d")
    supervisor.spawn("connect", once)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.spawn("connect", once)
    await until(lambda: not supervisor.running("connect"))
    await asyncio.sleep(0.01)
    assert calls == 1
    await supervisor.stop()
