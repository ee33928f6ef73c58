"""DOUBLEs as Java's Double.toString prints them (JDK 19+), which is Warp 10's spelling."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout.gts.javafmt import java_double, java_url_encode


@pytest.mark.parametrize(
    ("x", "java"),
    [
        (0.0, "0.0"), (-0.0, "-0.0"), (1.0, "1.0"), (42.0, "42.0"), (-2.5, "-2.5"),
        (0.1, "0.1"), (0.001, "0.001"), (0.00099, "9.9E-4"), (1e-5, "1.0E-5"),
        (9999999.0, "9999999.0"), (1e7, "1.0E7"), (123456789.0, "1.23456789E8"),
        (1e20, "1.0E20"), (1e23, "1.0E23"), (2.0**63, "9.223372036854776E18"),
        (5e-324, "4.9E-324"), (1.7976931348623157e308, "1.7976931348623157E308"),
        (2.2250738585072014e-308, "2.2250738585072014E-308"), (0.002, "0.002"),
        (100.0, "100.0"), (12345.678, "12345.678"), (1.0e-3, "0.001"),
        (math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"),
    ],
)
def test_java_spelling(x: float, java: str) -> None:
    assert java_double(x) == java


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_round_trips_and_always_reads_as_a_double(x: float) -> None:
    text = java_double(x)
    assert struct.pack(">d", float(text)) == struct.pack(">d", x)
    assert "." in text  # what tells a DOUBLE from a LONG to every Warp 10 parser
    mantissa = text.split("E")[0].lstrip("-")
    assert not mantissa.startswith("0") or mantissa.startswith("0.")


@pytest.mark.parametrize(
    ("text", "java"),
    [("abc.-*_", "abc.-*_"), ("a b", "a%20b"), ("a+b", "a%2Bb"), (":/~'%", "%3A%2F%7E%27%25"),
     ("é€", "%C3%A9%E2%82%AC"), ("{},=", "%7B%7D%2C%3D")],
)
def test_warp_url_encoder(text: str, java: str) -> None:
    assert java_url_encode(text) == java
