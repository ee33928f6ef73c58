"""Scalar fields of the update format: timestamps, positions, elevations and VALUEs.

Python's int() and float() accept far more than Warp 10 does (``1_000``, ``nan``, Unicode
digits, surrounding spaces), so every number is checked against an ASCII regex first; the
conversion then cannot fail and the canonical output always parses back identically.
"""

from __future__ import annotations

import math
import re

from fanout.gts.encoding import decode, encode
from fanout.gts.model import INT64_MAX, INT64_MIN, Value
from fanout.gts.series import FieldError

_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = frozenset(s + w for s in ("", "-", "+") for w in ("nan", "inf", "infinity"))
_BOOLS = {"T": True, "F": False}
_WORD_BOOLS = {"true": True, "false": False}


def parse_int64(text: str, what: str) -> int:
    """A decimal signed 64-bit integer (timestamps, elevations)."""
    if not _INT.fullmatch(text):
        raise FieldError(f"invalid {what} {text!r}")
    n = int(text)
    if not INT64_MIN <= n <= INT64_MAX:
        raise FieldError(f"{what} {text} out of signed 64-bit range")
    return n


def parse_coord(text: str, what: str, limit: float) -> float:
    """A latitude (limit 90) or longitude (limit 180) in decimal degrees."""
    if not _FLOAT.fullmatch(text):
        raise FieldError(f"invalid {what} {text!r}")
    x = float(text)
    if not -limit <= x <= limit:  # also rejects an overflow to +-inf
        raise FieldError(f"{what} {x!r} out of range [-{limit:g}, {limit:g}]")
    return x


def parse_value(text: str) -> Value:
    """One VALUE: LONG, DOUBLE, BOOLEAN or quoted STRING, in the type the text says."""
    if not text:
        raise FieldError("missing value")
    if text[0] == "'":
        return _parse_quoted(text)
    if _INT.fullmatch(text):
        n = int(text)
        if not INT64_MIN <= n <= INT64_MAX:
            raise FieldError(f"LONG value {text} out of signed 64-bit range")
        return n
    if _FLOAT.fullmatch(text):
        x = float(text)
        if math.isinf(x):
            raise FieldError(f"DOUBLE value {text} overflows (not finite)")
        return x
    b = _BOOLS.get(text)
    if b is None:
        b = _WORD_BOOLS.get(text.lower())
    if b is not None:
        return b
    if text.lower() in _NON_FINITE:
        raise FieldError(f"non-finite DOUBLE {text!r} is not supported")
    raise FieldError(f"value {text!r} is not a LONG, DOUBLE, BOOLEAN or STRING")


def _parse_quoted(text: str) -> str:
    if len(text) < 2 or text[-1] != "'":
        if "'" in text[1:]:
            raise FieldError(f"unexpected text after string value {text!r}")
        raise FieldError("unterminated string value")
    inner = text[1:-1]
    if "'" in inner:
        raise FieldError("quote inside string value must be encoded as %27")
    return parse_string(inner)


def parse_string(inner: str) -> str:
    """Decode the text between the quotes of a STRING value."""
    try:
        return decode(inner)
    except ValueError as exc:
        raise FieldError(f"invalid string value: {exc}") from None


def format_value(v: Value) -> str:
    """Canonical VALUE text; the type is recoverable from it (bool before int, always)."""
    t = type(v)
    if t is int:
        return str(v)
    if t is str:
        return "'" + encode(v) + "'"  # type: ignore[arg-type]
    if t is float:
        if not math.isfinite(v):  # type: ignore[arg-type]
            raise ValueError(f"cannot format non-finite DOUBLE {v!r}")
        return repr(v)
    if t is bool:
        return "T" if v else "F"
    # Subclasses (e.g. numpy types, IntEnum) fall back to the base type's spelling.
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return format_value(float(v))
    if isinstance(v, str):
        return "'" + encode(str(v)) + "'"
    raise TypeError(f"unsupported value type {t.__name__}")
