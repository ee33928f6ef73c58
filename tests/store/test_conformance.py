"""One suite, run against every backend: both must behave identically."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout.gts import format_reading
from fanout.gts.model import MetaLine, MultiValue
from fanout.gts.values import format_value
from fanout.store import Entry, MemoryStore, Outcome, SqliteStore, Update, open_store

from .util import (
    KINDS,
    TMAX,
    TMIN,
    delete,
    fetch,
    labels,
    make_store,
    meta,
    rd,
    sel,
    snapshot,
    upd,
)


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    s = make_store(request.param, tmp_path)
    yield s
    s.close()


def lines(*readings, attrs=None):
    return [format_reading(r, attrs) for r in readings]


# -- basics ------------------------------------------------------------------------------


def test_open_store_kinds(tmp_path):
    s = open_store("sqlite", tmp_path / "a" / "b" / "s.sqlite", tmp_path / "state")
    assert isinstance(s, SqliteStore)
    s.close()
    assert (tmp_path / "a" / "b" / "s.sqlite").exists()
    m = open_store("memory", None, tmp_path / "state")
    assert isinstance(m, MemoryStore)
    m.apply([], 3)
    m.close()
    assert (tmp_path / "state" / "memory-store.seq").exists()
    with pytest.raises(ValueError, match="path"):
        open_store("sqlite", None, tmp_path)
    with pytest.raises(ValueError, match="unknown store type"):
        open_store("rocks", None, tmp_path)


def test_new_store_is_empty(store):
    assert store.last_seq() == 0
    assert store.marks() == {}
    assert fetch(store) == []


def test_round_trip_all_value_types_and_locations(store):
    readings = [
        rd(1, "v", 42),
        rd(2, "v", -7),
        rd(3, "v", TMIN),
        rd(4, "v", TMAX),
        rd(5, "v", 0),
        rd(6, "v", True),
        rd(7, "v", False),
        rd(8, "v", 1.0),
        rd(9, "v", -0.0),
        rd(10, "v", 0.1),
        rd(11, "v", 1e300),
        rd(12, "v", -2.5e-300),
        rd(13, "v", "hello world"),
        rd(14, "v", ""),
        rd(15, "v", "a,b{c}='%\n\t é☃ 𝄞"),
        rd(16, "v", "1"),
        rd(17, "v", "T"),
        rd(20, "loc", 1, lat=48.1, lon=-4.5),
        rd(21, "loc", 2, elev=12),
        rd(22, "loc", 3, lat=-90.0, lon=180.0, elev=-5),
        rd(23, "loc", 4.5, lat=0.0, lon=-0.0, elev=0),
        rd(24, "loc", "s", lat=1e-7, lon=179.9999999, elev=TMAX),
    ]
    outcomes = store.apply([upd("me", 1, *readings)], 1)
    assert outcomes == [Outcome("applied")]
    assert fetch(store, "v{}") == lines(*readings[:17])
    assert fetch(store, "loc{}") == lines(*readings[17:])
    assert fetch(store) == lines(*readings[17:], *readings[:17])  # "loc" < "v"
    # The type survives: a bool is not a long, a long is not a double.
    assert fetch(store, "v{}", 5, 8) == ["5// v{} 0", "6// v{} T", "7// v{} F", "8// v{} 1.0"]
    assert fetch(store, "loc{}", 21, 21) == ["21//12 loc{} 2"]


def test_round_trip_warp10_value_types(store, tmp_path):
    """Binary, NaN and infinities, multi-values (nested, with positions) come back as the
    same canonical lines and the same Python values, also after the store is reopened."""
    mv = MultiValue(((0, None, None, None, 1), (5, 48.0, -4.5, 3, "a/b c'"),
                     (6, None, None, -2, b"\x00\xff"),
                     (7, None, None, None, MultiValue(((1, None, None, None, float("nan")),),
                                                      False))), True)
    readings = [
        rd(1, "n", b""),
        rd(2, "n", b"\x00\x01\xfe\xff" * 3),
        rd(3, "n", float("nan")),
        rd(4, "n", float("inf")),
        rd(5, "n", float("-inf")),
        rd(6, "n", mv),
        rd(7, "n", MultiValue((), False), lat=47.99999998882413, lon=-4.500000067055225),
    ]
    store.apply([upd("me", 1, *readings)], 1)
    expected = [
        "1// n{} b64:",
        "2// n{} b64:AAH-_wAB_v8AAf7_",
        "3// n{} NaN",
        "4// n{} Infinity",
        "5// n{} -Infinity",
        "6// n{} [ 1 5/48.0:-4.5/3/'a%2Fb%20c%27' 6//-2/b64:AP8 7/[! 1/NaN ] ]",
        "7/47.99999998882413:-4.500000067055225/ n{} [! ]",
    ]
    assert fetch(store) == expected
    if isinstance(store, SqliteStore):
        path = store._path
        store.close()
        store = SqliteStore(path)
        assert fetch(store) == expected
    snap = store.snapshot()
    try:
        [(_, _, _, points)] = list(snap.series())
        got = [v for _, _, _, _, v in points]
    finally:
        snap.close()
    assert [type(v) for v in got] == [bytes, bytes, float, float, float, MultiValue, MultiValue]
    assert got[1] == b"\x00\x01\xfe\xff" * 3 and got[3] == float("inf")
    assert format_value(got[5]) == format_value(mv)
    if isinstance(store, SqliteStore):
        store.close()  # the reopened one; the fixture closes the first


def test_exact_python_types_come_back(store):
    # Values beyond what the parser produces still keep their type and value.
    big = 2**70
    store.apply([upd("o", 1, rd(1, "x", big), rd(2, "x", -big), rd(3, "x", 2.0))], 1)
    assert fetch(store) == [f"1// x{{}} {big}", f"2// x{{}} {-big}", "3// x{} 2.0"]


def test_labels_and_classes_are_decoded_models(store):
    lb = labels(host="a b", dc="{x}=,")
    store.apply([upd("o", 1, rd(1, "my class/é", 1, lb))], 1)
    assert fetch(store) == lines(rd(1, "my class/é", 1, lb))
    assert fetch(store, "=my%20class/%C3%A9{host=a%20b}") == lines(rd(1, "my class/é", 1, lb))


def test_same_ts_replaces(store):
    store.apply([upd("o", 1, rd(10, "a", 1), rd(11, "a", 2))], 1)
    store.apply([upd("o", 2, rd(10, "a", "now a string", lat=1.0, lon=2.0))], 2)
    assert fetch(store) == lines(rd(10, "a", "now a string", lat=1.0, lon=2.0), rd(11, "a", 2))
    # Within one update and one apply, the last one wins too.
    store.apply([upd("o", 3, rd(5, "a", 1), rd(5, "a", 2)), upd("o", 4, rd(5, "a", 3.5))], 3)
    assert fetch(store, start=5, end=5) == ["5// a{} 3.5"]


def test_dedup_and_gap(store):
    out = store.apply([upd("a", 1, rd(1, "x", 1)), upd("a", 2, rd(2, "x", 2))], 5)
    assert out == [Outcome("applied"), Outcome("applied")]
    assert store.marks() == {"a": 2}
    assert store.last_seq() == 5

    out = store.apply(
        [
            upd("a", 2, rd(2, "x", 999)),  # duplicate: not applied
            upd("a", 1, rd(3, "x", 999)),  # duplicate
            upd("b", 1, rd(4, "x", 4)),  # new origin: mark 0, so 1 is applied
            upd("a", 5, rd(5, "x", 5)),  # gap (3, 4 missing): applied anyway
            upd("a", 5, rd(6, "x", 999)),  # duplicate of the one just applied
            upd("a", 6, rd(7, "x", 7)),  # follows the gap: applied
            upd("c", 3, rd(8, "x", 8)),  # new origin starting with a gap
        ],
        9,
    )
    assert [o.status for o in out] == [
        "duplicate",
        "duplicate",
        "applied",
        "gap",
        "duplicate",
        "applied",
        "gap",
    ]
    assert store.marks() == {"a": 6, "b": 1, "c": 3}
    assert store.last_seq() == 9
    assert fetch(store) == lines(
        rd(1, "x", 1), rd(2, "x", 2), rd(4, "x", 4), rd(5, "x", 5), rd(7, "x", 7), rd(8, "x", 8)
    )


def test_last_seq_is_set_even_without_effect(store):
    store.apply([], 3)
    assert store.last_seq() == 3
    store.apply([upd("a", 1, rd(1, "x", 1))], 4)
    store.apply([upd("a", 1, rd(1, "x", 1))], 7)
    assert store.last_seq() == 7
    assert store.marks() == {"a": 1}


def test_marks_returns_a_copy(store):
    store.apply([upd("a", 1, rd(1, "x", 1))], 1)
    store.marks()["a"] = 100
    assert store.marks() == {"a": 1}


# -- meta --------------------------------------------------------------------------------


def test_meta_replace_delta_and_unknown_series(store):
    cpu = labels(host="h1")
    store.apply([upd("o", 1, rd(1, "cpu", 1, cpu), rd(1, "mem", 2))], 1)
    out = store.apply(
        [
            meta("o", 2, MetaLine("cpu", cpu, labels(owner="ops", tier="gold"))),
            meta("o", 3, MetaLine("nosuch", (), labels(a="b"))),  # unknown: ignored
            meta("o", 4, MetaLine("cpu", labels(host="h2"), labels(a="b"))),  # unknown labels
        ],
        4,
    )
    assert [o.status for o in out] == ["applied", "applied", "applied"]
    assert store.marks() == {"o": 4}
    assert fetch(store, showattr=True) == [
        "1// cpu{host=h1}{owner=ops,tier=gold} 1",
        "1// mem{}{} 2",
    ]
    assert fetch(store) == ["1// cpu{host=h1} 1", "1// mem{} 2"]
    assert fetch(store, "nosuch{}") == []

    # delta: merge, an empty value removes the key, a missing key is left alone
    store.apply(
        [meta("o", 5, MetaLine("cpu", cpu, labels(tier="", zone="eu", gone="")), delta=True)],
        5,
    )
    assert fetch(store, "cpu{}", showattr=True) == ["1// cpu{host=h1}{owner=ops,zone=eu} 1"]

    # replace: exactly the given attributes
    store.apply([meta("o", 6, MetaLine("cpu", cpu, labels(x="1")))], 6)
    assert fetch(store, "cpu{}", showattr=True) == ["1// cpu{host=h1}{x=1} 1"]
    store.apply([meta("o", 7, MetaLine("cpu", cpu, ()))], 7)
    assert fetch(store, "cpu{}", showattr=True) == ["1// cpu{host=h1}{} 1"]


def test_meta_sees_series_created_earlier_in_the_same_apply(store):
    store.apply(
        [
            meta("o", 1, MetaLine("new", (), labels(a="1"))),  # not yet: ignored
            upd("o", 2, rd(1, "new", 1)),
            meta("o", 3, MetaLine("new", (), labels(b="2"))),
            meta("o", 4, MetaLine("new", (), labels(c="3")), delta=True),
        ],
        4,
    )
    assert fetch(store, showattr=True) == ["1// new{}{b=2,c=3} 1"]


def test_meta_several_lines_for_one_series_apply_in_order(store):
    store.apply([upd("o", 1, rd(1, "s", 1))], 1)
    store.apply(
        [
            meta(
                "o",
                2,
                MetaLine("s", (), labels(a="1")),
                MetaLine("s", (), labels(b="2")),
                MetaLine("s", (), labels(a="")),
                delta=True,
            )
        ],
        2,
    )
    assert fetch(store, showattr=True) == ["1// s{}{b=2} 1"]


# -- delete ------------------------------------------------------------------------------


def _populate(store):
    readings = [
        rd(ts, cls, ts, labels(dc=dc))
        for cls in ("cpu.user", "cpu.sys", "mem")
        for dc in ("paris", "london")
        for ts in (10, 20, 30, 40)
    ]
    store.apply([upd("o", 1, *readings)], 1)
    store.apply([meta("o", 2, MetaLine("cpu.user", labels(dc="paris"), labels(a="1")))], 2)


def test_delete_range(store):
    _populate(store)
    out = store.apply([delete("o", 3, "~cpu\\..*{dc~par.*}", 20, 30)], 3)
    assert out == [Outcome("applied", ("cpu.sys{dc=paris}", "cpu.user{dc=paris}"))]
    assert fetch(store, "~cpu.*{dc=paris}", showattr=True) == [
        "10// cpu.sys{dc=paris}{} 10",
        "40// cpu.sys{dc=paris}{} 40",
        "10// cpu.user{dc=paris}{a=1} 10",  # the series and its attributes remain
        "40// cpu.user{dc=paris}{a=1} 40",
    ]
    assert len(fetch(store, "~cpu.*{dc=london}")) == 8
    assert len(fetch(store, "mem{}")) == 8


def test_delete_range_bounds_are_inclusive(store):
    store.apply([upd("o", 1, *(rd(ts, "a", ts) for ts in range(1, 8)))], 1)
    store.apply([delete("o", 2, "a{}", 3, 5)], 2)
    assert fetch(store) == lines(*(rd(ts, "a", ts) for ts in (1, 2, 6, 7)))
    store.apply([delete("o", 3, "a{}", TMIN, 1)], 3)
    store.apply([delete("o", 4, "a{}", 7, TMAX)], 4)
    assert fetch(store) == lines(rd(2, "a", 2), rd(6, "a", 6))


def test_delete_range_lists_matching_series_even_without_points_in_range(store):
    _populate(store)
    out = store.apply([delete("o", 3, "mem{}", 1000, 2000)], 3)
    assert out[0].deleted == ("mem{dc=london}", "mem{dc=paris}")
    assert len(fetch(store, "mem{}")) == 8


def test_deleteall_removes_series_and_attributes(store):
    _populate(store)
    out = store.apply([delete("o", 3, "~.*{dc=paris}", None, None)], 3)
    assert out[0].deleted == ("cpu.sys{dc=paris}", "cpu.user{dc=paris}", "mem{dc=paris}")
    assert fetch(store, "~.*{dc=paris}") == []
    assert len(fetch(store)) == 12
    # The series is gone: meta on it is ignored, a new reading recreates it bare.
    store.apply([meta("o", 4, MetaLine("cpu.user", labels(dc="paris"), labels(b="2")))], 4)
    store.apply([upd("o", 5, rd(99, "cpu.user", 1, labels(dc="paris")))], 5)
    assert fetch(store, "cpu.user{dc=paris}", showattr=True) == ["99// cpu.user{dc=paris}{} 1"]
    # Deleting again lists only what exists now.
    out = store.apply([delete("o", 6, "~.*{dc=paris}", None, None)], 6)
    assert out[0].deleted == ("cpu.user{dc=paris}",)


def test_delete_no_match(store):
    _populate(store)
    out = store.apply(
        [delete("o", 3, "~nothing.*{}", None, None), delete("o", 4, "mem{dc=tokyo}", 0, 100)], 4
    )
    assert out == [Outcome("applied"), Outcome("applied")]
    assert len(fetch(store)) == 24


def test_delete_sees_earlier_entries_of_the_same_apply(store):
    out = store.apply(
        [
            upd("o", 1, rd(1, "a", 1), rd(2, "a", 2)),
            delete("o", 2, "a{}", 2, 2),
            upd("o", 3, rd(1, "b", 1)),
            delete("o", 4, "b{}", None, None),
            upd("o", 5, rd(3, "b", 3)),
        ],
        5,
    )
    assert [o.deleted for o in out] == [(), ("a{}",), (), ("b{}",), ()]
    assert fetch(store) == ["1// a{} 1", "3// b{} 3"]


def test_duplicate_delete_is_not_applied(store):
    store.apply([upd("o", 1, rd(1, "a", 1))], 1)
    out = store.apply([delete("o", 1, "a{}", None, None)], 2)
    assert out == [Outcome("duplicate")]
    assert fetch(store) == ["1// a{} 1"]


def test_half_open_delete_is_refused(store):
    store.apply([upd("o", 1, rd(1, "a", 1))], 1)
    before = snapshot(store)
    with pytest.raises(ValueError):
        store.apply([delete("o", 2, "a{}", 1, None)], 2)
    assert snapshot(store) == before


# -- fetch -------------------------------------------------------------------------------


def test_fetch_series_order_is_class_then_labels(store):
    readings = [
        rd(1, "b", 1),
        rd(1, "a", 1, labels(z="1")),
        rd(1, "a", 1, labels(b="2")),
        rd(1, "a", 1, labels(b="10")),
        rd(1, "a", 1),
        rd(1, "A", 1),
        rd(1, "a", 1, labels(a="1", b="1")),
        rd(1, "é", 1),
    ]
    store.apply([upd("o", 1, *readings)], 1)
    assert fetch(store) == [
        "1// A{} 1",
        "1// a{} 1",
        "1// a{a=1,b=1} 1",
        "1// a{b=10} 1",
        "1// a{b=2} 1",
        "1// a{z=1} 1",
        "1// b{} 1",
        "1// %C3%A9{} 1",
    ]


def test_fetch_readings_ascending_and_range_inclusive(store):
    stamps = [50, -5, 10, 30, 20, 40, 0]
    store.apply([upd("o", 1, *(rd(ts, "a", ts) for ts in stamps))], 1)
    assert fetch(store) == lines(*(rd(ts, "a", ts) for ts in sorted(stamps)))
    assert fetch(store, "a{}", 10, 40) == lines(*(rd(ts, "a", ts) for ts in (10, 20, 30, 40)))
    assert fetch(store, "a{}", 11, 39) == lines(rd(20, "a", 20), rd(30, "a", 30))
    assert fetch(store, "a{}", 20, 20) == lines(rd(20, "a", 20))
    assert fetch(store, "a{}", 41, 49) == []
    assert fetch(store, "a{}", 40, 10) == []  # start > end
    # Bounds beyond 64 bits are fine.
    assert len(fetch(store, "a{}", -(2**80), 2**80)) == 7
    assert fetch(store, "a{}", 2**80, 2**81) == []


def test_fetch_last(store):
    store.apply(
        [
            upd("o", 1, *(rd(ts, "a", ts) for ts in range(1, 11))),
            upd("o", 2, rd(5, "b", 5)),
            upd("o", 3, rd(100, "c", 100)),
        ],
        3,
    )
    assert fetch(store, "~.*{}", 0, 50, last=3) == lines(
        rd(8, "a", 8), rd(9, "a", 9), rd(10, "a", 10), rd(5, "b", 5)
    )  # c has no reading in range: prints nothing
    assert fetch(store, "a{}", 0, 6, last=2) == lines(rd(5, "a", 5), rd(6, "a", 6))
    assert fetch(store, "a{}", 0, 50, last=100) == fetch(store, "a{}", 0, 50)
    assert fetch(store, "a{}", 0, 50, last=1) == lines(rd(10, "a", 10))
    assert fetch(store, "a{}", 0, 50, last=0) == []


def test_fetch_showattr(store):
    store.apply(
        [
            upd(
                "o",
                1,
                rd(1, "a", 1, labels(k="v")),
                rd(2, "a", 2.5, labels(k="v"), lat=1.5, lon=2.5, elev=3),
            ),
            upd("o", 2, rd(1, "b", True)),
            meta("o", 3, MetaLine("a", labels(k="v"), labels(unit="%", z="a b"))),
        ],
        3,
    )
    assert fetch(store, showattr=True) == [
        "1// a{k=v}{unit=%25,z=a%20b} 1",
        "2/1.5:2.5/3 a{k=v}{unit=%25,z=a%20b} 2.5",
        "1// b{}{} T",
    ]
    assert fetch(store, "a{}", 2, 2, last=1, showattr=True) == [
        "2/1.5:2.5/3 a{k=v}{unit=%25,z=a%20b} 2.5"
    ]


def test_fetch_selectors(store):
    _populate(store)
    assert {line.split(" ")[1] for line in fetch(store, "~cpu.*{}")} == {
        "cpu.sys{dc=london}",
        "cpu.sys{dc=paris}",
        "cpu.user{dc=london}",
        "cpu.user{dc=paris}",
    }
    assert {line.split(" ")[1] for line in fetch(store, "mem{dc~lon.*}")} == {"mem{dc=london}"}
    assert fetch(store, "cpu{}") == []  # exact class


def test_two_fetches_interleaved(store):
    store.apply([upd("o", 1, *(rd(ts, "a", ts) for ts in range(5)), rd(0, "b", 0))], 1)
    it1 = store.fetch(sel("~.*{}"), TMIN, TMAX)
    it2 = store.fetch(sel("a{}"), TMIN, TMAX, last=2)
    first = [next(it1), next(it1)]
    assert list(it2) == lines(rd(3, "a", 3), rd(4, "a", 4))
    assert first + list(it1) == lines(*(rd(ts, "a", ts) for ts in range(5)), rd(0, "b", 0))


def test_abandoned_fetch_does_not_block(store):
    store.apply([upd("o", 1, *(rd(ts, "a", ts) for ts in range(3000)))], 1)
    it = store.fetch(sel("a{}"), TMIN, TMAX)
    next(it)
    store.apply([upd("o", 2, rd(5000, "a", 1))], 2)
    assert store.last_seq() == 2
    it.close()
    assert len(fetch(store)) == 3001


def test_fetch_from_another_thread_while_writing(store):
    """Readers in other threads see whole applies, never part of one."""
    batch = 500
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader():
        try:
            while not stop.is_set():
                seen.append(len(fetch(store)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(20):
            store.apply(
                [upd("o", i + 1, *(rd(i * batch + j, "a", j) for j in range(batch)))], i + 1
            )
    finally:
        stop.set()
        t.join()
    assert not errors
    assert all(n % batch == 0 for n in seen)
    assert len(fetch(store)) == 20 * batch


# -- atomicity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        Entry("o", 3, object()),  # type: ignore[arg-type]
        Entry("o", 3, Update([rd(7, "a", 1), rd(8, "new", [1, 2])])),  # unsupported value
        Entry("o", 3, Update([rd(7, "a", 1), rd(2**64, "new", 1)])),  # ts beyond 64 bits
    ],
    ids=["unsupported-change", "bad-value", "bad-ts"],
)
def test_failed_apply_changes_nothing(store, bad):
    store.apply([upd("o", 1, rd(1, "a", 1)), meta("o", 2, MetaLine("a", (), labels(x="1")))], 2)
    before = snapshot(store)
    with pytest.raises((TypeError, OverflowError)):
        store.apply(
            [
                upd("o", 3, rd(2, "a", 2), rd(1, "created", 1)),
                meta("o", 4, MetaLine("a", (), labels(y="2"))),
                delete("o", 5, "a{}", 1, 1),
                delete("p", 1, "created{}", None, None),
                upd("p", 2, rd(1, "created", 1)),
                Entry(bad.origin, 6, bad.change),
            ],
            9,
        )
    assert snapshot(store) == before
    assert fetch(store, "created{}") == []
    # Still fully working, and the series that the failed call created does not exist.
    out = store.apply(
        [
            meta("o", 3, MetaLine("created", (), labels(z="1"))),  # ignored: no such series
            upd("o", 4, rd(5, "created", 5), rd(6, "a", 6)),
            delete("o", 5, "~.*{}", 0, 0),
        ],
        4,
    )
    assert [o.status for o in out] == ["applied"] * 3
    assert out[2].deleted == ("a{}", "created{}")
    assert fetch(store, showattr=True) == [
        "1// a{}{x=1} 1",
        "6// a{}{x=1} 6",
        "5// created{}{} 5",
    ]
    assert store.marks() == {"o": 5}


# -- both backends agree, byte for byte ----------------------------------------------------

CLASSES = ["a", "cpu.x", "é z"]
LABELSETS = [(), labels(dc="p", h="1")]
SELECTORS = ["~.*{}", "a{}", "~cpu.*{}", "~.*{h=1}", "~[ab]{h~[12]}", "~.*{dc~.*}"]
# Every series exists, with points and attributes, before the random batches start.
SEED = [
    upd("seed", 1, *(rd(t, c, t, lb) for c in CLASSES for lb in LABELSETS for t in (0, 2, 4, 6))),
    meta("seed", 2, *(MetaLine(c, lb, labels(k="0", z="0")) for c in CLASSES for lb in LABELSETS)),
]
finite = st.floats(allow_nan=False, allow_infinity=False)
_scalars = st.one_of(
    st.integers(min_value=TMIN, max_value=TMAX),
    st.floats(),  # NaN and infinities too: the comparison is of fetched text
    st.booleans(),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
    st.binary(max_size=8),
)
values = st.recursive(_scalars, lambda children: st.builds(
    MultiValue,
    st.lists(st.tuples(st.integers(-3, 3), st.none(), st.none(), st.none() | st.integers(-9, 9),
                       children), max_size=3).map(tuple),
    st.booleans()), max_leaves=5)
readings = st.builds(
    lambda ts, cls, lb, value, loc, elev: rd(
        ts, cls, value, lb, *(loc if loc else (None, None)), elev=elev  # type: ignore[misc]
    ),
    st.integers(min_value=0, max_value=6),
    st.sampled_from(CLASSES),
    st.sampled_from(LABELSETS),
    values,
    st.none() | st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
    st.none() | st.integers(min_value=TMIN, max_value=TMAX),
)
attr_sets = st.lists(
    st.tuples(st.sampled_from(["k", "unit", "z"]), st.sampled_from(["", "1", "x y"])),
    max_size=3,
    unique_by=lambda p: p[0],
).map(lambda pairs: tuple(sorted(pairs)))
changes = st.one_of(
    st.builds(Update, st.lists(readings, min_size=1, max_size=8)),
    st.builds(
        lambda ls, delta: meta("", 0, *ls, delta=delta).change,
        st.lists(
            st.builds(MetaLine, st.sampled_from(CLASSES), st.sampled_from(LABELSETS), attr_sets),
            min_size=1,
            max_size=2,
        ),
        st.booleans(),
    ),
    st.builds(
        lambda s, rng: delete("", 0, s, *(rng if rng else (None, None))).change,
        st.sampled_from(SELECTORS),
        st.none()
        | st.tuples(st.integers(-1, 7), st.sampled_from([0, 0, 1, 3, -1])).map(
            lambda t: (t[0], t[0] + t[1])
        ),
    ),
)
# (origin, step from the origin's last oseq: mostly +1, sometimes a duplicate or a gap)
steps = st.sampled_from([1, 1, 1, 1, 1, 0, -1, 2, 3])
batches = st.lists(
    st.lists(st.tuples(st.sampled_from(["n1", "n2"]), steps, changes), min_size=1, max_size=5),
    min_size=1,
    max_size=6,
)


def _fetches(store):
    out = []
    for selector in SELECTORS:
        for kw in ({}, {"showattr": True}, {"last": 2}):
            out.append(fetch(store, selector, **kw))
        out.append(fetch(store, selector, 0, 5, showattr=True))
    return out


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_backends_agree(batches):
    with tempfile.TemporaryDirectory() as d:
        s1 = make_store("sqlite", Path(d))
        s2 = make_store("memory", Path(d))
        try:
            assert s1.apply(SEED, 1) == s2.apply(SEED, 1)
            last = {"n1": 0, "n2": 0}
            for seq, batch in enumerate(batches, 2):
                entries = []
                for origin, step, change in batch:
                    oseq = max(last[origin] + step, 0)
                    last[origin] = max(last[origin], oseq)
                    entries.append(Entry(origin, oseq, change))
                assert s1.apply(entries, seq) == s2.apply(entries, seq)
                assert s1.marks() == s2.marks()
                assert s1.last_seq() == s2.last_seq() == seq
                assert _fetches(s1) == _fetches(s2)
        finally:
            s1.close()
            s2.close()
