"""Fetch and delete time parameters, one row per form Warp 10 documents or its source
(``FETCH.computeTimeRange``, ``StandaloneDeleteHandler``) accepts, with Warp 10's answer."""

from __future__ import annotations

import pytest

from fanout.node.timeparams import (
    INT64_MAX,
    INT64_MIN,
    FetchRange,
    TimeParamError,
    delete_range,
    fetch_range,
    parse_iso_instant,
    parse_timespan,
)

NOW = 1_700_000_000_000_000  # the clock the rows are read against
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in microseconds


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"start": "1", "stop": "5"}, FetchRange(1, 5, None)),
        ({"start": "1", "end": "5"}, FetchRange(1, 5, None)),
        ({"start": "5", "stop": "1"}, FetchRange(1, 5, None)),  # swapped
        ({"start": "+1", "stop": "5"}, FetchRange(1, 5, None)),  # Long.parseLong takes +
        ({"now": "10", "timespan": "3"}, FetchRange(8, 10, None)),
        ({"end": "10", "timespan": "3"}, FetchRange(8, 10, None)),  # warp10-pywarp
        ({"stop": "10", "timespan": "3"}, FetchRange(8, 10, None)),
        ({"start": "8", "timespan": "3"}, FetchRange(8, 10, None)),
        ({"now": "10", "timespan": "-2"}, FetchRange(INT64_MIN, 10, 2)),  # negative: count
        ({"end": "10", "count": "2"}, FetchRange(INT64_MIN, 10, 2)),
        ({"start": "1", "end": "10", "count": "2"}, FetchRange(1, 10, 2)),
        ({"now": "now", "timespan": "1000"}, FetchRange(NOW - 999, NOW, None)),
        ({"start": "now", "timespan": "1000"}, FetchRange(NOW, NOW + 999, None)),
        ({"end": str(T0), "timespan": "PT0.002S"}, FetchRange(T0 - 1999, T0, None)),
        ({"end": str(T0), "timespan": "PT1H"}, FetchRange(T0 - 3_600_000_000 + 1, T0, None)),
        ({"end": str(T0), "timespan": "P1DT1M"},
         FetchRange(T0 - 86_460_000_000 + 1, T0, None)),
        ({"end": str(T0), "timespan": "P1W"}, FetchRange(T0 - 604_800_000_000 + 1, T0, None)),
        ({"start": "2024-01-01T00:00:00Z", "stop": "2024-01-01T00:00:01.5Z"},
         FetchRange(T0, T0 + 1_500_000, None)),
        ({"start": "2024-01-01T01:00:00+01:00", "stop": "2024-01-01T00:00:00.000001Z"},
         FetchRange(T0, T0 + 1, None)),
        ({"now": "2024-01-01T00:00Z", "timespan": "1"}, FetchRange(T0, T0, None)),
        ({"end": "10", "timespan": "0"}, FetchRange(11, 10, None)),  # empty, not an error
        ({"end": str(INT64_MIN), "timespan": "5"}, FetchRange(INT64_MIN, INT64_MIN, None)),
        ({"start": str(INT64_MAX), "timespan": "5"}, FetchRange(INT64_MAX, INT64_MAX, None)),
    ],
)
def test_fetch_range_forms(query: dict[str, str], expected: FetchRange) -> None:
    assert fetch_range(query, NOW) == expected


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({}, "missing either 'start' or 'end'"),
        ({"end": "1"}, "'count' is mandatory"),
        ({"start": "1"}, "missing 'end' or 'start' and 'timespan'"),
        ({"timespan": "5"}, "missing either"),
        ({"start": "1", "end": "2", "stop": "3"}, "both 'end' and 'stop'"),
        ({"end": "2", "now": "3"}, "both 'end' and 'now'"),
        ({"start": "1", "end": "2", "timespan": "3"}, "only 2 of those 3"),
        ({"now": "5", "timespan": "-2", "count": "1"}, "both 'count' and negative"),
        ({"end": "5", "timespan": "P1M"}, "years or months"),
        ({"end": "5", "timespan": "P1Y"}, "years or months"),
        ({"end": "5", "timespan": "PT"}, "invalid format"),
        ({"end": "5", "timespan": "1.5"}, "invalid format"),
        ({"end": "5", "timespan": ""}, "empty"),
        ({"end": str(INT64_MAX), "timespan": "0"}, "MAX_VALUE"),
        ({"start": "2024-01-01T00:00:00", "end": "5"}, "time zone"),  # no zone: refused
        ({"start": "2024-02-30T00:00:00Z", "end": "5"}, "invalid date"),
        ({"start": "yesterday", "end": "5"}, "ISO 8601"),
        ({"start": "1", "end": "99999999999999999999"}, "64-bit"),
        ({"end": "5", "count": "-1"}, "negative"),
    ],
)
def test_fetch_range_refusals(query: dict[str, str], error: str) -> None:
    with pytest.raises(TimeParamError, match=error):
        fetch_range(query, NOW)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"deleteall": ""}, None),
        ({"start": "1", "end": "5"}, (1, 5)),
        ({"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:00:00.000002Z"},
         (T0, T0 + 2)),
        ({"start": "-5", "end": "+5"}, (-5, 5)),
    ],
)
def test_delete_range_forms(query: dict[str, str], expected: tuple[int, int] | None) -> None:
    assert delete_range(query) == expected


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"start": "1"}, "both"),
        ({"start": "5", "end": "1"}, "must be <="),  # delete does not swap
        ({"start": "now", "end": "5"}, "invalid format"),  # no 'now' in delete
        ({"start": "1", "end": "2024-01-01"}, "invalid format"),  # no T: a long
    ],
)
def test_delete_range_refusals(query: dict[str, str], error: str) -> None:
    with pytest.raises(TimeParamError, match=error):
        delete_range(query)


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("1969-12-31T23:59:59.9999999Z", -1),  # nanoseconds truncated, as Java does
        ("2024-01-01T00:00:00.123456789Z", T0 + 123_456),
        ("2024-01-01T02:00:00+02:00", T0),
        ("2023-12-31T19:00:00-05:00", T0),
        ("2024-01-01T01:00:00+01:00[Europe/Paris]", T0),
        ("2024-02-29T00:00:00Z", T0 + 59 * 86_400_000_000),
    ],
)
def test_iso_instants(text: str, us: int) -> None:
    assert parse_iso_instant(text, "start") == us


@pytest.mark.parametrize(
    ("text", "us"),
    [("0", 0), ("PT0.002S", 2000), ("PT0.0025S", 2000), ("PT1S", 1_000_000),
     ("PT1M30S", 90_000_000), ("P2D", 172_800_000_000)],
)
def test_timespans(text: str, us: int) -> None:
    assert parse_timespan(text) == us
