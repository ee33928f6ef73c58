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
from fanout.gts.hhcode import to_hhcode
from fanout.gts.model import INT64_MAX, INT64_MIN, MultiValue, Value
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
        from fanout.gts.multivalue import parse_multi  # it parses its elements with us

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
        from fanout.gts.multivalue import format_multi

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
