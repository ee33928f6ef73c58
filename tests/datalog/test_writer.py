"""Two-phase publication and recovery: the store's committed seq decides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fanout.datalog import DatalogWriter, iter_dir, oldest_names, read_file
from fanout.datalog.format import Record


def records(first: int, n: int) -> list[Record]:
    return [Record(s, "n1", s, 0, "update", "ingest", {}, (), f"{s}// a{{}} {s}\n".encode())
            for s in range(first, first + n)]


def test_prepare_is_invisible_until_published(tmp_path: Path) -> None:
    w = DatalogWriter(tmp_path, "n1")
    prep = w.prepare(records(1, 3))
    assert oldest_names(tmp_path, 10) == []
    w.publish(prep)
    path = tmp_path / prep.name
    assert oldest_names(tmp_path, 10) == [prep.name]
    assert [r.seq for r in read_file(path)] == [1, 2, 3]
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_recover_publishes_committed_and_discards_the_rest(tmp_path: Path) -> None:
    w = DatalogWriter(tmp_path, "n1")
    w.publish(w.prepare(records(1, 2)))
    committed = w.prepare(records(3, 2))  # the store committed up to 4, then a crash
    uncommitted = w.prepare(records(5, 1))  # prepared, never committed
    (tmp_path / ".tmp" / "garbage").write_bytes(b"partial")
    assert w.recover(committed_seq=4) == (1, 2)
    assert not committed.tmp_path.exists() and not uncommitted.tmp_path.exists()
    seqs = [r.seq for _, recs in iter_dir(tmp_path) for r in recs]
    assert seqs == [1, 2, 3, 4]
    assert w.newest_published_seq() == 3


def test_oldest_names_is_ordered_and_bounded(tmp_path: Path) -> None:
    for s in (5, 1, 3, 2, 4):
        (tmp_path / f"{s:020d}-n1.dlog").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored")
    assert oldest_names(tmp_path, 2) == [f"{1:020d}-n1.dlog", f"{2:020d}-n1.dlog"]
    assert oldest_names(tmp_path, 2, after=f"{3:020d}-n1.dlog") == [
        f"{4:020d}-n1.dlog", f"{5:020d}-n1.dlog"]


def test_full_disk_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fanout.errors import DiskFullError

    w = DatalogWriter(tmp_path, "n1")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError):
        w.prepare(records(1, 1))
    monkeypatch.undo()
    assert list((tmp_path / ".tmp").iterdir()) == []
