"""The Now page's live stream: it ends once its viewer is signed out, wherever that was."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from leadflow_sla.console import live
from leadflow_sla.console.board import Board, Pool

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def test_the_stream_ends_once_the_viewer_is_signed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "TICK_S", 0.0)
    monkeypatch.setattr(live, "SESSION_EVERY_S", 0.0)
    checks: list[bool] = []

    async def windows() -> Board:
        return Board(now=T0, teams=["enterprise"], sees_windows=True)

    async def pools() -> list[Pool]:
        return []

    async def connected_still() -> bool:
        return False

    async def signed_in() -> bool:
        # Signed in for the first three checks, then signed out (on any monitor).
        checks.append(len(checks) < 3)
        return checks[-1]

    stream = live.stream(windows, pools, lambda board: "<board>", connected_still, signed_in)
    async with asyncio.timeout(5):
        sent = [chunk async for chunk in stream]
    assert checks == [True, True, True, False]
    assert sent[0].startswith("retry:")
    assert sum(chunk.startswith("event: board") for chunk in sent) == 1  # sent once, unchanged


async def test_a_signed_in_viewer_is_asked_about_once_every_few_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "TICK_S", 0.0)
    ticks = 0
    checks = 0

    async def windows() -> Board:
        nonlocal ticks
        ticks += 1
        return Board(now=T0, teams=["enterprise"], sees_windows=True)

    async def pools() -> list[Pool]:
        return []

    async def gone_after_a_while() -> bool:
        return ticks >= 50

    async def signed_in() -> bool:
        nonlocal checks
        checks += 1
        return True

    stream = live.stream(windows, pools, lambda board: "<board>", gone_after_a_while, signed_in)
    async with asyncio.timeout(5):
        [_ async for _ in stream]
    assert ticks == 50
    assert checks == 0  # 50 instant ticks are well within SESSION_EVERY_S
