"""Scalar fields of the update format: timestamps, positions, elevations and VALUEs.

Python's int() and float() accept far more than Warp 10 does (``1_000``, ``nan``, Unicode
digits, surrounding spaces), so every number is checked against an ASCII regex first; the
conversion then cannot fail and the canonical output always parses back identically.
"""

from __future__ import annotations

import base64
import math
import re

from fanout.gts.encoding import decode, encode
from fanout.gts.hhcode import from_hhcode, to_hhcode
from fanout.gts.model import INT64_MAX, INT64_MIN, Element, MultiValue, Value
from fanout.gts.series import FieldError

# Java's Long.parseLong: an optional sign, then ASCII digits.
_INT = re.compile(r"[+-]?[0-9]+")
# Java's Double.parseDouble (what Warp 10 reads DOUBLEs and coordinates with): decimal with
# an optional exponent, a hexadecimal float (binary exponent required), NaN, Infinity, an
# optional sign and an optional f/F/d/D suffix, which does not change a double's value.
_JAVA_DOUBLE = re.compile(
    r"([+-]?)(?:(NaN|Infinity)"
    r"|((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[fFdD]?"
    r"|(0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)[fFdD]?)"
)
_TRUE = frozenset({"t", "T"})
_FALSE = frozenset({"f", "F"})
_B64_CHARS = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
# Nesting deeper than this is refused: no client nests multi-values for real, and each
# level costs a recursion.
MAX_MULTI_DEPTH = 16


def parse_int64(text: str, what: str) -> int:
    """A decimal signed 64-bit integer (timestamps, elevations), as Long.parseLong."""
    if not _INT.fullmatch(text):
        raise FieldError(f"invalid {what} {text!r}")
    n = int(text)
    if not INT64_MIN <= n <= INT64_MAX:
        raise FieldError(f"{what} {text} out of signed 64-bit range")
    return n


def parse_double(text: str) -> float | None:
    """A double as Java's Double.parseDouble reads it (an overflow gives +-Infinity), or
    None if ``text`` is not one."""
    m = _JAVA_DOUBLE.fullmatch(text)
    if m is None:
        return None
    sign, word, dec, hexa = m.groups()
    if word is not None:
        x = math.nan if word == "NaN" else math.inf
    elif dec is not None:
        x = float(dec)
    else:
        x = float.fromhex(hexa)
    return -x if sign == "-" else x


def parse_coord(text: str, what: str, limit: float) -> float:
    """A latitude (limit 90) or longitude (limit 180) in decimal degrees."""
    x = parse_double(text)
    if x is None:
        raise FieldError(f"invalid {what} {text!r}")
    if not -limit <= x <= limit:  # also rejects NaN and +-Infinity
        raise FieldError(f"{what} {x!r} out of range [-{limit:g}, {limit:g}]")
    return x


def parse_value(text: str, depth: int = 0) -> Value:
    """One VALUE, in the type the text says, as Warp 10 reads it (``GTSHelper.parseValue``):
    LONG, DOUBLE (NaN and Infinity too), BOOLEAN (``T``, ``t``, ``true``... any case),
    STRING in single or double quotes (raw quotes inside are fine: only the first and the
    last character delimit it), BINARY (``b64:``, ``hex:``), the LONG of an ``HH:LAT:LON``
    position, or a multi-value ``[ ... ]``."""
    if not text:
        raise FieldError("missing value")
    first = text[0]
    if first in "'\"":
        if len(text) < 2 or text[-1] != first:
            raise FieldError("unterminated string value")
        return parse_string(text[1:-1])
    if len(text) == 1:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    else:
        low = text.lower()
        if low == "true":
            return True
        if low == "false":
            return False
    if first == "[":
        return parse_multi(text, depth)
    if text.startswith("b64:"):
        return _parse_b64(text[4:])
    if text.startswith("hex:"):
        return _parse_hex(text[4:])
    if text.startswith("HH:"):
        return _parse_hh(text[3:])
    if text.startswith("Q:"):
        return _parse_quaternion(text[2:])
    if first == ":":
        raise FieldError("custom value encoders (:name:...) are not supported")
    if _INT.fullmatch(text):
        n = int(text)
        if not INT64_MIN <= n <= INT64_MAX:
            raise FieldError(f"LONG value {text} out of signed 64-bit range")
        return n
    x = parse_double(text)
    if x is not None:
        return x
    raise FieldError(f"value {text!r} is not a LONG, DOUBLE, BOOLEAN, STRING or BINARY")


def _parse_quaternion(body: str) -> int:
    """``Q:w:x:y:z``: Warp 10 stores the LONG of the normalized quaternion, each component
    quantized to 16 bits (its ``TOQUATERNION``), w in the top bits."""
    parts = body.split(":")
    comps = [c for c in map(parse_double, parts) if c is not None]
    if len(parts) != 4 or len(comps) != 4:
        raise FieldError("quaternion value must be Q:w:x:y:z with four numbers")
    if not all(math.isfinite(c) for c in comps):
        raise FieldError("quaternion values require finite elements")
    w, x, y, z = comps
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    q = 0
    for c in (w, x, y, z):
        if norm != 0.0:
            c = c / norm
        q = (q << 16) | (math.floor(((c + 1.0) / 2.0) * 65535) & 0xFFFF)
    return q - (1 << 64) if q >= 1 << 63 else q


def _parse_b64(body: str) -> bytes:
    # Like Warp 10's decoder: either alphabet (standard or URL-safe), padding optional.
    if not _B64_CHARS.fullmatch(body) or len(body.rstrip("=")) % 4 == 1:
        raise FieldError("invalid b64: value (base64, standard or URL-safe alphabet)")
    core = body.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(core + "=" * (-len(core) % 4), validate=True)
    except ValueError:
        raise FieldError("invalid b64: value (base64, standard or URL-safe alphabet)") from None


def _parse_hex(body: str) -> bytes:
    if len(body) % 2:
        raise FieldError("hex: value has an odd number of hexadecimal digits")
    if not _HEX.fullmatch(body):
        raise FieldError("hex: value holds a character that is not a hexadecimal digit")
    return bytes.fromhex(body)


_HEX = re.compile(r"[0-9a-fA-F]*")


def _parse_hh(body: str) -> int:
    lat_text, colon, lon_text = body.partition(":")
    if not colon:
        raise FieldError("HH: value must be HH:LAT:LON")
    lat = parse_coord(lat_text, "latitude", 90.0)
    lon = parse_coord(lon_text, "longitude", 180.0)
    return to_hhcode(lat, lon)


def parse_string(inner: str) -> str:
    """Decode the text between the quotes of a STRING value."""
    try:
        return decode(inner)
    except ValueError as exc:
        raise FieldError(f"invalid string value: {exc}") from None


def format_double(x: float) -> str:
    """Canonical DOUBLE: repr() (round-trips exactly, always a "." or an exponent) for
    finite values, Java's ``NaN``, ``Infinity`` and ``-Infinity`` otherwise: the spellings
    both the node and Warp 10 read back as the same double."""
    if x - x == 0.0:
        return repr(x)
    if x != x:
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def format_binary(b: bytes) -> str:
    """Canonical BINARY: ``b64:`` and URL-safe base64 without padding, as Warp 10 writes it."""
    return "b64:" + base64.urlsafe_b64encode(b).decode("ascii").rstrip("=")


def format_value(v: Value) -> str:
    """Canonical VALUE text; the type is recoverable from it (bool before int, always).

    Every spelling is one Warp 10 accepts on /update, so the ``warp10`` sink replays
    datalog bodies as they are.
    """
    t = type(v)
    if t is int:
        return str(v)
    if t is str:
        return "'" + encode(v) + "'"  # type: ignore[arg-type]
    if t is float:
        return format_double(v)  # type: ignore[arg-type]
    if t is bool:
        return "T" if v else "F"
    if t is bytes:
        return format_binary(v)  # type: ignore[arg-type]
    if t is MultiValue:
        return format_multi(v)  # type: ignore[arg-type]
    # Subclasses (e.g. numpy types, IntEnum) fall back to the base type's spelling.
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return format_double(float(v))
    if isinstance(v, str):
        return "'" + encode(str(v)) + "'"
    if isinstance(v, bytes | bytearray):
        return format_binary(bytes(v))
    raise TypeError(f"unsupported value type {t.__name__}")


# -- multi-value readings ------------------------------------------------------------
#
# Multi-value readings: ``[ ELEMENT ... ]`` (``[!`` asks Warp 10 not to compress).
#
# An element is ``VALUE``, ``TS/VALUE``, ``TS/LAT:LON/VALUE``, ``TS//ELEV/VALUE`` or
# ``TS/LAT:LON/ELEV/VALUE`` (LAT:LON may be an HHCode, any part between slashes may be
# empty); elements are separated by spaces, an element without a timestamp is at 0, and a
# value may itself be a ``[ ... ]``. This reads exactly the elements Warp 10 reads: a token
# runs to the next space, except a value starting with ``[``, which runs to its matching
# ``]``.
#
# The canonical text lists each element in the shortest of those forms, strings with ``/``
# percent-encoded too (a raw ``/`` would split the element), so it reads back to equal
# elements, here and in Warp 10.

def parse_multi(text: str, depth: int = 0) -> MultiValue:
    """Parse ``[ ... ]`` (the whole VALUE text, trailing blanks allowed)."""
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
    ts, lat, lon, elev, value = e
    vt = ("'" + encode(value).replace("/", "%2F") + "'" if type(value) is str
          else format_value(value))
    if lat is None or lon is None:
        if elev is None:
            return vt if ts == 0 else f"{ts}/{vt}"
        return f"{ts}//{int(elev)}/{vt}"
    ll = f"{float(lat)!r}:{float(lon)!r}"
    return f"{ts}/{ll}/{vt}" if elev is None else f"{ts}/{ll}/{int(elev)}/{vt}"
