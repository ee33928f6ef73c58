"""What only the sqlite backend promises: everything is durable, and a full disk is
survivable."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from fanout.errors import DiskFullError
from fanout.gts.model import MetaLine
from fanout.store import Outcome, SqliteStore
from fanout.store._common import disk_full

from .util import delete, fetch, labels, meta, rd, snapshot, upd


def test_creates_parent_directories_and_uses_wal_full(tmp_path):
    path = tmp_path / "x" / "y" / "store.sqlite"
    s = SqliteStore(path)
    try:
        assert path.exists()
        conn = s._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        s.close()
    s.close()  # idempotent


def test_everything_survives_close_and_reopen(tmp_path):
    path = tmp_path / "store.sqlite"
    s = SqliteStore(path)
    s.apply(
        [
            upd(
                "a",
                1,
                rd(1, "cpu", 1.5, labels(h="1"), lat=1.0, lon=2.0, elev=3),
                rd(2, "x", True),
            ),
            upd("b", 4, rd(3, "x", "s")),
            meta("a", 2, MetaLine("cpu", labels(h="1"), labels(unit="%"))),
            upd("a", 3, rd(1, "gone", 1)),
            delete("a", 4, "gone{}", None, None),
        ],
        42,
    )
    before = snapshot(s)
    s.close()

    s = SqliteStore(path)
    try:
        assert snapshot(s) == before
        assert s.marks() == {"a": 4, "b": 4}
        assert s.last_seq() == 42
        # The reloaded caches know the existing series: no duplicate series, meta works.
        out = s.apply(
            [
                upd("a", 4, rd(9, "cpu", 0, labels(h="1"))),  # duplicate
                upd("a", 5, rd(9, "cpu", 9, labels(h="1"))),
                meta("a", 6, MetaLine("cpu", labels(h="1"), labels(z="1")), delta=True),
            ],
            43,
        )
        assert [o.status for o in out] == ["duplicate", "applied", "applied"]
        assert fetch(s, "cpu{}", showattr=True) == [
            "1/1.0:2.0/3 cpu{h=1}{unit=%25,z=1} 1.5",
            "9// cpu{h=1}{unit=%25,z=1} 9",
        ]
        assert s._conn.execute("SELECT count(*) FROM series").fetchone()[0] == 2
    finally:
        s.close()


def test_disk_full_changes_nothing_and_store_recovers(tmp_path):
    s = SqliteStore(tmp_path / "store.sqlite")
    try:
        s.apply([upd("a", 1, rd(1, "x", 1))], 1)
        before = snapshot(s)
        pages = s._conn.execute("PRAGMA page_count").fetchone()[0]
        # SQLITE_FULL ("database or disk is full") without filling a real disk.
        s._conn.execute(f"PRAGMA max_page_count={pages + 2}")
        big = [rd(ts, f"s{ts % 50}", "x" * 200) for ts in range(5000)]
        with pytest.raises(DiskFullError):
            s.apply([upd("a", 2, rd(2, "x", 2)), upd("a", 3, *big)], 3)
        assert snapshot(s) == before
        # Space freed: the same write now goes through.
        s._conn.execute("PRAGMA max_page_count=1073741823")
        out = s.apply([upd("a", 2, rd(2, "x", 2)), upd("a", 3, *big)], 3)
        assert out == [Outcome("applied"), Outcome("applied")]
        assert len(fetch(s)) == 5002
        assert s.last_seq() == 3
    finally:
        s.close()


def test_disk_full_mapping():
    assert isinstance(disk_full(OSError(errno.ENOSPC, "x")), DiskFullError)
    assert isinstance(disk_full(OSError(errno.EDQUOT, "x")), DiskFullError)
    assert disk_full(OSError(errno.EIO, "x")) is None
    full = sqlite3.OperationalError("database or disk is full")
    assert isinstance(disk_full(full), DiskFullError)
    assert disk_full(sqlite3.OperationalError("no such table")) is None
    assert disk_full(ValueError("x")) is None


def test_uncommitted_writes_are_invisible_to_readers(tmp_path):
    s = SqliteStore(tmp_path / "store.sqlite")
    try:
        s.apply([upd("a", 1, rd(1, "x", 1))], 1)
        s._conn.execute("BEGIN IMMEDIATE")
        s._conn.execute("INSERT INTO points VALUES (1, 2, NULL, NULL, NULL, 1, 2)")
        assert fetch(s) == ["1// x{} 1"]  # a reader is not blocked by the open write
        s._conn.execute("ROLLBACK")
    finally:
        s.close()


def test_fetch_after_close_raises(tmp_path):
    s = SqliteStore(tmp_path / "store.sqlite")
    s.close()
    with pytest.raises(RuntimeError):
        fetch(s)
    with pytest.raises(RuntimeError):
        s.apply([], 1)


def test_acknowledged_apply_survives_a_crash(tmp_path):
    """A process that dies right after apply returns (no close, no checkpoint) loses
    nothing: the commit was fsynced to the WAL."""
    path = tmp_path / "store.sqlite"
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from fanout.gts.model import Reading
        from fanout.store import Entry, SqliteStore, Update
        s = SqliteStore(Path({str(path)!r}))
        readings = [Reading(t, None, None, None, "c", (), t) for t in range(1000)]
        s.apply([Entry("a", 1, Update(readings))], 7)
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert (tmp_path / "store.sqlite-wal").exists()  # not checkpointed: recovery reads it
    s = SqliteStore(path)
    try:
        assert s.last_seq() == 7
        assert s.marks() == {"a": 1}
        assert len(fetch(s)) == 1000
    finally:
        s.close()
