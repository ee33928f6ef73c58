"""Upgrade: stores and datalog files written before histories existed.

A schema-1 store (per-origin ``marks``) opens as schema 2 with every mark in the legacy
history ``0000000000000000``; a record without ``history`` reads as that history; the
node's first start after the upgrade begins a history based on (legacy, its own mark), so
its oseq keeps counting and a receiver upgraded the same way misses nothing.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import zlib
from pathlib import Path

from fanout.datalog.format import LENGTHS, file_header, file_name
from fanout.store import SqliteStore
from fanout.store.base import LEGACY_HISTORY
from fanout.testing import NodeProc, Topology, eventually

V1_SCHEMA = """
CREATE TABLE series(id INTEGER PRIMARY KEY, cls TEXT NOT NULL, labels TEXT NOT NULL,
    attrs TEXT NOT NULL DEFAULT '[]', UNIQUE(cls, labels));
CREATE TABLE points(series_id INTEGER NOT NULL, ts INTEGER NOT NULL, lat, lon,
    elev INTEGER, type INTEGER NOT NULL, value, PRIMARY KEY(series_id, ts)) WITHOUT ROWID;
CREATE TABLE marks(origin TEXT PRIMARY KEY, oseq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""


def make_v1_store(path: Path, marks: dict[str, int], points: int, last_seq: int) -> None:
    """A store exactly as schema 1 wrote it: ``points`` longs in series ``w{}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("INSERT INTO meta VALUES ('schema_version', 1), ('last_seq', ?)", (last_seq,))
    conn.execute("INSERT INTO series VALUES (1, 'w', '[]', '[]')")
    conn.executemany("INSERT INTO points (series_id, ts, type, value) VALUES (1, ?, 1, ?)",
                     [(k, k) for k in range(1, points + 1)])
    conn.executemany("INSERT INTO marks VALUES (?, ?)", list(marks.items()))
    conn.commit()
    conn.close()


def old_record_file(directory: Path, node_id: str, seq: int, oseq: int, k: int) -> Path:
    """A datalog file whose record header has no ``history``/``base`` (the old format)."""
    header = json.dumps({"seq": seq, "origin": node_id, "oseq": oseq, "time": 1, "op": "update",
                         "token_id": "ingest", "params": {}, "via": []},
                        sort_keys=True, separators=(",", ":")).encode()
    body = f"{k}// w{{}} {k}\n".encode()
    lengths = LENGTHS.pack(len(header), len(body))
    crc = zlib.crc32(body, zlib.crc32(header, zlib.crc32(lengths)))
    path = directory / file_name(seq, node_id)
    directory.mkdir(parents=True, exist_ok=True)
    path.write_bytes(file_header(1) + lengths + struct.pack("<I", crc) + header + body)
    return path


def test_v1_store_migrates_marks_to_the_legacy_history(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    make_v1_store(path, {"p": 7, "o": 3}, points=2, last_seq=9)
    with SqliteStore(path) as store:
        assert store.history_marks() == {"o": {LEGACY_HISTORY: 3}, "p": {LEGACY_HISTORY: 7}}
        assert store.marks() == {"o": 3, "p": 7}
        assert store.last_seq() == 9
        h = store.begin_history("p")
        assert h.base == (LEGACY_HISTORY, 7)
    with SqliteStore(path) as store:  # migrated once, durably
        assert [x.id for x in store.own_histories()] == [h.id]
        assert store.history_marks()["p"] == {LEGACY_HISTORY: 7}
    assert sqlite3.connect(path).execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == 2


def test_upgraded_primary_and_target_resume_with_nothing_lost(topo: Topology) -> None:
    """p had 6 writes, t had applied 5 of them; the 6th waits in p's datalog in the old
    record format. After the upgrade, the old record and every new write reach t."""
    p, t = topo.node("p"), topo.node("t")
    topo.link(p, t)
    make_v1_store(p.dir / "data" / "store.sqlite", {"p": 6}, points=6, last_seq=6)
    make_v1_store(t.dir / "data" / "store.sqlite", {"p": 5}, points=5, last_seq=0)
    old_record_file(p.datalog_dir, "p", seq=6, oseq=6, k=6)
    topo.start()
    with p.client() as c:
        for k in range(7, 17):
            c.update(f"{k}// w{{}} {k}\n")
    ref = topo.wait_converged(p, [t])
    assert [int(line.split("//")[0]) for line in ref.splitlines()] == list(range(1, 17))

    def resumed(node: NodeProc = t) -> None:
        st = topo.node_state(node)
        assert st["marks"] == {"p": "16"} and st["totalGaps"] == 0
        assert st["replication"]["divergence"] == []
        fs = topo.forwarder_state(p, "t")
        assert fs["lastError"] is None and fs["totalDuplicates"] == 0

    eventually(resumed, "t to resume from the legacy history", timeout=30)
    history = topo.node_state(p)["history"]
    assert topo.node_state(p)["historyBase"] == [LEGACY_HISTORY, "6"]
    with t.client("replicator") as c:
        _, body = c.request("GET", "/api/v0/replication/marks")
    assert json.loads(body)["histories"] == {"p": {LEGACY_HISTORY: "6", history: "16"}}
