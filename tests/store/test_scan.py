"""``scan`` and ``find``, the data behind Warp 10's fetch formats and delete dry runs, on
every backend: the same series, points and order as ``fetch``, newest first."""

from __future__ import annotations

import pytest

from fanout.gts.model import MetaLine
from fanout.store import Store

from .util import KINDS, TMAX, TMIN, delete, fetch, labels, make_store, meta, rd, sel, upd


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    s = make_store(request.param, tmp_path)
    yield s
    s.close()


def joined(store: Store, selector: str = "~.*{}", start: int = TMIN, end: int = TMAX,
           last: int | None = None) -> list[tuple]:
    """Chunks of one series joined: (class, labels, attrs, points)."""
    out: list[tuple] = []
    for cls, lbl, attrs, points in store.scan(sel(selector), start, end, last=last):
        if out and out[-1][:2] == (cls, lbl):
            out[-1][3].extend(points)
        else:
            out.append((cls, lbl, attrs, list(points)))
    return out


def test_scan_is_fetch_newest_first(store: Store) -> None:
    big = [rd(t, "big", t * 0.5) for t in range(2500)]  # several chunks in sqlite
    store.apply([upd("n", 1, rd(1, "a", 1, labels(k="x"), 48.5, -4.25, 10), rd(2, "a", True,
                                                                              labels(k="x")),
                     rd(3, "b", "s"), *big),
                 meta("n", 2, MetaLine("a", labels(k="x"), labels(unit="m")))], 2)
    got = joined(store)
    assert [(c, lb, a) for c, lb, a, _ in got] == [
        ("a", labels(k="x"), labels(unit="m")), ("b", (), ()), ("big", (), ())]
    assert got[0][3] == [(2, None, None, None, True), (1, 48.5, -4.25, 10, 1)]
    assert [p[0] for p in got[2][3]] == list(range(2499, -1, -1))
    assert got[2][3][0][4] == 1249.5 and type(got[2][3][-1][4]) is float
    # the same readings as fetch
    assert sum(len(p) for *_, p in got) == len(fetch(store))
    assert joined(store, "big{}", 10, 20, last=3) == [
        ("big", (), (), [(20, None, None, None, 10.0), (19, None, None, None, 9.5),
                         (18, None, None, None, 9.0)])]
    assert joined(store, "big{}", 5, 4) == []
    assert joined(store, "none{}") == []


def test_find_lists_every_matching_series(store: Store) -> None:
    store.apply([upd("n", 1, rd(1, "a", 1, labels(k="2")), rd(1, "a", 1, labels(k="1")),
                     rd(5, "c", 1)),
                 meta("n", 2, MetaLine("a", labels(k="2"), labels(o="x"))),
                 delete("n", 3, "c{}", 0, 10)], 3)  # c keeps no reading, still a series
    assert store.find(sel("~.*{}")) == [("a", labels(k="1"), ()),
                                        ("a", labels(k="2"), labels(o="x")), ("c", (), ())]
    assert store.find(sel("a{k=2}")) == [("a", labels(k="2"), labels(o="x"))]
    store.apply([delete("n", 4, "a{}", None, None)], 4)
    assert store.find(sel("~.*{}")) == [("c", (), ())]
