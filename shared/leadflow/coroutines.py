"""Running a use case's coroutine without an event loop, when it never waits.

The services' use cases are written once, as coroutines over a store: on the database
they await statements, on an in-memory store they await nothing that suspends. Callers
that are not async (`leadflow simulate`) run the in-memory ones with `complete`.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def complete(work: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits, run without an event loop.

    A coroutine that awaits nothing that suspends ends at its first step: its result comes
    back directly, even from inside a running event loop. One that does wait is closed,
    and this raises.
    """
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise RuntimeError("the work waited for something; run it on an event loop instead.")
