"""Conformance of both stores for histories: per-(origin, history) marks, own histories,
the node id they belong to, and what survives a reopen."""

from __future__ import annotations

import re

import pytest

from fanout.errors import NodeIdMismatchError
from fanout.store.base import LEGACY_HISTORY, Entry, Update

from .util import KINDS, fetch, make_store, rd

H1, H2, H3 = "1" * 16, "2" * 16, "3" * 16


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def w(origin: str, oseq: int, history: str, base=None, ts: int | None = None) -> Entry:
    return Entry(origin, oseq, Update([rd(ts if ts is not None else oseq, "c", oseq)]),
                 history, base)


def test_a_new_history_is_never_a_duplicate(kind, tmp_path) -> None:
    s = make_store(kind, tmp_path)
    try:
        out = s.apply([w("o", 1, H1), w("o", 2, H1), w("o", 3, H1)], 0)
        assert [x.status for x in out] == ["applied"] * 3
        # re-created: oseq restarts at 1 in a new history without base
        out = s.apply([w("o", 1, H2, ts=11), w("o", 2, H2, ts=12), w("o", 2, H1)], 0)
        assert [x.status for x in out] == ["applied", "applied", "duplicate"]
        assert s.history_marks() == {"o": {H1: 3, H2: 2}}
        assert s.marks() == {"o": 2}  # the latest-known history's mark
        # first record of an unseen history: expected at base oseq + 1, else a gap
        assert [x.status for x in s.apply([w("o", 5, H3, (H1, 3), ts=20)], 0)] == ["gap"]
        assert s.history_bases()[("o", H3)] == (H1, 3)
        assert s.history_bases()[("o", H2)] is None
        assert len(fetch(s)) == 6
    finally:
        s.close()


def test_a_base_history_short_of_the_fork_point_is_a_gap(kind, tmp_path) -> None:
    """The origin left H1 at oseq 5 (a restart) but only 1..3 arrived here: H2's first
    write is applied, and reported as a gap, not taken for a clean continuation."""
    s = make_store(kind, tmp_path)
    try:
        s.apply([w("o", 1, H1), w("o", 2, H1), w("o", 3, H1)], 0)
        out = s.apply([w("o", 6, H2, (H1, 5), ts=6), w("o", 7, H2, (H1, 5), ts=7)], 0)
        assert [x.status for x in out] == ["gap", "applied"]
        # H1 complete up to the fork point: a clean continuation
        out = s.apply([w("o", 4, H1), w("o", 5, H1), w("o", 6, H3, (H1, 5), ts=16)], 0)
        assert [x.status for x in out] == ["applied", "applied", "applied"]
    finally:
        s.close()


def test_own_histories_chain_across_reopen(kind, tmp_path) -> None:
    s = make_store(kind, tmp_path)
    h1 = s.begin_history("me")
    assert re.fullmatch(r"[0-9a-f]{16}", h1.id) and h1.base is None
    s.apply([w("me", 1, h1.id), w("me", 2, h1.id)], 2)
    s.close()
    s = make_store(kind, tmp_path)
    h2 = s.begin_history("me")
    assert h2.base == (h1.id, 2)  # oseq keeps counting across a restart
    s.close()
    s = make_store(kind, tmp_path)
    h3 = s.begin_history("me")  # h2 wrote nothing: skipped, so receivers follow the chain
    assert h3.base == (h1.id, 2)
    assert [h.id for h in s.own_histories()] == [h1.id, h2.id, h3.id]
    s.close()


def test_restore_keeps_own_histories_and_takes_history_marks(kind, tmp_path) -> None:
    src = make_store(kind, tmp_path / "src")
    dst = make_store(kind, tmp_path / "dst")
    try:
        src.apply([w("o", 1, H1), w("o", 1, H2, ts=5)], 0)
        own = dst.begin_history("me")
        snap = src.snapshot()
        try:
            series = [(c, lab, att, list(p)) for c, lab, att, p in snap.series()]
            assert snap.history_marks == {"o": {H1: 1, H2: 1}}
            dst.restore(snap.history_marks, series, replace=True)
        finally:
            snap.close()
        assert dst.history_marks() == {"o": {H1: 1, H2: 1}}
        assert [h.id for h in dst.own_histories()] == [own.id]
        # marks of the shape before histories are read as the legacy history's
        dst.restore({"o": 4}, [], replace=True)
        assert dst.history_marks() == {"o": {LEGACY_HISTORY: 4}}
    finally:
        src.close()
        dst.close()


def test_sqlite_refuses_another_id_on_a_store_with_data(tmp_path) -> None:
    s = make_store("sqlite", tmp_path)
    h = s.begin_history("paris")
    s.apply([w("paris", 1, h.id)], 1)
    with pytest.raises(NodeIdMismatchError) as err:
        s.begin_history("london")
    assert "'paris'" in str(err.value) and "'london'" in str(err.value)
    assert [x.id for x in s.own_histories()] == [h.id]  # nothing changed
    s.close()
    empty = make_store("sqlite", tmp_path / "empty")
    empty.begin_history("paris")
    assert empty.begin_history("london").base is None  # no data: the new id takes over
    assert len(empty.own_histories()) == 1
    empty.close()
