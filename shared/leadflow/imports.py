"""`leadflow import FILE`: canonical leads from a CSV or JSONL file, posted to a bulk source.

Each row becomes the body a `standard` source takes (`{"event": "lead", "activity": ...,
"lead": {...}}`), signed with the source's secret and posted to a running intake, which
validates it like any webhook: a bad row is refused with the intake's own error.

- JSONL: one JSON object per line, the lead's fields plus an optional `activity`; a row
  is a line (blank lines are skipped but counted).
- CSV: a header naming lead fields, dotted for nested ones (`company.name`, `utm.source`),
  plus an optional `activity` column; empty cells are left out; row 1 is the first row
  under the header.

The delivery id derives from the source and the row's content, so importing a file again
delivers the same events again, and every consumer's inbox drops them as duplicates.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from leadflow.webhooks import sign

CONCURRENCY = 16
MAX_ATTEMPTS = 8
MAX_BACKOFF_S = 5.0
# Statuses after which the same delivery is sent again: the intake could not keep it now.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Statuses that no row can get past (a wrong secret or source): the import stops.
FATAL_STATUSES = frozenset({401, 403, 404, 415})


class ImportFileError(Exception):
    """The file cannot be imported at all; the message says why."""


@dataclass(frozen=True)
class Row:
    """One row of the file: the body to post, or why it is not one."""

    number: int
    body: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class ImportSummary:
    """What the intake made of an import."""

    accepted: int = 0
    redeliveries: int = 0
    refused: dict[int, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Rows seen, accepted or refused."""
        return self.accepted + len(self.refused)


def read_rows(path: Path) -> list[Row]:
    """The rows of a `.csv` or `.jsonl` file; raises ImportFileError when it has none."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ImportFileError(f"{path.name} is neither a .csv nor a .jsonl file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path.name} cannot be read: {exc}.") from exc
    rows = list(_csv_rows(text, path.name) if suffix == ".csv" else _jsonl_rows(text))
    if not rows:
        raise ImportFileError(f"{path.name} holds no rows to import.")
    return rows


def _jsonl_rows(text: str) -> Iterator[Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Row(number, error="The line is not valid JSON.")
            continue
        if not isinstance(value, dict):
            yield Row(number, error="The line is not a JSON object of lead fields.")
            continue
        yield Row(number, body=_body(value))


def _csv_rows(text: str, name: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ImportFileError(f"{name} has no header row naming the lead fields.")
    columns = [h.strip() for h in header]
    missing = [str(i) for i, c in enumerate(columns, start=1) if not c]
    if missing:
        raise ImportFileError(f"{name}: header column(s) {', '.join(missing)} have no name.")
    for number, cells in enumerate(reader, start=1):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(columns):
            yield Row(
                number, error=f"The row has {len(cells)} cells; the header names {len(columns)}."
            )
            continue
        fields: dict[str, Any] = {}
        for column, cell in zip(columns, cells, strict=False):
            if cell.strip():
                _put(fields, column.split("."), cell.strip())
        yield Row(number, body=_body(fields))


def _put(target: dict[str, Any], path: list[str], value: str) -> None:
    for step in path[:-1]:
        nested = target.setdefault(step, {})
        if not isinstance(nested, dict):  # `company` and `company.name` both given
            nested = target[step] = {}
        target = nested
    target[path[-1]] = value


def _body(fields: dict[str, Any]) -> dict[str, Any]:
    """The `standard` source's body for a row's fields."""
    lead = dict(fields)
    body: dict[str, Any] = {"event": "lead"}
    if "activity" in lead:
        body["activity"] = lead.pop("activity")
    body["lead"] = lead
    return body


def encode(body: dict[str, Any]) -> bytes:
    """A body as the bytes posted (keys sorted, so equal rows post equal bytes)."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def delivery_id(source: str, raw: bytes) -> str:
    """The row's delivery id: the same for the same content posted to the same source."""
    return "imp_" + hashlib.sha256(source.encode() + b"\0" + raw).hexdigest()[:32]


def refusal(response: httpx.Response) -> str:
    """The intake's error as one sentence (its detail, then each field's message)."""
    try:
        problem = response.json()
    except ValueError:
        return f"The intake answered {response.status_code}."
    if not isinstance(problem, dict):
        return f"The intake answered {response.status_code}."
    detail = str(problem.get("detail") or f"The intake answered {response.status_code}.")
    errors = problem.get("errors") or []
    fields = "; ".join(
        f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict)
    )
    return f"{detail} ({fields})" if fields else detail


class Importer:
    """Posts rows to one source of a running intake, a few at a time."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        source: str,
        secret: str,
        *,
        concurrency: int = CONCURRENCY,
        retry_s: float = 0.5,
    ) -> None:
        self._client = client
        self._url = f"{url.rstrip('/')}/v1/webhooks/{source}"
        self._source = source
        self._secret = secret
        self._concurrency = concurrency
        self._retry_s = retry_s

    async def run(self, rows: list[Row], advance: Callable[[], None]) -> ImportSummary:
        """Post every row; `advance` is called once per row done. Raises ImportFileError
        when no row can get through (unknown source, wrong secret), and the last
        `httpx.TransportError` when every attempt at a row failed to reach the intake."""
        summary = ImportSummary()
        queue: asyncio.Queue[Row] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        fatal: list[ImportFileError | httpx.TransportError] = []

        async def worker() -> None:
            while not queue.empty() and not fatal:
                row = queue.get_nowait()
                try:
                    await self._one(row, summary)
                except (ImportFileError, httpx.TransportError) as exc:
                    fatal.append(exc)
                    return
                advance()

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self._concurrency, len(rows))):
                group.create_task(worker())
        if fatal:
            raise fatal[0]
        return summary

    async def _one(self, row: Row, summary: ImportSummary) -> None:
        if row.body is None:
            summary.refused[row.number] = row.error or "The row is not a lead."
            return
        raw = encode(row.body)
        msg_id = delivery_id(self._source, raw)
        reason = ""
        response: httpx.Response | None = None
        unreachable: httpx.TransportError | None = None
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                summary.redeliveries += 1
            try:
                response = await self._post(msg_id, raw)
            except httpx.TransportError as exc:
                unreachable = exc
                reason = f"The intake at {self._url} could not be reached ({type(exc).__name__})."
                await asyncio.sleep(self._backoff(attempt))
                continue
            if response.is_success:
                summary.accepted += 1
                return
            reason = refusal(response)
            if response.status_code in FATAL_STATUSES:
                raise ImportFileError(f"The intake refused source {self._source!r}: {reason}")
            if response.status_code not in RETRY_STATUSES:
                summary.refused[row.number] = reason
                return
            wait = response.headers.get("retry-after", "")
            await asyncio.sleep(float(wait) if wait.isdigit() else self._backoff(attempt))
        if response is None and unreachable is not None:
            # Not one attempt reached the intake: no other row will; the caller says where.
            raise unreachable
        summary.refused[row.number] = f"{reason} Gave up after {MAX_ATTEMPTS} attempts."

    def _backoff(self, attempt: int) -> float:
        return float(min(self._retry_s * 2**attempt, MAX_BACKOFF_S))

    async def _post(self, msg_id: str, raw: bytes) -> httpx.Response:
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._secret, msg_id, timestamp, raw),
        }
        return await self._client.post(self._url, content=raw, headers=headers)
