"""A request's database session is closed when its route returns, before the body is sent."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from leadflow.runtime import SessionDep


def test_the_session_is_closed_before_the_response_body_is_sent() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def sessions() -> AsyncIterator[object]:
        events.append("opened")
        yield object()
        events.append("closed")

    app = FastAPI()
    app.state.runtime = SimpleNamespace(sessions=sessions)

    @app.get("/slow")
    async def slow(session: SessionDep) -> StreamingResponse:
        def body() -> Iterator[bytes]:
            events.append("sending")
            yield b"done"

        return StreamingResponse(body())

    with TestClient(app) as client:
        assert client.get("/slow").text == "done"
    # On SQLite the session's transaction holds the write lock: a slow client reading the
    # body must not keep it from the consumers.
    assert events == ["opened", "closed", "sending"]
