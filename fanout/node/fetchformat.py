"""Warp 10's fetch output formats: ``text`` (its default), ``fulltext`` and ``json``.

Followed from Warp 10's ``EgressFetchHandler`` (textDump, jsonDump) and ``GTSHelper``
(tickToString, encodeValue), since clients parse these byte by byte:

- readings newest first (Warp 10 stores them under reversed timestamps), series in the
  node's (class, labels) order (Warp 10's is by internal ids; no client relies on it);
- ``text``: the first reading of a series is a full line, the others ``=TS/LAT:LON/ELEV
  VALUE`` continuation lines; ``fulltext``: every line full; lines end with ``\\n``;
- DOUBLEs and coordinates as Java's ``Double.toString`` (``1.0E-5``), BOOLEANs ``T``/``F``
  (``true``/``false`` in JSON), STRINGs quoted; names, labels, attributes and STRINGs
  percent-encoded as Warp 10's ``WarpURLEncoder`` does (``*`` kept, ``:`` and ``/`` escaped);
- ``showattr`` adds ``{attributes}`` after the labels (text formats; JSON always has them);
- ``dedup`` drops a reading equal (position, elevation and value) to the one before it,
  keeping the last reading of a run (``GTSDecoder.dedup``).

``canonical`` is the node's own form (the datalog's update format: full lines, oldest
first, Python float spelling); replicas compare with it and it round-trips exactly.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator

from fanout.gts.javafmt import java_double, java_url_encode
from fanout.gts.model import Labels, Value
from fanout.gts.values import format_value
from fanout.store.base import Point, SeriesChunk

FORMATS = ("text", "fulltext", "json", "canonical")
CANONICAL = "canonical"


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def output_format(requested: str | None) -> str:
    """The format a ``format`` parameter asks for: Warp 10 answers ``text`` for a missing
    or unknown one (tsv, raw, pack, wrapper... are not served: text instead)."""
    return requested if requested in FORMATS else "text"


def value_text(v: Value) -> str:
    """A VALUE as Warp 10's ``GTSHelper.encodeValue`` writes it.

    The one place where value types meet output: LONG, DOUBLE, BOOLEAN and STRING are
    spelled here; every other type (binary, multi-value, ... added in fanout.gts) is
    spelled by fanout.gts's own formatter, which is lossless and parses back."""
    t = type(v)
    if t is float:
        return java_double(v)  # type: ignore[arg-type]
    if t is str:
        return "'" + java_url_encode(v) + "'"  # type: ignore[arg-type]
    return format_value(v)  # LONG, BOOLEAN, and the new types of fanout.gts


def pairs_text(pairs: Labels) -> str:
    """``{name=value,...}`` escaped as Warp 10 does (``GTSHelper.labelsToString``)."""
    return "{" + ",".join(f"{java_url_encode(k)}={java_url_encode(v)}" for k, v in pairs) + "}"


def series_text(cls: str, labels: Labels, attrs: Labels | None = None) -> str:
    """``class{labels}``, with ``{attrs}`` when given, escaped as Warp 10 does."""
    head = java_url_encode(cls) + pairs_text(labels)
    return head if attrs is None else head + pairs_text(attrs)


def value_json(v: Value) -> str:
    """A VALUE as jsonDump writes it: numbers bare (Java spelling), booleans, strings."""
    t = type(v)
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return java_double(v)  # type: ignore[arg-type]
    if t is str:
        return _dumps(v)
    return _dumps(value_text(v))  # other types: their text form, as a JSON string


def _position(ts: int, lat: float | None, lon: float | None, elev: int | None) -> str:
    ll = "" if lat is None or lon is None else f"{java_double(lat)}:{java_double(lon)}"
    return f"{ts}/{ll}/" if elev is None else f"{ts}/{ll}/{elev}"


def _same(a: Point, b: Point) -> bool:
    """Java's equality of two readings for dedup: position, elevation and a value of the
    same type with the same bits (so NaN equals NaN, 0.0 differs from -0.0)."""
    if a[1:4] != b[1:4]:
        return False
    va, vb = a[4], b[4]
    if type(va) is not type(vb):
        return False
    if type(va) is float:
        return repr(va) == repr(vb)
    return va == vb


def dedup(points: Iterable[Point]) -> Iterator[Point]:
    """``GTSDecoder.dedup``: the first of every run of equal readings, and the very last
    reading when it ended a run."""
    prev: Point | None = None
    held: Point | None = None
    for p in points:
        if prev is not None and _same(prev, p):
            held = p
        else:
            held = None
            yield p
        prev = p
    if held is not None:
        yield held


def _series(chunks: Iterable[SeriesChunk]
            ) -> Iterator[tuple[str, Labels, Labels, Iterator[Point]]]:
    """Consecutive chunks of one series joined back into one stream of points."""
    for (cls, labels), group in itertools.groupby(chunks, key=lambda c: (c[0], c[1])):
        first = next(group)
        attrs = first[2]
        yield cls, labels, attrs, itertools.chain(
            first[3], itertools.chain.from_iterable(c[3] for c in group))  # noqa: B031


def render(chunks: Iterable[SeriesChunk], fmt: str, *, showattr: bool = False,
           dedupe: bool = False) -> Iterator[str]:
    """The reply of a fetch in ``fmt`` (text, fulltext or json), as pieces of text."""
    pick: Callable[[Iterable[Point]], Iterable[Point]] = dedup if dedupe else iter
    if fmt == "json":
        yield from _json(chunks, pick)
        return
    full = fmt == "fulltext"
    for cls, labels, attrs, points in _series(chunks):
        head = series_text(cls, labels, attrs if showattr else None)
        first = True
        for ts, lat, lon, elev, value in pick(points):
            pos = _position(ts, lat, lon, elev)
            if first or full:
                yield f"{pos} {head} {value_text(value)}\n"
                first = False
            else:
                yield f"={pos} {value_text(value)}\n"


def _json(chunks: Iterable[SeriesChunk],
          pick: Callable[[Iterable[Point]], Iterable[Point]]) -> Iterator[str]:
    """``[{"c":class,"l":{labels},"a":{attrs},"i":id,"la":0,"v":[[ts,(lat,lon,)(elev,)value]
    ...]}, ...]``. ``i`` is the series' rank in the reply (Warp 10 sends a masked internal
    id that changes with every request); ``la`` (last activity) is not tracked: 0."""
    yield "["
    for n, (cls, labels, attrs, points) in enumerate(_series(chunks)):
        head = (f'{{"c":{_dumps(cls)},"l":{_dumps(dict(labels))},'
                f'"a":{_dumps(dict(attrs))},"i":"{n}","la":0,"v":[')
        yield ("," if n else "") + head
        sep = ""
        for ts, lat, lon, elev, value in pick(points):
            parts = [str(ts)]
            if lat is not None and lon is not None:
                parts += [java_double(lat), java_double(lon)]
            if elev is not None:
                parts.append(str(elev))
            parts.append(value_json(value))
            yield f"{sep}[{','.join(parts)}]"
            sep = ","
        yield "]}"
    yield "]"
