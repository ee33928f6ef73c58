"""Every Warp 10 output form carries the readings exactly: ``text`` and ``fulltext`` read
back through the update parser (they are valid update bodies: ``=`` lines, Java doubles),
``json`` through a JSON parser, and ``dedup`` only ever drops a reading equal to its
predecessor."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from fanout.gts import format_value, parse_update
from fanout.gts.model import MultiValue, Reading
from fanout.node.fetchformat import dedup, render, value_text
from fanout.node.timeparams import parse_iso_instant

from ..gts.strategies import readings


def chunks_of(rs: list) -> list:
    """Readings grouped by series in (class, labels) order, newest first, split into
    chunks of at most 2 points (as the SQLite store splits a big series)."""
    series: dict = {}
    for r in rs:
        series.setdefault((r.cls, r.labels), {})[r.ts] = r
    out = []
    for key in sorted(series):
        pts = [(r.ts, r.lat, r.lon, r.elev, r.value)
               for r in sorted(series[key].values(), key=lambda r: -r.ts)]
        out += [(key[0], key[1], (), pts[i:i + 2]) for i in range(0, len(pts), 2)]
    return out


def bits(v: object) -> object:
    """A value as compared: doubles by their bits (-0.0 is not 0.0), every NaN as one NaN
    (Warp 10 and the node write them all as ``NaN``: a NaN's payload bits are not kept),
    multi-values by their canonical text (their elements may hold NaN too)."""
    if type(v) is float:
        return (float, b"NaN" if v != v else struct.pack(">d", v))
    if type(v) is MultiValue:
        return (MultiValue, format_value(v))
    return (type(v), v)


def key(r) -> tuple:
    return (r.cls, r.labels, r.ts, r.lat, r.lon, r.elev, bits(r.value))


# a NaN with payload bits: printed as NaN, read back as the one NaN (found by hypothesis)
PAYLOAD_NAN = struct.unpack(">d", struct.pack(">Q", 0x7FF8000000000001))[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(readings(), max_size=12))
@example([Reading(0, None, None, None, "0", (), PAYLOAD_NAN)])
def test_text_forms_parse_back_to_the_readings(rs: list) -> None:
    chunks = chunks_of(rs)
    expected = sorted(key(r) for c in chunks for r in _readings(c))
    for fmt in ("text", "fulltext"):
        body = "".join(render(chunks, fmt))
        assert sorted(map(key, parse_update(body, 0))) == expected


def _readings(chunk: tuple) -> list[Reading]:
    cls, labels, _, pts = chunk
    return [Reading(ts, lat, lon, elev, cls, labels, v) for ts, lat, lon, elev, v in pts]


@settings(max_examples=200, deadline=None)
@given(st.lists(readings(), max_size=12))
def test_json_carries_every_reading(rs: list) -> None:
    chunks = chunks_of(rs)
    doc = json.loads("".join(render(chunks, "json")))
    got = []
    for g in doc:
        for v in g["v"]:
            got.append((g["c"], tuple(sorted(g["l"].items())), v[0], v[-1]))
    want = [(c, lb, p[0], p[4]) for c, lb, _, pts in chunks for p in pts]
    assert len(got) == len(want)
    for (gc, gl, gts, gv), (wc, wl, wts, wv) in zip(got, want, strict=True):
        assert (gc, gl, gts) == (wc, wl, wts)
        if isinstance(wv, bytes | MultiValue):  # no JSON type: their text form, a string
            assert gv == value_text(wv)
        elif type(wv) is float and wv != wv:
            assert type(gv) is float and gv != gv  # NaN
        else:
            assert gv == wv and type(gv) is type(wv)


@given(st.lists(st.sampled_from([(1, None, None, None, 5), (1, None, None, None, 5.0),
                                 (1, 1.0, 2.0, None, 5), (1, None, None, 3, True)]),
                max_size=12))
def test_dedup_drops_only_repeats(points: list) -> None:
    pts = [(i, *p[1:]) for i, p in enumerate(points)]
    kept = list(dedup(pts))
    assert [p[0] for p in kept] == sorted(p[0] for p in kept)
    if pts:
        assert kept[0] == pts[0] and kept[-1] == pts[-1]
    for p in pts:
        if p not in kept:  # dropped: equal to the reading just before it
            prev = pts[p[0] - 1]
            assert prev[1:4] == p[1:4] and bits(prev[4]) == bits(p[4])


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_iso_instants_agree_with_datetime(dt: datetime) -> None:
    text = dt.isoformat(timespec="microseconds") + "Z"
    expected = (dt.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC))
    us = (expected.days * 86400 + expected.seconds) * 1_000_000 + expected.microseconds
    assert parse_iso_instant(text, "start") == us
