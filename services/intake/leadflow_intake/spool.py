"""A durable local spool: events the broker could not take in time, kept in order on disk.

Records are appended to segment files (`<number>.seg`) and fsync'd before the webhook is
answered. Each record is `length (4 bytes) | CRC-32 (4 bytes) | payload`, the payload being
`topic length (2) | topic | key length (2) | key | value`, or, when the event carries the
webhook's trace context, `topic length | 0x8000 (2) | topic | key length (2) | key |
traceparent length (2) | traceparent | value` (a topic is never 32 KiB long, so the high
bit is free, and records written before trace contexts were kept still read alike).

A `cursor` file (replaced atomically, fsync'd) says how far the relay has got; segments
wholly behind it are deleted. On open, a torn record at the end of the last segment (a
crash mid-append, never answered 202) is cut off; a bad record anywhere else is
corruption, and the rest of that segment is set aside as `<number>.seg.corrupt` with an
error log.

One spool belongs to one intake process: an exclusive lock on `spool.lock` refuses a
second one on the same directory.

Forgetting a person (`forget`, a privacy erasure) blanks their pending records in place: a
blank record keeps its length (positions stay valid) and is checksummed again, its payload
an empty topic, an empty key and zeros; the relay skips it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
_SHORT = struct.Struct(">H")
# Set in a record's topic length when a trace context follows its key.
_TRACED = 0x8000
MAX_RECORD_BYTES = 64 * 1024 * 1024


class SpoolError(Exception):
    """The spool cannot store events (disk full, read-only, locked by another process)."""


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """The oldest pending events, and where each ends (segment, offset) for the cursor."""

    events: list[SpooledEvent]
    positions: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    """One message waiting for the broker: topic, key, value and the W3C trace context of
    the webhook it came with (its `traceparent` header, leadflow.tracing)."""

    topic: str
    key: str
    value: bytes
    traceparent: str | None = None


def encode(event: SpooledEvent) -> bytes:
    """The record of an event, header included."""
    topic, key = event.topic.encode(), event.key.encode()
    if event.traceparent is None:
        head = _SHORT.pack(len(topic)) + topic + _SHORT.pack(len(key)) + key
    else:
        trace = event.traceparent.encode()
        head = (
            _SHORT.pack(len(topic) | _TRACED)
            + topic
            + _SHORT.pack(len(key))
            + key
            + _SHORT.pack(len(trace))
            + trace
        )
    payload = head + event.value
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> SpooledEvent:
    """The event of a record's payload (its checksum already verified)."""
    (topic_len,) = _SHORT.unpack_from(payload, 0)
    traced, topic_len = topic_len & _TRACED, topic_len & ~_TRACED
    topic = payload[2 : 2 + topic_len].decode()
    offset = 2 + topic_len
    (key_len,) = _SHORT.unpack_from(payload, offset)
    key = payload[offset + 2 : offset + 2 + key_len].decode()
    offset += 2 + key_len
    traceparent = None
    if traced:
        (trace_len,) = _SHORT.unpack_from(payload, offset)
        traceparent = payload[offset + 2 : offset + 2 + trace_len].decode()
        offset += 2 + trace_len
    return SpooledEvent(topic, key, payload[offset:], traceparent)


def _read_records(data: bytes, start: int) -> tuple[list[tuple[int, bytes]], int, bool]:
    """Valid records from `start`: (end offset, payload) pairs, where they stop, and whether
    the bytes after that are damaged (rather than simply absent)."""
    records: list[tuple[int, bytes]] = []
    offset = start
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            return records, offset, True
        length, checksum = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        if length > MAX_RECORD_BYTES or end > len(data):
            return records, offset, True
        payload = data[offset + _HEADER.size : end]
        if zlib.crc32(payload) != checksum:
            return records, offset, True
        records.append((end, payload))
        offset = end
    return records, offset, False


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Segment files of length-prefixed, checksummed records, appended and relayed in order.

    Methods block on disk IO; call them from a worker thread (`asyncio.to_thread`).
    """

    def __init__(self, directory: Path, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._segments: list[int] = []
        self._cursor = (0, 0)
        self._sizes: dict[int, int] = {}
        self._pending: list[int] = []  # records per segment still to relay, by segment order
        # A failed append that could not be cut back leaves bytes past the last good record:
        # the next append starts a new segment rather than write behind them.
        self._cut_failed = False
        self.depth = 0
        self.bytes = 0

    def open(self) -> None:
        """Take the directory's lock, recover what a crash left, and count what is pending."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / "spool.lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SpoolError(
                f"the spool directory {self.directory} is used by another process."
            ) from exc
        except OSError as exc:
            raise SpoolError(
                f"cannot open the spool directory {self.directory}: {exc.strerror}."
            ) from exc
        with self._lock:
            self._segments = sorted(
                int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit()
            )
            self._cursor = self._read_cursor()
            for number in [n for n in self._segments if n < self._cursor[0]]:
                self._path(number).unlink()  # relayed before a crash, not yet deleted
            self._segments = [n for n in self._segments if n >= self._cursor[0]]
            self._recover()

    def close(self) -> None:
        """Release the directory's lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:012d}.seg"

    def _read_cursor(self) -> tuple[int, int]:
        try:
            segment, offset = (self.directory / "cursor").read_text().split()
            return int(segment), int(offset)
        except (OSError, ValueError):
            return (self._segments[0], 0) if self._segments else (0, 0)

    def _recover(self) -> None:
        self._pending = []
        self._sizes = {}
        for index, number in enumerate(self._segments):
            path = self._path(number)
            data = path.read_bytes()
            start = self._cursor[1] if number == self._cursor[0] else 0
            records, stop, damaged = _read_records(data, min(start, len(data)))
            if damaged:
                last = index == len(self._segments) - 1
                self._set_aside(path, data, stop, torn_tail=last)
            self._sizes[number] = stop
            self._pending.append(len(records))
        self.depth = sum(self._pending)
        self.bytes = sum(self._sizes.values())

    def _set_aside(self, path: Path, data: bytes, stop: int, *, torn_tail: bool) -> None:
        if not torn_tail:
            log.error(
                "spool segment is damaged; its remaining records are set aside",
                extra={"segment": path.name, "offset": stop},
            )
            path.with_suffix(".seg.corrupt").write_bytes(data[stop:])
        else:
            log.warning("spool: cut a torn record at the end", extra={"segment": path.name})
        with path.open("r+b") as file:
            file.truncate(stop)
            file.flush()
            os.fsync(file.fileno())

    def append(self, events: Sequence[SpooledEvent]) -> None:
        """Write events at the end, in order, and fsync before returning."""
        data = b"".join(encode(event) for event in events)
        with self._lock:
            try:
                if (
                    self._cut_failed
                    or not self._segments
                    or self._sizes[self._segments[-1]] >= self.segment_bytes
                ):
                    self._new_segment()
                    self._cut_failed = False
                number = self._segments[-1]
                fd = os.open(self._path(number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    written = os.write(fd, data)
                    if written != len(data):
                        raise OSError(28, "short write")
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self._truncate_partial()
                raise SpoolError(f"cannot write to the spool: {exc.strerror or exc}.") from exc
            self._sizes[number] += len(data)
            self._pending[-1] += len(events)
            self.depth += len(events)
            self.bytes += len(data)

    def _truncate_partial(self) -> None:
        """After a failed append, cut what it may have left past the last good record."""
        if not self._segments:
            return
        number = self._segments[-1]
        try:
            with self._path(number).open("r+b") as file:
                file.truncate(self._sizes[number])
        except OSError:
            self._cut_failed = True
            log.exception("spool: cannot cut a failed append", extra={"segment": number})

    def _new_segment(self) -> None:
        number = self._segments[-1] + 1 if self._segments else self._cursor[0]
        self._path(number).touch(mode=0o600)
        _fsync_dir(self.directory)
        self._segments.append(number)
        self._sizes[number] = 0
        self._pending.append(0)

    def peek(self, limit: int) -> SpoolBatch:
        """Up to `limit` of the oldest events not yet relayed, in order."""
        with self._lock:
            batch = SpoolBatch([], [])
            segment, offset = self._cursor
            for number in self._segments:
                if len(batch.events) >= limit:
                    break
                position = offset if number == segment else 0
                with self._path(number).open("rb") as file:
                    file.seek(position)
                    while len(batch.events) < limit and position < self._sizes[number]:
                        length, _ = _HEADER.unpack(file.read(_HEADER.size))
                        batch.events.append(decode(file.read(length)))
                        position += _HEADER.size + length
                        batch.positions.append((number, position))
            return batch

    def commit(self, batch: SpoolBatch) -> None:
        """Mark a peeked batch as relayed (durably), dropping the segments it finished.

        The new cursor is written first and the state changed only once it is on disk: a
        write that fails (OSError) leaves the spool as it was, and the commit can be retried.
        """
        if not batch.events:
            return
        with self._lock:
            cursor = batch.positions[-1]
            depth = self.depth - len(batch.events)
            index = self._segments.index(cursor[0])
            done = index  # segments wholly behind the cursor
            number, offset = cursor
            if offset >= self._sizes[number] and (index < len(self._segments) - 1 or depth == 0):
                done = index + 1
                following = self._segments[done] if done < len(self._segments) else number + 1
                cursor = (following, 0)
            # The cursor moves past a segment before the segment is deleted.
            self._write_cursor(cursor)
            for segment, _ in batch.positions:
                self._pending[self._segments.index(segment)] -= 1
            self.depth = depth
            self._cursor = cursor
            finished = [self._drop_first() for _ in range(done)]
        for segment in finished:
            try:
                self._path(segment).unlink(missing_ok=True)
            except OSError:
                # Behind the cursor: the next open deletes it.
                log.warning("spool: cannot delete a relayed segment", extra={"segment": segment})

    def probe(self) -> None:
        """Check that the next append could write: its segment opens for appending and a
        block can be written and synced in the directory; raises SpoolError."""
        with self._lock:
            if (
                self._cut_failed
                or not self._segments
                or (self._sizes[self._segments[-1]] >= self.segment_bytes)
            ):
                target = self._path(self._segments[-1] + 1 if self._segments else self._cursor[0])
            else:
                target = self._path(self._segments[-1])
        probe = self.directory / "probe"
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if os.write(fd, bytes(4096)) != 4096:
                    raise OSError(28, "short write")
                os.fsync(fd)
            finally:
                os.close(fd)
            probe.unlink()
        except OSError as exc:
            raise SpoolError(f"the spool cannot write yet: {exc.strerror or exc}.") from exc

    def forget(self, keys: Collection[str]) -> int:
        """Blank every pending record keyed by one of `keys` (an erased person's), durably;
        how many. A batch the relay peeked before may still publish its copy, which the
        consumers drop as an event from before the erasure."""
        wanted = set(keys)
        forgotten = 0
        with self._lock:
            segment, offset = self._cursor
            for number in self._segments:
                start = offset if number == segment else 0
                with self._path(number).open("r+b") as file:
                    file.seek(start)
                    records, _, _ = _read_records(file.read(self._sizes[number] - start), 0)
                    position = start
                    blanked = 0
                    for end, payload in records:
                        if decode(payload).key in wanted:
                            blank = _SHORT.pack(0) * 2 + bytes(len(payload) - 2 * _SHORT.size)
                            file.seek(position)
                            file.write(_HEADER.pack(len(blank), zlib.crc32(blank)) + blank)
                            blanked += 1
                        position = start + end
                    if blanked:
                        file.flush()
                        os.fsync(file.fileno())
                forgotten += blanked
        return forgotten

    def _drop_first(self) -> int:
        number = self._segments.pop(0)
        self._pending.pop(0)
        self.bytes -= self._sizes.pop(number)
        return number

    def _write_cursor(self, cursor: tuple[int, int]) -> None:
        temporary = self.directory / "cursor.tmp"
        with temporary.open("w") as file:
            file.write(f"{cursor[0]} {cursor[1]}\n")
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self.directory / "cursor")
        _fsync_dir(self.directory)
