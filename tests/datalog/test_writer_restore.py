"""DatalogWriter.restore: a prepared file that vanished is published again from memory."""

from __future__ import annotations

from pathlib import Path

from fanout.datalog import DatalogWriter, Record, iter_dir


def recs(first: int, n: int) -> list[Record]:
    return [Record(s, "n1", s, 0, "update", "ingest", {}, (), f"{s}// a{{}} {s}\n".encode())
            for s in range(first, first + n)]


def test_restore_publishes_the_same_bytes(tmp_path: Path) -> None:
    w = DatalogWriter(tmp_path / "dl", "n1")
    prep = w.prepare(recs(1, 3))
    original = prep.tmp_path.read_bytes()
    prep.tmp_path.unlink()
    final = w.restore(prep)
    assert final == w.dir / prep.name and final.read_bytes() == original
    assert [r.seq for _, rs in iter_dir(w.dir) for r in rs] == [1, 2, 3]
    assert [p.name for p in w.dir.iterdir() if p.name != ".tmp"] == [prep.name]
    assert w.restore(prep) == final  # already there: nothing written twice


def test_recover_removes_a_restore_cut_short(tmp_path: Path) -> None:
    w = DatalogWriter(tmp_path / "dl", "n1")
    prep = w.prepare(recs(1, 1))
    w.publish(prep)
    half = w.dir / f".{prep.name}.4242.tmp"  # write_atomic's temp name
    half.write_bytes(b"FANOUTDL partial")
    old = w.dir / f".{prep.name}.restoring"  # an older version's temp name
    old.write_bytes(b"FANOUTDL partial")
    DatalogWriter(tmp_path / "dl", "n1").recover(1)
    assert not half.exists() and not old.exists() and (w.dir / ".tmp").is_dir()
    assert [r.seq for _, rs in iter_dir(w.dir) for r in rs] == [1]
