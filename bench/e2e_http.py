"""Signed webhooks posted to the intake over a pool of keep-alive HTTP/1.1 connections.

The bench drives hundreds of requests a second from a process that shares two cores with
the system it measures; a plain request over asyncio streams costs a fraction of a general
client's CPU, and the intake (uvicorn) always answers with a Content-Length. A refused
lead (429, 503) is sent again, with the same delivery id, after the `Retry-After` the
intake gave (at most 1 s), as a webhook sender would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field

from leadflow.settings import DEV_SECRETS
from leadflow.webhooks import sign

_RETRIED = {429, 500, 502, 503, 504}
_RETRY_CAP_S = 1.0
_ATTEMPTS = 20


class IntakeRefused(RuntimeError):
    """The intake answered something other than 202 and retrying would not change it."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(request)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the intake closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise ConnectionResetError("the intake answered without a Content-Length")
        body = await self.reader.readexactly(int(headers["content-length"]))
        return status, headers, body

    def close(self) -> None:
        self.writer.close()


@dataclass
class WebhookPoster:
    """Posts signed bodies to one intake source with at most `connections` in flight."""

    host: str
    port: int
    source: str = "web"
    connections: int = 64
    refusals: int = 0
    _idle: list[_Connection] = field(default_factory=list)
    _slots: asyncio.Semaphore | None = None

    async def post(self, body: bytes) -> None:
        """Post one lead until the intake accepts it (202); raises IntakeRefused otherwise."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.connections)
        msg_id = f"msg_{uuid.uuid4().hex}"
        async with self._slots:
            for _ in range(_ATTEMPTS):
                status, headers, answer = await self._send(self._request(msg_id, body))
                if status == 202:
                    return
                if status not in _RETRIED:
                    raise IntakeRefused(f"the intake answered {status}: {answer[:300]!r}")
                self.refusals += 1
                await asyncio.sleep(min(_RETRY_CAP_S, float(headers.get("retry-after", 0.5))))
        raise IntakeRefused(f"the intake refused a lead {_ATTEMPTS} times in a row")

    async def close(self) -> None:
        """Close every idle connection."""
        for connection in self._idle:
            connection.close()
        for connection in self._idle:
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
        self._idle.clear()

    def _request(self, msg_id: str, body: bytes) -> bytes:
        # Signed at each attempt: a retry after a long wait still carries a fresh timestamp.
        timestamp = int(time.time())
        signature = sign(DEV_SECRETS[self.source], msg_id, timestamp, body)
        head = (
            f"POST /v1/webhooks/{self.source} HTTP/1.1\r\n"
            f"host: {self.host}:{self.port}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"webhook-id: {msg_id}\r\n"
            f"webhook-timestamp: {timestamp}\r\n"
            f"webhook-signature: {signature}\r\n\r\n"
        )
        return head.encode() + body

    async def _send(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        # An idle connection the server closed meanwhile fails before any answer: the
        # request is sent again once on a new connection.
        for reuse in (True, False):
            connection = self._idle.pop() if reuse and self._idle else None
            if connection is None:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                connection = _Connection(reader, writer)
                reuse = False
            try:
                answer = await connection.exchange(request)
            except (ConnectionError, asyncio.IncompleteReadError):
                connection.close()
                if reuse:
                    continue
                raise
            if answer[1].get("connection", "").lower() == "close":
                connection.close()
            else:
                self._idle.append(connection)
            return answer
        raise ConnectionResetError("the intake closed every connection")
