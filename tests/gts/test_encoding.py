"""Percent-encoding: canonical output, lenient input, clean errors."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout.gts import decode, encode

CANONICAL = re.compile(r"(?:[A-Za-z0-9._:/-]|%[0-9A-F]{2})*")


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("", ""),
        ("os.cpu-1_a:b/c", "os.cpu-1_a:b/c"),
        ("a b", "a%20b"),
        ("{}=,'%+~", "%7B%7D%3D%2C%27%25%2B%7E"),
        ("é", "%C3%A9"),
        ("€", "%E2%82%AC"),
        ("😀", "%F0%9F%98%80"),
        ("\x00\n", "%00%0A"),
    ],
)
def test_encode_examples(raw: str, encoded: str) -> None:
    assert encode(raw) == encoded
    assert decode(encoded) == raw


def test_decode_is_lenient() -> None:
    assert decode("hello%20world") == "hello world"
    assert decode("%c3%a9%C3%A9") == "éé"  # either case
    assert decode("a+b") == "a+b"  # + is literal, not a space
    assert decode("é raw {}") == "é raw {}"  # raw characters pass through
    assert decode("é%20é") == "é é"


@pytest.mark.parametrize("bad", ["%", "%4", "%4g", "a%zz", "%C3", "%ED%A0%80", "%FF", "%C3%28"])
def test_decode_rejects_bad_escapes(bad: str) -> None:
    with pytest.raises(ValueError):
        decode(bad)


@given(st.text())
def test_roundtrip_and_canonical(s: str) -> None:
    e = encode(s)
    assert CANONICAL.fullmatch(e)
    assert decode(e) == s
    assert encode(decode(e)) == e


@given(st.text())
def test_decode_raises_only_value_error(s: str) -> None:
    with contextlib.suppress(ValueError):
        decode(s)
