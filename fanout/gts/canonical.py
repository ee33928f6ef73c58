"""A fast reader for update bodies that are already canonical (``format_update``'s output).

Every replicated record, and every replay, rebuilds its readings from a canonical body:
one ``TS// CLASS{LABELS} VALUE`` line per reading, single spaces, ASCII only. Such a body
needs none of the general parser's regex work: each line splits on its two spaces, and
each field is taken only in a spelling that ``parse_update``'s own fast path reads the
same way. The result is kept as columns (series, timestamps, values): a store that can
insert columns (``SqliteStore``) never builds the Reading objects, the rest iterate
``CanonicalReadings`` as the readings ``parse_update`` would have given. A body whose
values are all doubles or all longs is checked a whole column at a time; any other goes
line by line.

Anything else (a position or elevation, a blank line, a long beyond 18 digits, a
non-finite double, another spelling, an error) makes ``parse_canonical`` answer None, and
the caller parses the body with ``parse_update``: what is accepted, and every error
message, stays ``parse_update``'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Any, overload

from fanout.gts.encoding import encode
from fanout.gts.fastnew import make_reading
from fanout.gts.model import Labels, Reading, Value
from fanout.gts.series import FieldError, parse_series, series_key
from fanout.gts.values import parse_string

# parse_update's fast path takes timestamps and longs of at most 18 digits (they fit in
# 64 bits without a check); longer ones are range-checked by its slow path.
_MAX_DIGITS = 18
_DOUBLE_CHARS = "0123456789.e+-"
# str.translate tables deleting what a column of doubles (or of longs) may hold, lines
# included: anything left over is another kind of value.
_NOT_DOUBLE = str.maketrans("", "", _DOUBLE_CHARS + "\n")
_NOT_LONG = str.maketrans("", "", "0123456789-\n")


class _NotCanonical(Exception):
    """This body (or one line of it) is not in the form read here."""


class CanonicalReadings(Sequence[Reading]):
    """The readings of a canonical body as columns: ``series[i]`` (the series text of
    reading i, a key of ``keys``, which maps it to (class, labels)), ``ts[i]``,
    ``values[i]``; no position, no elevation. Reading objects are built on first use."""

    __slots__ = ("_readings", "keys", "series", "ts", "values")

    def __init__(self, keys: dict[str, tuple[str, Labels]], series: list[str], ts: list[int],
                 values: list[Value]):
        self.keys = keys
        self.series = series
        self.ts = ts
        self.values = values
        self._readings: list[Reading] | None = None

    def readings(self) -> list[Reading]:
        if self._readings is None:
            keys = self.keys
            self._readings = [
                make_reading(t, None, None, None, *keys[s], v)
                for s, t, v in zip(self.series, self.ts, self.values, strict=True)]
        return self._readings

    def __len__(self) -> int:
        return len(self.ts)

    @overload
    def __getitem__(self, i: int) -> Reading: ...
    @overload
    def __getitem__(self, i: slice) -> list[Reading]: ...
    def __getitem__(self, i: int | slice) -> Reading | list[Reading]:
        return self.readings()[i]

    def __iter__(self) -> Iterator[Reading]:
        return iter(self.readings())

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, CanonicalReadings | list | tuple):
            return self.readings() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like a list

    def __repr__(self) -> str:
        return f"CanonicalReadings({self.readings()!r})"


def parse_canonical(text: str, exact: bool = False) -> CanonicalReadings | None:
    """The readings of ``text`` as ``parse_update(text, 0)`` gives them, when ``text`` is a
    canonical update body; None when it is not (then ``parse_update`` must read it: it
    may still be valid, or it says what is wrong).

    ``exact``: only a body that is byte for byte ``format_update`` of its readings (every
    field in the one spelling it writes, each line ending in a newline), so that a
    client's body can be logged as it came, without formatting it again."""
    if not text.isascii() or "\t" in text or "\r" in text:
        return None
    if exact and text and text[-1] != "\n":
        return None
    try:
        return _parse(text, exact)
    except (_NotCanonical, FieldError, ValueError):
        return None


def _parse(text: str, exact: bool) -> CanonicalReadings:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    try:
        cols = _numeric_columns(text, lines, exact)
    except ValueError:  # FieldError is one
        cols = None  # the loop below decides
    if cols is not None:
        return cols
    keys: dict[str, tuple[str, Labels]] = {}
    series_col: list[str] = []
    ts_col: list[int] = []
    values: list[Value] = []
    add_series, add_ts, add_value = series_col.append, ts_col.append, values.append
    for line in lines:
        pos, series, vt = line.split(" ")  # ValueError unless exactly two spaces
        if pos[-2:] != "//":
            raise _NotCanonical  # a position or elevation, or not a reading at all
        ts_t = pos[:-2]
        digits = ts_t[1:] if ts_t[:1] == "-" else ts_t
        if not digits.isdigit() or len(digits) > _MAX_DIGITS:  # ASCII: only 0-9 are digits
            raise _NotCanonical
        if exact and digits[0] == "0" and ts_t != "0":  # str() writes no leading 0, no -0
            raise _NotCanonical
        if series not in keys:
            keys[series] = key = parse_series(series)
            if exact and series_key(*key) != series:
                raise _NotCanonical
        c = vt[:1]
        if c in {"'", "T", "F"}:
            add_value(_other(vt, exact))
        else:
            digits = vt[1:] if c == "-" else vt
            if digits.isdigit() and len(digits) <= _MAX_DIGITS:
                if exact and digits[0] == "0" and vt != "0":
                    raise _NotCanonical
                add_value(int(vt))
            else:
                x = _double(vt)
                if exact and repr(x) != vt:
                    raise _NotCanonical
                add_value(x)
        add_series(series)
        add_ts(int(ts_t))
    return CanonicalReadings(keys, series_col, ts_col, values)


def _numeric_columns(text: str, lines: list[str], exact: bool) -> CanonicalReadings | None:
    """The body's readings when its values are all doubles or all longs (a metrics
    client's body, and so most replicated records), taken column by column: each check
    runs once over a whole column in C (a join, a count, a map) instead of once per line
    in Python, which takes about a third off a replica's parse. None (or a ValueError)
    when the body is anything else, or when in doubt: then the line loop in _parse reads
    it and decides whether to decline, so what this takes is exactly what that loop
    takes."""
    n = len(lines)
    if not n or text.count(" ") != 2 * n:
        return None
    pos, series, vals = zip(*map(str.split, lines, repeat(" ")), strict=False)
    # Each line has at least three fields (zip stops at the shortest, and more than three
    # columns fail the unpacking) and the body holds two spaces a line: exactly three.
    ts = _stamp_column(pos, exact)
    values = _number_column(vals, exact)
    if ts is None or values is None:
        return None
    keys: dict[str, tuple[str, Labels]] = {}
    for s in dict.fromkeys(series):
        keys[s] = key = parse_series(s)
        if exact and series_key(*key) != s:
            return None
    return CanonicalReadings(keys, list(series), ts, values)


def _stamp_column(pos: Sequence[str], exact: bool) -> list[int] | None:
    """The timestamps of position fields that are all ``TS//``, TS of at most 18
    characters; else None."""
    joined = "\n".join(pos) + "\n"
    if joined.count("//\n") != len(pos):  # a field without "//" at its end (none holds a newline)
        return None
    stamps = joined.split("//\n")
    stamps.pop()
    digits = "".join(stamps)
    if digits.translate(_NOT_LONG) or max(map(len, stamps)) > _MAX_DIGITS:
        return None  # other characters, or a long (maybe negative) stamp
    ts = list(map(int, stamps))  # ValueError for "", "-" or a misplaced "-"
    if exact and "".join(map(str, ts)) != digits:  # as for longs in _number_column
        return None
    return ts


def _number_column(vals: Sequence[str], exact: bool) -> list[Value] | None:
    """The values, when all are doubles (finite) or all are longs of at most 18
    characters; else None."""
    joined = "\n".join(vals)
    if joined.translate(_NOT_DOUBLE) or "\n+" in "\n" + joined:
        return None  # a STRING, a BOOLEAN, a "+1.5", another spelling
    values: list[Value]
    digits = joined.replace("\n", "")
    if digits.replace("-", "").isdigit():  # no ".", "e" nor "+": all longs
        if max(map(len, vals)) > _MAX_DIGITS:
            return None  # a long (maybe negative) long
        values = list(map(int, vals))  # ValueError for "", "-" or a misplaced "-"
        # str(int(v)) is v, or shorter (a leading 0, -0): comparing concatenations is enough
        if exact and "".join(map(str, values)) != digits:
            return None
        return values
    if joined.count(".") != len(vals) and any(_longs(joined)):
        return None  # longs and doubles mixed (one "." a value: none is a long)
    values = list(map(float, vals))  # ValueError for "1.2.3", "e", ...
    if not all(map(math.isfinite, values)):  # type: ignore[arg-type]
        return None
    if exact and "\n".join(map(repr, values)) != joined:
        return None
    return values


def _longs(joined: str) -> list[bool]:
    """Which of the newline-joined values hold neither "." nor "e" (their other
    characters being digits, "-" and "+")."""
    return list(map(str.isdigit, joined.replace("-", "").replace("+", "").split("\n")))


def _other(vt: str, exact: bool) -> Value:
    """A STRING (``'...'``, percent-decoded) or a BOOLEAN (``T``/``F``); ``exact``: in
    format_update's spelling only."""
    if vt == "T":
        return True
    if vt == "F":
        return False
    inner = vt[1:-1]
    if len(vt) < 2 or vt[0] != "'" or vt[-1] != "'" or "'" in inner:
        raise _NotCanonical
    value = parse_string(inner) if "%" in inner else inner
    if exact and encode(value) != inner:
        raise _NotCanonical
    return value


def _double(vt: str) -> float:
    """parse_update's DOUBLE: digits with a "." or an exponent, an optional leading "-".
    float() takes more ("+1.5", "1_0.5", "inf", " 1.5"): only these characters reach it."""
    if vt.strip(_DOUBLE_CHARS) or vt[:1] == "+" or ("." not in vt and "e" not in vt):
        raise _NotCanonical
    x = float(vt)
    if x - x != 0.0:  # inf - inf is nan: parse_update refuses non-finite doubles here
        raise _NotCanonical
    return x
