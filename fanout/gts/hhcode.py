"""HHCodes: Warp 10's 64-bit positions (GeoXP points), to and from latitude and longitude.

An HHCode interleaves a 32-bit latitude slot (bit 63 first) with a 32-bit longitude slot:
the slot of ``lat`` is ``floor((lat + 90) / (180 / 2**32))``, that of ``lon`` likewise with
360. Warp 10 accepts a position as ``LAT:LON`` or as this number (``TS/HHCODE/ELEV``), and
the ``HH:LAT:LON`` value form is a LONG holding one.

The node keeps a position as a (lat, lon) pair. An HHCode is converted to the lat, lon of
the south-west corner of its cell, computed exactly (both slot sizes are powers of two
times 45, so ``slot * size - 90`` needs under 40 significant bits): converting that pair
back gives the same HHCode, so a position given as an HHCode reaches Warp 10 unchanged.
"""

from __future__ import annotations

import math

_LAT_UNIT = 180.0 / (1 << 32)
_LON_UNIT = 360.0 / (1 << 32)
_MASK32 = 0xFFFFFFFF


def _spread(x: int) -> int:
    """The 32 bits of ``x`` moved to the even bit positions of a 64-bit word."""
    x &= _MASK32
    x = (x | (x << 16)) & 0x0000FFFF0000FFFF
    x = (x | (x << 8)) & 0x00FF00FF00FF00FF
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x << 2)) & 0x3333333333333333
    return (x | (x << 1)) & 0x5555555555555555


def _gather(x: int) -> int:
    """Inverse of ``_spread``: the even bits of ``x`` packed into 32 bits."""
    x &= 0x5555555555555555
    x = (x | (x >> 1)) & 0x3333333333333333
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FF
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFF
    return (x | (x >> 16)) & _MASK32


def _signed(u: int) -> int:
    return u - (1 << 64) if u >= 1 << 63 else u


def to_hhcode(lat: float, lon: float) -> int:
    """The signed 64-bit HHCode of a position within [-90, 90] x [-180, 180].

    Like Warp 10, a latitude of exactly 90 falls in the slot past the top, which wraps to
    the last slot with the longitude moved half a turn; a longitude of 180 wraps to -180.
    """
    # floor of the rounded quotient, as Warp 10 computes it (not Python's exact ``//``)
    y = math.floor((lat + 90.0) / _LAT_UNIT)
    x = math.floor((lon + 180.0) / _LON_UNIT)
    if y & (1 << 32):
        y ^= _MASK32
        x ^= 0x80000000
    return _signed((_spread(y) << 1) | _spread(x))


def from_hhcode(hh: int) -> tuple[float, float]:
    """(lat, lon) of the south-west corner of the cell of ``hh`` (any 64-bit int)."""
    u = hh & ((1 << 64) - 1)
    return _gather(u >> 1) * _LAT_UNIT - 90.0, _gather(u) * _LON_UNIT - 180.0
