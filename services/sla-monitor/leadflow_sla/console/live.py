"""Live updates of the Now page over Server-Sent Events.

The stream looks at the open windows every `TICK_S` (two indexed queries and a count) and
sends the board again (`event: board`, its HTML) only when what it shows changed: a lead
went overdue, was contacted, claimed or reassigned. So a breach or a contact reaches the
page within `TICK_S` of being stored; the countdowns in between are the script's, from the
due times the board carries. The pools are the router's: asked every `POOL_EVERY_S` on
the side, so that a slow router never holds the windows back.

The stream ends when the browser goes, when its session is signed out (on any SLA monitor)
or expires, checked every `SESSION_EVERY_S`, and when the server begins to shut down: a server
waits for its open responses before it stops, and a stream that never ends would hold a
SIGTERM for the whole graceful-shutdown timeout. The browser's EventSource reconnects by
itself (`retry:`), to whichever SLA monitor answers then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from leadflow_sla.console.board import Board, Pool

TICK_S = 0.5
POOL_EVERY_S = 2.0
# How often the stream checks that its viewer is still signed in: the session was checked
# once, when the stream opened, and a signed-out page must stop receiving the board.
SESSION_EVERY_S = 5.0
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
    windows: Callable[[], Awaitable[Board]],
    pools: Callable[[], Awaitable[list[Pool]]],
    render: Callable[[Board], str],
    disconnected: Callable[[], Awaitable[bool]],
    signed_in: Callable[[], Awaitable[bool]],
    stopping: Callable[[], bool] = lambda: False,
) -> AsyncIterator[str]:
    """Board events until the browser goes, the viewer is signed out or the server stops:
    `windows()` makes the board without its pools, `pools()` asks the router for them."""
    last: tuple[Any, ...] | None = None
    shown = await pools()
    asked_at = checked_at = time.monotonic()
    asking: asyncio.Task[list[Pool]] | None = None
    tick = 0
    yield "retry: 2000\n\n"
    try:
        while not stopping() and not await disconnected():
            if time.monotonic() - checked_at >= SESSION_EVERY_S:
                if not await signed_in():
                    break
                checked_at = time.monotonic()
            if asking is not None and asking.done():
                shown, asking = asking.result(), None
            if asking is None and time.monotonic() - asked_at >= POOL_EVERY_S:
                asking, asked_at = asyncio.ensure_future(pools()), time.monotonic()
            board = await windows()
            board.pools = shown
            now = signature(board)
            if now != last:
                last = now
                yield event("board", render(board))
            elif tick % KEEPALIVE_TICKS == 0:
                yield ": still here\n\n"
            tick += 1
            await asyncio.sleep(TICK_S)
    finally:
        if asking is not None:
            asking.cancel()
            with contextlib.suppress(BaseException):
                await asking
