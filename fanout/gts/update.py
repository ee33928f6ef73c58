"""The update format: ``TS/LAT:LON/ELEV CLASS{LABELS} VALUE``, one reading per line.

This is the node's ingest hot path. A well-formed line is split and classified by one
compiled regex and its series part is parsed through a cache, so the common case costs a
couple of microseconds. Anything the fast path does not take, or finds out of range, is
handed to ``_parse_slow``, which accepts the same language but is written to explain
errors; keeping the messages there means the two paths cannot disagree on wording.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable

from fanout.errors import GTSParseError
from fanout.gts.encoding import encode
from fanout.gts.fastnew import make_reading
from fanout.gts.hhcode import from_hhcode
from fanout.gts.model import Labels, MetaLine, Reading, Value
from fanout.gts.series import (
    FieldError,
    check_text,
    format_pairs,
    parse_series,
    parse_series_attrs,
    series_key,
)
from fanout.gts.values import (
    INT64_MAX,
    INT64_MIN,
    format_value,
    parse_coord,
    parse_int64,
    parse_string,
    parse_value,
)

_NUM = r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# A DOUBLE needs a "." or an exponent, so a LONG too long for the LONG group is not
# mistaken for one (it goes to the slow path, which checks the 64-bit range).
_DOUBLE_RE = r"-?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)"
# One pass of findall over the whole body yields one tuple per line (MULTILINE ^...$; the
# catch-all keeps lines and tuples aligned). Groups: 1 "=" of a continuation, 2 TS,
# 3 "/" (non-empty iff the fast form matched), 4 LAT, 5 LON, 6 ELEV, 7 CLASS{LABELS}, then
# the VALUE already classified: 8 LONG, 9 DOUBLE, 10 STRING (inside the quotes),
# 11 BOOLEAN; 12 the whole line when the fast form did not match. Integers are limited to
# 18 digits so they fit in 64 bits without a check; longer ones take the slow path.
_FAST = re.compile(
    rf"^(?:(=?)(-?[0-9]{{1,18}})?(/)(?:({_NUM}):({_NUM}))?/(-?[0-9]{{1,18}})?[ \t]+"
    rf"(?:([^ \t\n]+)[ \t]+)?"
    rf"(?:(-?[0-9]{{1,18}})|({_DOUBLE_RE})|'([^'\n]*)'|(T|F|[tT][rR][uU][eE]|[fF][aA][lL][sS][eE]))"
    rf"[ \t]*|(.*))$",
    re.MULTILINE,
)


def _case_variants(word: str) -> Iterable[str]:
    return map("".join, itertools.product(*((c.lower(), c.upper()) for c in word)))


# Every spelling the BOOLEAN group can match, so the fast path converts with one lookup.
_BOOLS = {
    "T": True,
    "F": False,
    **dict.fromkeys(_case_variants("true"), True),
    **dict.fromkeys(_case_variants("false"), False),
}
_FULL = re.compile(r"([^ \t]*)[ \t]+([^ \t]+)[ \t]+(.*)")
_CONT = re.compile(r"=([^ \t]*)[ \t]+(.*)")
_FIRST_FIELD = re.compile(r"[^ \t]*")
_BLANKS = " \t"


class _Fallback(Exception):
    """The fast path met something to reject; the slow path says what exactly."""


# What stands for "now" in a body: a fixed time, or a clock read for each reading that
# needs it (``X-Warp10-Now: *``).
Now = int | Callable[[], int]


def _now(now: Now) -> int:
    return now() if callable(now) else now


def now_from_header(text: str, base_us: int, clock: Callable[[], int]) -> Now:
    """``X-Warp10-Now`` as Warp 10 reads it: ``+N``/``-N`` is ``base_us`` (the server's
    time) moved by N time units, ``*`` reads ``clock`` for each reading that needs it,
    anything else an absolute time. ValueError (with a message for the client) otherwise.
    """
    text = text.strip()
    if text == "*":
        return clock
    try:
        if text[:1] in ("+", "-"):
            delta = parse_int64(text[1:], "delta")
            now = base_us + delta if text[0] == "+" else base_us - delta
        else:
            now = parse_int64(text, "time")
    except FieldError:
        raise ValueError("header X-Warp10-Now must be a time, +N or -N (relative to the "
                         f"server's time) or *, got {text[:40]!r}") from None
    if not INT64_MIN <= now <= INT64_MAX:
        raise ValueError(f"header X-Warp10-Now {text[:40]!r} leaves the 64-bit time range")
    return now


def _parse_timestamp(text: str, now: Now) -> int:
    """``TS``: empty for now, ``T<delta>`` relative to now, else absolute (sign allowed)."""
    if not text:
        return _now(now)
    if text[0] != "T":
        return parse_int64(text, "timestamp")
    ts = _now(now) + parse_int64(text[1:], "relative timestamp")
    if not INT64_MIN <= ts <= INT64_MAX:
        raise FieldError(f"relative timestamp {text!r} leaves the signed 64-bit range")
    return ts


def _parse_position(field: str, now: Now) -> tuple[int, float | None, float | None, int | None]:
    """``TS/LAT:LON/ELEV`` with every part optional; ``LAT:LON`` may be an HHCode."""
    parts = field.split("/")
    if len(parts) != 3:
        raise FieldError(f"invalid TS/LAT:LON/ELEV field {field!r}")
    ts_text, ll_text, elev_text = parts
    ts = _parse_timestamp(ts_text, now)
    lat = lon = None
    if ll_text:
        lat_text, colon, lon_text = ll_text.partition(":")
        if not colon:
            if not _HHCODE.fullmatch(ll_text):
                raise FieldError(
                    f"location must be LAT:LON or an HHCode (a 64-bit integer), got {ll_text!r}")
            lat, lon = from_hhcode(parse_int64(ll_text, "HHCode location"))
        elif not lat_text or not lon_text:
            raise FieldError(
                f"latitude and longitude must be given together as LAT:LON, got {ll_text!r}"
            )
        else:
            lat = parse_coord(lat_text, "latitude", 90.0)
            lon = parse_coord(lon_text, "longitude", 180.0)
    elev = parse_int64(elev_text, "elevation") if elev_text else None
    return ts, lat, lon, elev


_HHCODE = re.compile(r"[+-]?[0-9]+")


def _parse_slow(line: str, now: Now, prev: Reading | None,
                attrs: list[tuple[int, MetaLine]] | None = None,
                lineno: int = 0) -> Reading | None:
    """Parse any line, explaining what is wrong; None for a blank or comment line. An
    ``{ATTRIBUTES}`` block after the labels goes to ``attrs`` (refused when it is None)."""
    s = line.strip(_BLANKS)
    if not s or s[0] == "#":
        return None
    if s[0] == "=":
        if prev is None:
            raise FieldError("continuation line '=' without a previous reading")
        m = _CONT.fullmatch(s)
        if m is None:
            raise FieldError("missing value")
        ts, lat, lon, elev = _parse_position(m[1], now)
        value_text = m[2].rstrip(_BLANKS)
        try:
            value = parse_value(value_text)
        except FieldError:
            if "{" in _FIRST_FIELD.match(value_text).group():  # type: ignore[union-attr]
                raise FieldError("a continuation line ('=') takes no CLASS{LABELS}") from None
            raise
        return Reading(ts, lat, lon, elev, prev.cls, prev.labels, value)
    m = _FULL.fullmatch(s)
    if m is None:
        fields = re.split(r"[ \t]+", s)
        _parse_position(fields[0], now)
        if len(fields) == 1:
            raise FieldError("missing CLASS{LABELS} and VALUE")
        raise FieldError("missing value" if "{" in fields[1] else "missing CLASS{LABELS}")
    ts, lat, lon, elev = _parse_position(m[1], now)
    if "}{" in m[2]:
        if attrs is None:
            raise FieldError("an {ATTRIBUTES} block is not allowed here")
        cls, labels, block = parse_series_attrs(m[2])
        attrs.append((lineno, MetaLine(cls, labels, block)))
    else:
        cls, labels = parse_series(m[2])
    return Reading(ts, lat, lon, elev, cls, labels, parse_value(m[3].rstrip(_BLANKS)))


def parse_update(text: str, now_us: Now,
                 attrs: list[tuple[int, MetaLine]] | None = None) -> list[Reading]:
    """Parse an update body into readings, in input order.

    ``now_us`` stands in for empty timestamps and is the base of relative ones (``T-N``);
    a callable is read for each reading that needs it. An ``{ATTRIBUTES}`` block after a
    line's labels is appended to ``attrs`` as (line number, MetaLine); without ``attrs``
    such a block is an error (canonical bodies never hold one). Raises GTSParseError
    naming the 1-based line and the reason at the first bad line; nothing is returned
    partially, so a client's 400 means none of its body was taken.
    """
    clock = now_us if callable(now_us) else None
    check_text(text)
    if "\r" in text:  # drop each line's trailing "\r", the last line's included
        text = text.replace("\r\n", "\n").removesuffix("\r")
    out: list[Reading] = []
    append = out.append
    split_lines: list[str] | None = None
    prev: Reading | None = None
    last_series = ""  # text of the series part that (cls, labels) were parsed from
    cls: str = ""
    labels: Labels = ()
    lineno = 0
    try:
        for lineno, fields in enumerate(_FAST.findall(text), 1):
            cont, ts_t, slash, lat_t, lon_t, elev_t, series, v_long, v_dbl, v_str, v_bool, rest = (
                fields
            )
            try:
                if not slash:  # not the fast form: blank, comment, or something to explain
                    if not rest:
                        continue
                    raise _Fallback
                if series:
                    if cont:
                        raise _Fallback
                    if series != last_series:
                        cls, labels = parse_series(series)
                        last_series = series
                elif not cont or prev is None:
                    raise _Fallback
                if lat_t:
                    lat = float(lat_t)
                    lon = float(lon_t)
                    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
                        raise _Fallback
                else:
                    lat = lon = None  # type: ignore[assignment]  # float | None
                value: Value
                if v_long:
                    value = int(v_long)
                elif v_dbl:
                    value = float(v_dbl)
                    if value - value:  # inf - inf is nan (truthy); finite values give 0.0
                        raise _Fallback
                elif v_bool:
                    value = _BOOLS[v_bool]
                else:
                    value = parse_string(v_str) if "%" in v_str else v_str
                prev = make_reading(
                    int(ts_t) if ts_t else (now_us if clock is None else clock()),  # type: ignore[arg-type]
                    lat,
                    lon,
                    int(elev_t) if elev_t else None,
                    cls,
                    labels,
                    value,
                )
            except (_Fallback, FieldError):
                if split_lines is None:
                    split_lines = text.split("\n")
                r = _parse_slow(split_lines[lineno - 1], now_us, prev, attrs, lineno)
                if r is None:
                    continue
                prev = r
                cls, labels, last_series = r.cls, r.labels, ""
            append(prev)
    except FieldError as exc:
        raise GTSParseError(lineno, str(exc)) from None
    return out


def format_reading(r: Reading, attrs: Labels | None = None) -> str:
    """The canonical line for ``r``, without newline; ``attrs`` adds ``{ATTRS}`` (showattr).

    Floats are written with repr() so they round-trip exactly and always show a ``.`` or an
    exponent, which is what tells a DOUBLE from a LONG on the way back in.
    """
    series = series_key(r.cls, r.labels)
    if attrs is not None:
        series += format_pairs(attrs)
    return f"{_position(r)} {series} {format_value(r.value)}"


def _position(r: Reading) -> str:
    lat, lon, elev = r.lat, r.lon, r.elev
    if lat is None and lon is None:
        ll = ""
    elif lat is None or lon is None:
        raise ValueError("reading has only one of latitude and longitude")
    else:
        ll = f"{float(lat)!r}:{float(lon)!r}"
    return f"{r.ts}/{ll}/" if elev is None else f"{r.ts}/{ll}/{int(elev)}"


def format_update(readings: Iterable[Reading]) -> str:
    """Canonical update body: one full line per reading (never ``=``), each ending "\\n".

    Same output as format_reading per line, inlined for the common shapes because fetch
    replies and datalog records go through here by the thousand. Consecutive readings of
    one series usually share their labels tuple, so the series key is reused by identity.
    """
    lines: list[str] = []
    append = lines.append
    last_cls: str | None = None
    last_labels: Labels | None = None
    key = ""
    for r in readings:
        cls, labels = r.cls, r.labels
        if cls is not last_cls or labels is not last_labels:
            key = series_key(cls, labels)
            last_cls, last_labels = cls, labels
        v = r.value
        t = type(v)
        if t is int:
            vt = str(v)
        # exact type tests (subclasses take format_value): fast, but mypy cannot narrow them
        elif t is float and v - v == 0.0:  # type: ignore[operator]  # finite: inf-inf is nan
            vt = repr(v)
        elif t is bool:
            vt = "T" if v else "F"
        elif t is str:
            vt = "'" + encode(v) + "'"  # type: ignore[arg-type]
        else:
            vt = format_value(v)  # non-finite floats (raises), subclasses
        if r.lat is None and r.lon is None and r.elev is None:
            append(f"{r.ts}// {key} {vt}\n")
        else:
            append(f"{_position(r)} {key} {vt}\n")
    return "".join(lines)
