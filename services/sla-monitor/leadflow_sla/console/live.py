"""Live updates of the Now page over Server-Sent Events.

The stream looks at the open windows every `TICK_S` (two indexed queries and a count) and
the pools every `POOL_EVERY` ticks, and sends the board again (`event: board`, its HTML)
only when what it shows changed: a lead went overdue, was contacted, claimed or
reassigned. So a breach or a contact reaches the page within `TICK_S` of being stored;
the countdowns in between are the script's, from the due times the board carries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from leadflow_sla.console.board import Board

TICK_S = 0.5
POOL_EVERY = 4
# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_TICKS = 30


def signature(board: Board) -> tuple[Any, ...]:
    """What the board shows, leaving out the times that tick (ages, countdowns)."""
    return (
        tuple((w.assignment_id, w.last_alert) for w in board.overdue),
        tuple((w.assignment_id, w.last_alert) for w in board.at_risk),
        tuple((r.team, r.rep_id, r.open, r.overdue) for r in board.reps),
        tuple(
            (p.team, p.problem, tuple(lead["assignment_id"] for lead in p.leads))
            for p in board.pools
        ),
    )


def event(name: str, html: str) -> str:
    """One SSE event whose data is `html` (one `data:` line per line)."""
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{lines}\n"


async def stream(
    build: Callable[[bool], Awaitable[Board]],
    render: Callable[[Board], str],
    disconnected: Callable[[], Awaitable[bool]],
    sleep: Callable[[float], Awaitable[None]],
) -> AsyncIterator[str]:
    """Board events until the browser goes; `build(with_pools)` makes the board."""
    last: tuple[Any, ...] | None = None
    pools: list[Any] = []
    tick = 0
    yield "retry: 2000\n\n"
    while not await disconnected():
        with_pools = tick % POOL_EVERY == 0
        board = await build(with_pools)
        if with_pools:
            pools = board.pools
        else:
            board.pools = pools
        now = signature(board)
        if now != last:
            last = now
            yield event("board", render(board))
        elif tick % KEEPALIVE_TICKS == 0:
            yield ": still here\n\n"
        tick += 1
        await sleep(TICK_S)
