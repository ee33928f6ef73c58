"""Multi-value readings: ``[ ELEMENT ... ]`` (``[!`` asks Warp 10 not to compress).

An element is ``VALUE``, ``TS/VALUE``, ``TS/LAT:LON/VALUE``, ``TS//ELEV/VALUE`` or
``TS/LAT:LON/ELEV/VALUE`` (LAT:LON may be an HHCode, any part between slashes may be
empty); elements are separated by spaces, an element without a timestamp is at 0, and a
value may itself be a ``[ ... ]``. This reads exactly the elements Warp 10 reads: a token
runs to the next space, except a value starting with ``[``, which runs to its matching
``]``.

The canonical text lists each element in the shortest of those forms, strings with ``/``
percent-encoded too (a raw ``/`` would split the element), so it reads back to equal
elements, here and in Warp 10.
"""

from __future__ import annotations

from fanout.gts.encoding import encode
from fanout.gts.hhcode import from_hhcode
from fanout.gts.model import Element, MultiValue, Value
from fanout.gts.series import FieldError


def parse_multi(text: str, depth: int = 0) -> MultiValue:
    """Parse ``[ ... ]`` (the whole VALUE text, trailing blanks allowed)."""
    from fanout.gts.values import MAX_MULTI_DEPTH

    if depth >= MAX_MULTI_DEPTH:
        raise FieldError(f"multi-value nested deeper than {MAX_MULTI_DEPTH} levels")
    body = text.rstrip(" ")
    if len(body) < 2 or body[-1] != "]":
        raise FieldError("multi-value: missing closing ']'")
    compress = body[1] != "!"
    inner = body[1 if compress else 2:-1]
    elements: list[Element] = []
    i, n = 0, len(inner)
    while i < n:
        if inner[i] == " ":
            i += 1
            continue
        end = inner.find(" ", i)
        if end < 0:
            end = n
        head, value_start = _split_element(inner, i, end)
        if inner.startswith("[", value_start):
            end = _matching_bracket(inner, value_start)
        try:
            elements.append(_element(head, inner[value_start:end], depth))
        except FieldError as exc:
            raise FieldError(f"multi-value element {inner[i:end][:60]!r}: {exc}") from None
        i = end
    return MultiValue(tuple(elements), compress)


def _split_element(inner: str, start: int, end: int) -> tuple[list[str], int]:
    """The fields before the value (up to three: TS, LAT:LON, ELEV) and where it starts."""
    head: list[str] = []
    pos = start
    while len(head) < 3:
        slash = inner.find("/", pos, end)
        if slash < 0:
            break
        head.append(inner[pos:slash])
        pos = slash + 1
    return head, pos


def _matching_bracket(inner: str, start: int) -> int:
    """Index just past the ``]`` matching the ``[`` at ``start`` (or the end of text)."""
    level = 0
    for j in range(start, len(inner)):
        c = inner[j]
        if c == "[":
            level += 1
        elif c == "]":
            level -= 1
            if level == 0:
                return j + 1
    return len(inner)


def _element(head: list[str], value_text: str, depth: int) -> Element:
    from fanout.gts.values import parse_coord, parse_int64, parse_value

    ts = parse_int64(head[0], "timestamp") if head else 0
    lat = lon = None
    if len(head) >= 2 and head[1]:
        lat_text, colon, lon_text = head[1].partition(":")
        if colon:
            lat = parse_coord(lat_text, "latitude", 90.0)
            lon = parse_coord(lon_text, "longitude", 180.0)
        else:
            lat, lon = from_hhcode(parse_int64(head[1], "HHCode location"))
    elev = parse_int64(head[2], "elevation") if len(head) == 3 and head[2] else None
    value: Value = parse_value(value_text, depth + 1)
    return ts, lat, lon, elev, value


def format_multi(mv: MultiValue) -> str:
    """Canonical ``[ e1 e2 ]`` (``[! ...`` when not compressed; ``[ ]`` when empty)."""
    parts = ["[" if mv.compress else "[!"]
    parts.extend(_format_element(e) for e in mv.elements)
    parts.append("]")
    return " ".join(parts)


def _format_element(e: Element) -> str:
    from fanout.gts.values import format_value

    ts, lat, lon, elev, value = e
    vt = ("'" + encode(value).replace("/", "%2F") + "'" if type(value) is str
          else format_value(value))
    if lat is None or lon is None:
        if elev is None:
            return vt if ts == 0 else f"{ts}/{vt}"
        return f"{ts}//{int(elev)}/{vt}"
    ll = f"{float(lat)!r}:{float(lon)!r}"
    return f"{ts}/{ll}/{vt}" if elev is None else f"{ts}/{ll}/{int(elev)}/{vt}"
