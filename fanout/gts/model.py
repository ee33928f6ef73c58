"""The values the GTS parsers produce and the stores keep.

Everything here is already decoded (no percent-encoding) and normalized: labels and
attributes are tuples sorted by name, timestamps absolute microseconds. Two equal models
always format to the same bytes, which is what makes replay deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every timestamp, elevation, long value and tick (seq, oseq) is a signed 64-bit integer,
# as in Warp 10; these bounds are defined here only.
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
# (name, value) pairs sorted by name, names unique.
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class MultiValue:
    """A multi-value reading ``[ TS/LAT:LON/ELEV/VALUE ... ]`` (``[!`` : not compressed).

    Warp 10 turns one into a serialized, possibly compressed GTS wrapper and stores that
    as a BINARY value; its bytes depend on Warp 10's internal encoders. The node keeps the
    parsed elements instead and writes them back in a canonical ``[ ... ]`` text that Warp
    10 accepts as input: nothing is lost, and a replay to Warp 10 builds its own wrapper.
    """

    elements: tuple[Element, ...]
    compress: bool = True


# A reading's value. bool is checked before int everywhere: True is an int in Python.
# bytes is a BINARY value (``b64:``/``hex:`` on input); MultiValue a ``[ ... ]`` reading.
Value = int | float | bool | str | bytes | MultiValue
# One element of a multi-value reading: (ts, lat, lon, elev, value), ts 0 when not given.
Element = tuple[int, float | None, float | None, int | None, Value]


@dataclass(frozen=True, slots=True)
class Reading:
    """One point: ``TS/LAT:LON/ELEV CLASS{LABELS} VALUE``."""

    ts: int
    lat: float | None
    lon: float | None
    elev: int | None
    cls: str
    labels: Labels
    value: Value


@dataclass(frozen=True, slots=True)
class MetaLine:
    """One series' attributes: ``CLASS{LABELS}{ATTRIBUTES}``."""

    cls: str
    labels: Labels
    attrs: Labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """``name=value`` (op ``=``, exact) or ``name~regex`` (op ``~``)."""

    name: str
    op: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Selector:
    """``CLASSSEL{LABELSELS}``: class op ``=`` (exact) or ``~`` (regex, full match)."""

    cls_op: str
    cls_pattern: str
    labels: tuple[LabelSelector, ...]
