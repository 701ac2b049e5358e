"""The bench's webhook poster against a real HTTP server on loopback: signed requests,
the same delivery id after a refusal, new connections after the server closed one."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bench.e2e_http import IntakeRefused, WebhookPoster
from leadflow.settings import DEV_SECRETS
from leadflow.webhooks import verify


class Intake:
    """Answers 429 to a delivery id's first attempt and 202 to the next, after checking
    the signature; closes each connection after `keep` answers; answers 400 to a body
    that says so."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.attempts: Counter[str] = Counter()
        self.accepted: list[bytes] = []
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        for _ in range(self.keep):
            request = await reader.readline()
            if not request:
                break
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers["content-length"]))
            msg_id, _ = verify(headers, body, [DEV_SECRETS["web"]], now=time.time(), tolerance_s=5)
            assert request.startswith(b"POST /v1/webhooks/web HTTP/1.1")
            self.attempts[msg_id] += 1
            if body == b'{"bad": true}':
                status, extra = "400 Bad Request", ""
            elif self.attempts[msg_id] == 1:
                status, extra = "429 Too Many Requests", "retry-after: 0\r\n"
            else:
                status, extra = "202 Accepted", ""
                self.accepted.append(body)
            answer = b'{"ok": true}'
            writer.write(
                f"HTTP/1.1 {status}\r\n{extra}content-length: {len(answer)}\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        writer.close()


@asynccontextmanager
async def intake(keep: int) -> AsyncIterator[tuple[Intake, int]]:
    """The server on a free loopback port."""
    handler = Intake(keep)
    server = await asyncio.start_server(handler.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield handler, port
    finally:
        server.close()
        await server.wait_closed()


async def test_every_lead_is_accepted_once_retried_with_its_delivery_id() -> None:
    async with intake(keep=3) as (server, port):
        poster = WebhookPoster("127.0.0.1", port, connections=4)
        bodies = [f'{{"n": {n}}}'.encode() for n in range(40)]
        await asyncio.gather(*(poster.post(body) for body in bodies))
        await poster.close()
    assert sorted(server.accepted) == sorted(bodies)
    assert set(server.attempts.values()) == {2}  # the retry carried the first delivery id
    assert poster.refusals == 40
    assert server.connections >= 80 / 3  # the server closed connections; the poster reopened


async def test_an_answer_a_retry_cannot_change_is_raised() -> None:
    async with intake(keep=10) as (server, port):
        poster = WebhookPoster("127.0.0.1", port)
        with pytest.raises(IntakeRefused, match="400"):
            await poster.post(b'{"bad": true}')
        await poster.close()
    assert server.accepted == []
