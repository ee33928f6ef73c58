"""What only the memory backend promises: last_seq is durable, data and marks are not."""

from __future__ import annotations

import errno
import os

import pytest

from fanout.errors import DiskFullError
from fanout.store import MemoryStore

from .util import fetch, rd, snapshot, upd


def test_last_seq_survives_reopen_data_and_marks_do_not(tmp_path):
    seq = tmp_path / "state" / "memory-store.seq"
    s = MemoryStore(seq)
    s.apply([upd("a", 3, rd(1, "x", 1))], 17)
    assert fetch(s) == ["1// x{} 1"]
    s.close()
    assert seq.read_text() == "17\n"
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.endswith(".tmp")]

    s = MemoryStore(seq)
    assert s.last_seq() == 17
    assert s.marks() == {}
    assert fetch(s) == []
    # An origin's mark restarts at 0: the same entry applies again.
    assert s.apply([upd("a", 3, rd(1, "x", 1))], 18)[0].status == "gap"
    assert s.last_seq() == 18


@pytest.mark.parametrize("target", ["fsync", "replace", "write"])
def test_failed_seq_write_changes_nothing(tmp_path, monkeypatch, target):
    seq = tmp_path / "memory-store.seq"
    s = MemoryStore(seq)
    s.apply([upd("a", 1, rd(1, "x", 1))], 5)
    before = snapshot(s)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, target, no_space)
        with pytest.raises(DiskFullError):
            s.apply([upd("a", 2, rd(2, "x", 2)), upd("b", 1, rd(1, "y", 1))], 6)
    assert snapshot(s) == before
    assert seq.read_text() == "5\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # Space freed: it works again.
    s.apply([upd("a", 2, rd(2, "x", 2))], 6)
    assert s.last_seq() == 6
    assert fetch(s) == ["1// x{} 1", "2// x{} 2"]
    assert MemoryStore(seq).last_seq() == 6


def test_failed_directory_fsync_restores_the_old_value(tmp_path, monkeypatch):
    seq = tmp_path / "memory-store.seq"
    s = MemoryStore(seq)
    s.apply([], 5)
    real_fsync = os.fsync
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:  # the directory's
            raise OSError(errno.EIO, "I/O error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as info:
        s.apply([upd("a", 1, rd(1, "x", 1))], 6)
    assert not isinstance(info.value, DiskFullError)
    assert s.last_seq() == 5
    assert seq.read_text() == "5\n"
    assert fetch(s) == []


def test_unchanged_last_seq_does_not_rewrite(tmp_path, monkeypatch):
    s = MemoryStore(tmp_path / "memory-store.seq")
    s.apply([], 2)
    monkeypatch.setattr(os, "fsync", lambda fd: pytest.fail("fsync"))
    s.apply([upd("a", 1, rd(1, "x", 1))], 2)
    assert fetch(s) == ["1// x{} 1"]


def test_corrupt_seq_file_is_refused(tmp_path):
    seq = tmp_path / "memory-store.seq"
    seq.write_text("garbage\n")
    with pytest.raises(ValueError, match=r"memory-store\.seq"):
        MemoryStore(seq)
