"""Time parameters of fetch and delete, read the way Warp 10 reads them.

Warp 10 (``EgressFetchHandler`` with ``FETCH.computeTimeRange``, ``StandaloneDeleteHandler``)
accepts more than integers: ISO 8601 instants (``2024-05-01T10:00:00.5Z``), ``now`` as a
value, ``end`` or ``stop`` or ``now`` as the end of the range, a ``timespan`` that is an ISO
8601 duration (``PT0.002S``), a negative ``timespan`` meaning a count, and a ``start`` after
the end (swapped). Real clients depend on these: warp10-pywarp fetches with ``end`` and
``timespan``. Every rule lives here so fetch and delete cannot drift apart.

Errors are :class:`TimeParamError` with a message naming the parameter; the handlers turn
them into 400 (Warp 10 answers 400 or 500; a client error is what they are).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# Java's Long.parseLong: an optional sign, ASCII digits, 64-bit range.
_LONG = re.compile(r"[+-]?[0-9]+")
# java.time's ISO_ZONED_DATE_TIME, which ZonedDateTime.parse uses: the offset is required
# (Z, +HH:MM or +HH:MM:SS), seconds and up to 9 fraction digits are optional, a [Region]
# may follow.
_ISO_INSTANT = re.compile(
    r"([+-]?[0-9]{4,9})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)"
    r"(?:\[([^\]]+)\])?"
)
# Joda's ISOPeriodFormat.standard(): PnYnMnWnDTnHnMnS, seconds with a fraction.
_ISO_PERIOD = re.compile(
    r"P(?:(-?[0-9]+)Y)?(?:(-?[0-9]+)M)?(?:(-?[0-9]+)W)?(?:(-?[0-9]+)D)?"
    r"(?:T(?:(-?[0-9]+)H)?(?:(-?[0-9]+)M)?(?:(-?[0-9]+)(?:[.,]([0-9]+))?S)?)?"
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class TimeParamError(ValueError):
    """A time parameter Warp 10 would refuse; the message names it."""


def now_us() -> int:
    """The current time in the platform's unit (microseconds), like Warp 10's TimeSource."""
    return time.time_ns() // 1000


def parse_long(text: str, name: str) -> int:
    """Java's ``Long.parseLong`` (a leading ``+`` is allowed), or TimeParamError."""
    if not _LONG.fullmatch(text):
        raise TimeParamError(f"invalid format for parameter '{name}': {text[:40]!r}")
    n = int(text)
    if not INT64_MIN <= n <= INT64_MAX:
        raise TimeParamError(f"parameter '{name}' is out of the signed 64-bit range")
    return n


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def parse_iso_instant(text: str, name: str) -> int:
    """An ISO 8601 date-time with a zone, as microseconds since the epoch.

    Same rule as Warp 10's ``TOTIMESTAMP.parseTimestamp``: instant seconds times 10^6 plus
    the nanoseconds of the second divided by 1000 (truncated)."""
    m = _ISO_INSTANT.fullmatch(text)
    if not m:
        raise TimeParamError(
            f"invalid format for parameter '{name}': {text[:40]!r} is neither an integer nor "
            "an ISO 8601 timestamp with a time zone (YYYY-MM-DDThh:mm:ss.sssssssssZ)")
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    s = int(m.group(6) or 0)
    frac = (m.group(7) or "").ljust(9, "0")
    if not (1 <= mo <= 12 and 1 <= d <= _DAYS_IN_MONTH[mo - 1] and h < 24 and mi < 60
            and s < 60) or (mo == 2 and d == 29 and not _leap(y)):
        raise TimeParamError(f"invalid date or time in parameter '{name}': {text[:40]!r}")
    offset = _offset_seconds(m.group(8))
    if m.group(9):
        offset = _region_offset(m.group(9), y, mo, d, h, mi, s, offset, name)
    secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
    ts = secs * 1_000_000 + int(frac) // 1000
    if not INT64_MIN <= ts <= INT64_MAX:
        raise TimeParamError(f"parameter '{name}' is out of the 64-bit timestamp range")
    return ts


def _offset_seconds(off: str) -> int:
    if off == "Z":
        return 0
    sign = -1 if off[0] == "-" else 1
    parts = [int(p) for p in off[1:].split(":")]
    return sign * (parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0))


def _region_offset(zone: str, y: int, mo: int, d: int, h: int, mi: int, s: int,
                   offset: int, name: str) -> int:
    """java.time keeps the written offset when it is valid for the region at that local
    time, and takes the region's otherwise."""
    try:
        tz = ZoneInfo(zone)
        local = datetime(y, mo, d, h, mi, s)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeParamError(f"unknown time zone {zone[:40]!r} in parameter '{name}'") from None
    valid = []
    for fold in (0, 1):
        off = local.replace(tzinfo=tz, fold=fold).utcoffset() or timedelta(0)
        valid.append(int(off.total_seconds()))
    return offset if offset in valid else valid[0]


def parse_instant(text: str, name: str, now: int, *, allow_now: bool = True) -> int:
    """``now``, a Java long, or an ISO 8601 instant (fetch's ``getTimestamp``)."""
    if allow_now and text == "now":
        return now
    if _LONG.fullmatch(text):
        return parse_long(text, name)
    return parse_iso_instant(text, name)


def parse_timespan(text: str, name: str = "timespan") -> int:
    """A non-negative span in microseconds: a long, or an ISO 8601 duration without years
    or months (Warp 10 counts its milliseconds, so ``PT0.0025S`` is 2000)."""
    if not text:
        raise TimeParamError(f"parameter '{name}' is empty")
    if text[0] == "P":
        m = _ISO_PERIOD.fullmatch(text)
        if not m or text in ("P", ) or text.endswith("T"):
            raise TimeParamError(f"invalid format for parameter '{name}': {text[:40]!r}")
        years, months, weeks, days, hours, minutes, secs = (
            int(g) if g else 0 for g in m.groups()[:7])
        if years or months:
            raise TimeParamError(
                f"parameter '{name}': no support for ambiguous durations containing years "
                "or months, please convert those to days")
        millis = int((m.group(8) or "").ljust(3, "0")[:3])
        if secs < 0 or (secs == 0 and m.group(7) and m.group(7).startswith("-")):
            millis = -millis
        total_ms = ((((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs) * 1000
        span = (total_ms + millis) * 1000
    else:
        span = parse_long(text, name)
    if span < 0:
        raise TimeParamError(f"'{name}' cannot be negative")
    return span


@dataclass(frozen=True, slots=True)
class FetchRange:
    """Inclusive [start, end]; ``count``: only the newest ``count`` readings per series."""

    start: int
    end: int
    count: int | None


def _end_param(query: Mapping[str, str]) -> tuple[str | None, str]:
    """The end of a fetch and the name it was given under: ``stop`` and ``now`` are other
    names of ``end``, and only one of the three may be given."""
    end_text, end_name = query.get("end"), "end"
    for alias in ("stop", "now"):
        if alias in query:
            if end_text is not None:
                raise TimeParamError(f"cannot specify both '{end_name}' and '{alias}'")
            end_text, end_name = query[alias], alias
    return end_text, end_name


def fetch_range(query: Mapping[str, str], now: int | None = None) -> FetchRange:
    """The time range of a fetch, by Warp 10's rules (``EgressFetchHandler``):

    ``stop`` and ``now`` are other names of ``end`` (only one of the three); two of
    ``start``/``end``/``timespan`` define the range; ``end`` with ``count`` (or a negative
    ``timespan``, which is a count) reaches back to the beginning of time; ``start`` after
    ``end`` is swapped."""
    now = now_us() if now is None else now
    timespan = query.get("timespan")
    count_text = query.get("count")
    if timespan is not None and _LONG.fullmatch(timespan) and parse_long(timespan,
                                                                        "timespan") < 0:
        if count_text is not None:
            raise TimeParamError("cannot specify both 'count' and negative 'timespan'")
        count_text = str(-parse_long(timespan, "timespan"))
        timespan = None
    end_text, end_name = _end_param(query)
    start_text = query.get("start")
    start = None if start_text is None else parse_instant(start_text, "start", now)
    end = None if end_text is None else parse_instant(end_text, end_name, now)
    if start is None and end is None:
        raise TimeParamError(f"missing either 'start' or '{end_name}' parameter")
    if start is not None and end is not None and start > end:
        start, end = end, start
    if timespan is not None:
        if start is not None and end is not None:
            raise TimeParamError(
                f"invalid time range: 'start', '{end_name}' and 'timespan' cannot all be "
                "given; only 2 of those 3")
        span = parse_timespan(timespan)
        if start is None:
            assert end is not None
            if span == 0 and end == INT64_MAX:
                raise TimeParamError(f"cannot set 'timespan' to 0 and '{end_name}' to MAX_VALUE")
            start = max(INT64_MIN, end - span + 1)
        else:
            if span == 0 and start == INT64_MIN:
                raise TimeParamError("cannot set 'timespan' to 0 and 'start' to MIN_VALUE")
            end = min(INT64_MAX, start + span - 1)
    if end is None:
        raise TimeParamError(
            f"missing '{end_name}' or 'start' and 'timespan' parameter")
    count = None if count_text is None else parse_long(count_text, "count")
    if count is not None and count < 0:
        raise TimeParamError("'count' must not be negative")
    if start is None:
        if count is None:
            raise TimeParamError(
                "invalid time range: 'count' is mandatory if 'start' and 'timespan' are not "
                "given")
        start = INT64_MIN
    return FetchRange(start, end, count)


def delete_range(query: Mapping[str, str]) -> tuple[int, int] | None:
    """The range of a delete (``StandaloneDeleteHandler``): ``start`` and ``end`` both or
    neither (None); each a Java long, or an ISO 8601 instant when it contains a ``T``;
    no ``now``, no swapping (``start`` after ``end`` is an error)."""
    start_text, end_text = query.get("start"), query.get("end")
    if (start_text is None) != (end_text is None):
        raise TimeParamError("give both 'start' and 'end', or neither")
    if start_text is None or end_text is None:
        return None
    start = _delete_instant(start_text, "start")
    end = _delete_instant(end_text, "end")
    if start > end:
        raise TimeParamError(f"invalid time range: 'start' ({start}) must be <= 'end' ({end})")
    return start, end


def _delete_instant(text: str, name: str) -> int:
    if "T" in text:
        return parse_iso_instant(text, name)
    return parse_long(text, name)
