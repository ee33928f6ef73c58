"""The meta format ``CLASS{LABELS}{ATTRIBUTES}``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout.errors import GTSParseError
from fanout.gts import format_meta, parse_meta
from fanout.gts.model import MetaLine

from .strategies import meta_lines


def test_parse_examples() -> None:
    body = "# attrs\n\nos.cpu{host=web1,dc=paris}{owner=ops,note=a%20b}\r\n  a{}{} \nb{}{gone=}\n"
    assert parse_meta(body) == [
        MetaLine(
            "os.cpu", (("dc", "paris"), ("host", "web1")), (("note", "a b"), ("owner", "ops"))
        ),
        MetaLine("a", (), ()),
        MetaLine("b", (), (("gone", ""),)),  # empty value kept: "remove" in delta mode
    ]


def test_format_examples() -> None:
    lines = [
        MetaLine("os cpu", (("k", "v,w"),), (("a", ""), ("b", "{}"))),
        MetaLine("x", (), ()),
    ]
    assert format_meta(lines) == "os%20cpu{k=v%2Cw}{a=,b=%7B%7D}\nx{}{}\n"
    assert format_meta([]) == ""


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("a{}", "missing attribute block"),
        ("a", "missing label block"),
        ("a{}{", "unclosed attribute block"),
        ("a{", "unclosed label block"),
        ("a{}x{}", "unexpected text 'x{}' after label block"),
        ("a{}{}x", "unexpected text 'x' after attribute block"),
        ("{}{}", "empty class name"),
        ("a{}{k=1,k=2}", "duplicate attribute 'k'"),
        ("a{k=1,k=2}{}", "duplicate label 'k'"),
        ("a{}{=1}", "empty attribute name"),
        ("a{}{k}", "attribute 'k' has no '='"),
        ("a{}{k=%zz}", "invalid attribute value '%zz'"),
        ("a b{}{}", "unexpected blank"),
        ("a{}{} {}", "unexpected blank"),
        ("a{}{{}}", "unexpected text '}' after attribute block"),
        ("a{}{{}", "unexpected '{' in attribute block"),
    ],
)
def test_errors(line: str, reason: str) -> None:
    with pytest.raises(GTSParseError) as info:
        parse_meta(f"ok{{}}{{}}\n\n{line}\nok{{}}{{}}\n")
    assert info.value.line == 3
    assert reason in info.value.reason, info.value.reason


@given(st.lists(meta_lines, max_size=6))
def test_format_then_parse_roundtrips(lines: list[MetaLine]) -> None:
    text = format_meta(lines)
    assert parse_meta(text) == lines
    assert format_meta(parse_meta(text)) == text


META_ALPHABET = "ab=,{}%2C7B \t\n\r#é\ud800"


@given(st.one_of(st.text(), st.text(alphabet=META_ALPHABET)))
def test_random_text_raises_only_parse_errors(text: str) -> None:
    try:
        lines = parse_meta(text)
    except GTSParseError as exc:
        assert exc.line >= 1
        return
    canonical = format_meta(lines)
    assert parse_meta(canonical) == lines
    assert format_meta(parse_meta(canonical)) == canonical
