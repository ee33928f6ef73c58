"""Snapshot and restore, on both backends and across them (initial sync)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanout.errors import StoreNotEmptyError
from fanout.gts.model import MetaLine

from .util import KINDS, delete, fetch, labels, make_store, meta, rd, upd


def populate(store) -> None:
    store.apply([
        upd("a", 1, rd(1, "t", 1.5, labels(k="v"), 48.0, 2.0, 7), rd(2, "t", True, labels(k="v"))),
        upd("a", 2, rd(5, "s", "x y"), rd(6, "gone", 1)),
        meta("b", 1, MetaLine("t", labels(k="v"), labels(team="ops"))),
        delete("a", 3, "gone{}", None, None),
        upd("b", 2, rd(-9, "neg", -(2**63))),
    ], last_seq=7)


@pytest.mark.parametrize("src_kind", KINDS)
@pytest.mark.parametrize("dst_kind", KINDS)
def test_snapshot_restores_identically_across_backends(tmp_path: Path, src_kind: str,
                                                       dst_kind: str) -> None:
    src = make_store(src_kind, tmp_path / "src")
    dst = make_store(dst_kind, tmp_path / "dst")
    try:
        populate(src)
        snap = src.snapshot()
        try:
            assert snap.marks == {"a": 3, "b": 2} and snap.last_seq == 7
            series = [(c, lab, att, list(points)) for c, lab, att, points in snap.series()]
        finally:
            snap.close()
        assert [s[0] for s in series] == ["neg", "s", "t"]  # sort order, deleted gone
        dst.restore(snap.marks, series, replace=False)
        assert fetch(dst, showattr=True) == fetch(src, showattr=True)
        assert dst.marks() == {"a": 3, "b": 2}
        assert dst.last_seq() == 0  # a restore does not touch the node's own log position
        # what was restored is deduplicated: replaying a marked record is a duplicate
        [out] = dst.apply([upd("a", 3, rd(100, "late", 1))], last_seq=0)
        assert out.status == "duplicate"
    finally:
        src.close()
        dst.close()


@pytest.mark.parametrize("kind", KINDS)
def test_snapshot_is_consistent_while_writes_go_on(tmp_path: Path, kind: str) -> None:
    store = make_store(kind, tmp_path)
    try:
        populate(store)
        snap = store.snapshot()
        store.apply([upd("a", 4, rd(50, "after", 1))], last_seq=8)  # after the snapshot
        try:
            names = [c for c, _, _, points in snap.series() if list(points)]
            assert "after" not in names and snap.marks["a"] == 3 and snap.last_seq == 7
        finally:
            snap.close()
    finally:
        store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_restore_refuses_a_non_empty_store_unless_replacing(tmp_path: Path, kind: str) -> None:
    store = make_store(kind, tmp_path)
    try:
        populate(store)
        before = fetch(store, showattr=True)
        new = [("fresh", (), (), [(1, None, None, None, 1)])]
        with pytest.raises(StoreNotEmptyError):
            store.restore({"z": 1}, new, replace=False)
        assert fetch(store, showattr=True) == before
        store.restore({"z": 1}, new, replace=True)
        assert fetch(store) == ["1// fresh{} 1"] and store.marks() == {"z": 1}
    finally:
        store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_failed_restore_changes_nothing(tmp_path: Path, kind: str) -> None:
    store = make_store(kind, tmp_path)
    try:
        populate(store)
        before = (fetch(store, showattr=True), store.marks())

        def broken():
            yield ("ok", (), (), [(1, None, None, None, 1)])
            raise OSError("stream cut")

        with pytest.raises(OSError):
            store.restore({"z": 1}, broken(), replace=True)
        assert (fetch(store, showattr=True), store.marks()) == before
    finally:
        store.close()
