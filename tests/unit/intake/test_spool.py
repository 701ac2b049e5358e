"""The durable spool on a real file system: order, durability across reopen, damage, locking."""

from __future__ import annotations

from pathlib import Path

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
