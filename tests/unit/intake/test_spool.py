"""The durable spool on a real file system: order, durability across reopen, damage, locking."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from leadflow_intake.spool import Spool, SpooledEvent, SpoolError


def event(i: int) -> SpooledEvent:
    return SpooledEvent("leads.received", f"lk_{i:024d}", f'{{"n": {i}}}'.encode())


def opened(directory: Path, segment_bytes: int = 16 * 1024 * 1024) -> Spool:
    spool = Spool(directory, segment_bytes)
    spool.open()
    return spool


def drain(spool: Spool, batch: int = 3) -> list[SpooledEvent]:
    out: list[SpooledEvent] = []
    while spool.depth:
        peeked = spool.peek(batch)
        out.extend(peeked.events)
        spool.commit(peeked)
    return out


def test_events_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = opened(tmp_path, segment_bytes=4096)
    for i in range(200):
        spool.append([event(i)])
    assert spool.depth == 200
    assert len(list(tmp_path.glob("*.seg"))) > 1

    assert drain(spool, batch=7) == [event(i) for i in range(200)]
    assert spool.depth == 0
    assert list(tmp_path.glob("*.seg")) == []


def test_what_was_not_relayed_survives_a_restart(tmp_path: Path) -> None:
    spool = opened(tmp_path, segment_bytes=4096)
    spool.append([event(i) for i in range(100)])
    spool.commit(spool.peek(40))
    spool.close()

    reopened = opened(tmp_path, segment_bytes=4096)
    assert reopened.depth == 60
    assert drain(reopened) == [event(i) for i in range(40, 100)]
    reopened.append([event(500)])
    assert drain(reopened) == [event(500)]


def test_a_torn_record_at_the_end_is_cut_off(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.append([event(1), event(2)])
    spool.close()
    [segment] = tmp_path.glob("*.seg")
    with segment.open("ab") as file:
        file.write(b"\x00\x00\x01\x00\xde\xad")  # a crash in the middle of an append

    reopened = opened(tmp_path)
    assert reopened.depth == 2
    reopened.append([event(3)])
    assert drain(reopened) == [event(1), event(2), event(3)]


def test_a_damaged_record_sets_the_rest_of_its_segment_aside(tmp_path: Path) -> None:
    spool = opened(tmp_path, segment_bytes=256)
    for i in range(6):
        spool.append([event(i)])
    spool.close()
    first = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[-3] ^= 0xFF  # flip a bit in the last record's payload
    first.write_bytes(bytes(data))

    reopened = opened(tmp_path, segment_bytes=256)
    survivors = drain(reopened)
    assert survivors[0] == event(0)
    assert len(survivors) == 5
    assert list(tmp_path.glob("*.seg.corrupt"))


def test_one_directory_belongs_to_one_process(tmp_path: Path) -> None:
    opened(tmp_path)
    with pytest.raises(SpoolError, match="used by another process"):
        opened(tmp_path)


def test_an_unwritable_directory_is_a_spool_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="cannot open"):
        opened(blocker / "spool")


def failing(error: int, calls: list[str] | None = None) -> Callable[..., Any]:
    """A stand-in for an `os` call that fails as a full or broken disk does."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        if calls is not None:
            calls.append("failed")
        raise OSError(error, os.strerror(error))

    return fail


def test_a_cursor_that_cannot_be_written_leaves_the_spool_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = opened(tmp_path, segment_bytes=4096)
    spool.append([event(i) for i in range(100)])
    batch = spool.peek(60)

    with monkeypatch.context() as disk:
        disk.setattr(os, "fsync", failing(errno.EIO))
        with pytest.raises(OSError, match="Input/output error"):
            spool.commit(batch)
    # Nothing moved: the same batch is pending, and committing it again works.
    assert spool.depth == 100
    assert spool.peek(60).events == batch.events
    spool.commit(batch)
    assert spool.depth == 40
    spool.close()

    reopened = opened(tmp_path, segment_bytes=4096)
    assert drain(reopened) == [event(i) for i in range(60, 100)]


def test_an_append_that_cannot_be_cut_back_is_followed_by_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = opened(tmp_path)
    spool.append([event(1)])
    real_write = os.write

    def torn(fd: int, data: bytes) -> int:
        # Half the records reach the disk, then it fails (and cannot be cut back).
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as disk:
        disk.setattr(os, "write", torn)
        disk.setattr(Path, "open", failing(errno.EIO))
        with pytest.raises(SpoolError, match="No space left"):
            spool.append([event(2), event(3)])
    spool.append([event(4)])

    assert len(list(tmp_path.glob("*.seg"))) == 2
    assert drain(spool) == [event(1), event(4)]
    spool.close()


def test_what_follows_a_torn_append_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = opened(tmp_path)
    spool.append([event(1)])
    real_write = os.write

    def torn(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data)[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as disk:
        disk.setattr(os, "write", torn)
        disk.setattr(Path, "open", failing(errno.EIO))
        with pytest.raises(SpoolError):
            spool.append([event(2)])
    spool.append([event(3)])
    spool.close()

    # The torn bytes were never answered 202: set aside, and nothing accepted is lost.
    reopened = opened(tmp_path)
    assert drain(reopened) == [event(1), event(3)]
    assert len(list(tmp_path.glob("*.seg.corrupt"))) == 1


def test_the_probe_says_whether_the_disk_writes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = opened(tmp_path)
    with monkeypatch.context() as disk:
        disk.setattr(os, "write", failing(errno.ENOSPC))
        with pytest.raises(SpoolError, match="No space left"):
            spool.probe()
    spool.probe()
    assert not (tmp_path / "probe").exists()


def test_the_probe_checks_the_segment_the_next_append_needs(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    (tmp_path / f"{0:012d}.seg").mkdir()  # what the first append would create
    with pytest.raises(SpoolError):
        spool.probe()
    with pytest.raises(SpoolError):
        spool.append([event(1)])


def test_forgetting_a_person_blanks_their_pending_records_in_place(tmp_path: Path) -> None:
    spool = opened(tmp_path, segment_bytes=200)
    gone = SpooledEvent("leads.received", "lk_erased", b'{"email": "zelda@quistorff.example"}')
    spool.append([event(1), gone])
    spool.append([event(2), gone, event(3)])
    relayed = spool.peek(1)
    spool.commit(relayed)  # event 1 is out already
    assert spool.forget({"lk_erased"}) == 2
    assert spool.forget({"lk_erased"}) == 0  # nothing of them is left
    assert not any(b"quistorff" in p.read_bytes() for p in tmp_path.glob("*.seg"))
    spool.close()

    # Positions and checksums hold: the spool reopens, and the blank records (no topic)
    # come out in their places, for the relay to leave out.
    again = opened(tmp_path, segment_bytes=200)
    assert again.depth == 4
    events = drain(again)
    assert [(e.topic, e.key) for e in events] == [
        ("", ""),
        ("leads.received", event(2).key),
        ("", ""),
        ("leads.received", event(3).key),
    ]
