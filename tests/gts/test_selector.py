"""Selectors ``CLASSSEL{LABELSELS}``: parsing, canonical form, matching."""

from __future__ import annotations

import time

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.errors import SelectorError
from fanout.gts import format_selector, parse_selector, selector_matches
from fanout.gts.encoding import encode
from fanout.gts.model import LabelSelector, Selector
from fanout.gts.selector import Regex, compile_regex

from .strategies import selectors


def test_parse_example() -> None:
    sel = parse_selector("os.cpu{host~web.*,dc=paris}")
    assert sel == Selector(
        "=",
        "os.cpu",
        (LabelSelector("dc", "=", "paris"), LabelSelector("host", "~", "web.*")),
    )
    assert format_selector(sel) == "=os.cpu{dc=paris,host~web.%2A}"
    assert parse_selector("=os.cpu{dc=paris,host~web.%2A}") == sel


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a{}", Selector("=", "a", ())),
        ("=a{}", Selector("=", "a", ())),
        ("~a.*{}", Selector("~", "a.*", ())),
        ("%7Ea{}", Selector("=", "~a", ())),  # an encoded ~ is part of a bare name
        ("=~a{}", Selector("=", "~a", ())),
        ("~%5Cd%7B2%7D{}", Selector("~", r"\d{2}", ())),
        ("a{k=}", Selector("=", "a", (LabelSelector("k", "=", ""),))),
        ("a{k=a=b}", Selector("=", "a", (LabelSelector("k", "=", "a=b"),))),
        ("a{k~a=b}", Selector("=", "a", (LabelSelector("k", "~", "a=b"),))),
        ("a{k=v%2Cw}", Selector("=", "a", (LabelSelector("k", "=", "v,w"),))),
        (
            "a{z=1,b~x,b=y}",
            Selector(
                "=",
                "a",
                (
                    LabelSelector("b", "=", "y"),
                    LabelSelector("b", "~", "x"),
                    LabelSelector("z", "=", "1"),
                ),
            ),
        ),
    ],
)
def test_parse_forms(text: str, expected: Selector) -> None:
    assert parse_selector(text) == expected


def test_equal_selectors_compare_equal() -> None:
    assert parse_selector("a{y=1,x~.*}") == parse_selector("=a{x~.%2A,y=1}")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a", "no label selector block"),
        ("", "no label selector block"),
        ("a{", "unclosed label selector block"),
        ("a{k=v", "unclosed label selector block"),
        ("a{}x", "unclosed label selector block"),
        ("a}{}", "unexpected '}'"),
        ("a{{}}", "unexpected brace"),
        ("{}", "empty class selector"),
        ("={}", "empty class selector"),
        ("~{}", "empty class selector"),
        ("a{k}", "label selector 'k' has no '=' or '~'"),
        ("a{k=1,}", "empty label selector"),
        ("a{=1}", "empty label name"),
        ("a{~1}", "empty label name"),
        ("%zz{}", "invalid class selector '%zz'"),
        ("a{k=%zz}", "invalid label value '%zz'"),
        ("a{k~%zz}", "invalid label regex '%zz'"),
        ("a\ud800{}", "invalid character U+D800"),
    ],
)
def test_malformed(text: str, reason: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    assert reason in str(info.value), str(info.value)


@pytest.mark.parametrize("text", ["~(a{}", "a{k~[}", "a{k~*}", "~a%28{}"])
def test_invalid_regex_names_the_regex_and_re_message(text: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    message = str(info.value)
    assert message.startswith("invalid regex ")
    # RE2's words: "missing )", "missing ]", "no argument for repetition operator: *"
    assert any(m in message for m in ("missing", "no argument for repetition"))
    assert f"(in selector {text!r})" in message


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ("a{k~(a)%5C1}", "invalid escape sequence: \\1"),  # backreference
        ("~a(?=b){}", "invalid perl operator: (?="),  # lookahead
        ("~(?<!a)b{}", "invalid perl operator: (?<"),  # lookbehind
        ("a{k~a++}", "bad repetition operator: ++"),  # possessive
    ],
)
def test_backtracking_only_constructs_are_refused_with_the_reason(
    text: str, construct: str
) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    message = str(info.value)
    assert message.startswith("invalid regex "), message
    assert construct in message, message
    assert "RE2 syntax" in message and "backreferences" in message
    assert f"(in selector {text!r})" in message


@pytest.mark.parametrize(
    ("text", "cls", "labels"),
    [
        ("~(.|.)*!{}", "x" * 5000, ()),
        ("a{k~(a+)+}", "a", (("k", "a" * 5000 + "b"),)),
        ("~(a|aa)*c{}", "a" * 5000, ()),
        ("a{k~(x+x+)+y}", "a", (("k", "x" * 5000),)),
    ],
)
def test_catastrophic_regexes_match_in_linear_time(
    text: str, cls: str, labels: tuple[tuple[str, str], ...]
) -> None:
    """A backtracking engine needs 2^5000 steps for these; RE2 a few microseconds per char.
    The bound is generous (shared CI) and still 1e1000 times below backtracking."""
    sel = parse_selector(text)
    t0 = time.perf_counter()
    for _ in range(20):
        assert not selector_matches(sel, cls, labels)
    assert time.perf_counter() - t0 < 2.0


def test_regex_semantics_kept() -> None:
    def m(text: str, cls: str, **labels: str) -> bool:
        return selector_matches(parse_selector(text), cls, tuple(sorted(labels.items())))

    assert m("~(?i)OS%5C..%2A{}", "os.cpu")  # inline flags
    assert m("~%5Cd%7B2%7D{}", "42") and not m("~%5Cd%7B2%7D{}", "4x")
    assert m("a{k~(?P<n>x)y}", "a", k="xy")  # named groups parse
    assert m("~é.{}", "éà") and not m("~é{}", "e")  # UTF-8 aware, a char is a char
    assert not m("~a.b{}", "a\nb")  # '.' does not match a newline, as in re and Java
    assert m("~a|b{}", "b") and not m("~a|b{}", "ab")  # alternation is anchored as a whole
    assert m("~a.{}", "a\ud800")  # a lone surrogate in stored text is a char, no error


def test_matching_semantics() -> None:
    def m(text: str, cls: str, **labels: str) -> bool:
        return selector_matches(parse_selector(text), cls, tuple(sorted(labels.items())))

    # exact class, any labels with {}
    assert m("a{}", "a")
    assert m("=a{}", "a", k="v")
    assert not m("a{}", "ab")
    # class regex: full match only
    assert m("~a.*{}", "abc")
    assert not m("~b{}", "abc")
    assert not m("~a{}", "ab")
    assert m("~os%5C..%2A{}", "os.cpu")
    # exact label
    assert m("a{k=v}", "a", k="v", j="x")
    assert not m("a{k=v}", "a", k="vv")
    assert not m("a{k=v}", "a")
    assert m("a{k=v%2Cw}", "a", k="v,w")
    # label regex: full match
    assert m("a{k~web.*}", "a", k="web1")
    assert not m("a{k~web}", "a", k="web1")
    # an absent label is the empty string
    assert m("a{k=}", "a")
    assert m("a{k=}", "a", k="")
    assert not m("a{k=}", "a", k="v")
    assert m("a{k~.*}", "a")
    assert not m("a{k~.+}", "a")
    # all label selectors must match
    assert m("a{k=1,j~x|y}", "a", k="1", j="y")
    assert not m("a{k=1,j~x|y}", "a", k="1", j="z")
    assert not m("a{k=1,j~x|y}", "a", k="2", j="x")


def test_manually_built_selectors() -> None:
    sel = Selector("~", "(", ())
    with pytest.raises(SelectorError):
        selector_matches(sel, "a", ())
    with pytest.raises(SelectorError):
        selector_matches(Selector("!", "a", ()), "a", ())
    unsorted = Selector("=", "a", (LabelSelector("z", "=", "1"), LabelSelector("b", "=", "2")))
    assert format_selector(unsorted) == "=a{b=2,z=1}"


@given(selectors())
def test_format_then_parse_roundtrips(sel: Selector) -> None:
    text = format_selector(sel)
    assert parse_selector(text) == sel
    assert format_selector(parse_selector(text)) == text


SEL_ALPHABET = "ab=~,{}%2C7B.*()[]+?|\\ é"


@given(st.one_of(st.text(), st.text(alphabet=SEL_ALPHABET)))
def test_random_text_raises_only_selector_errors(text: str) -> None:
    try:
        sel = parse_selector(text)
    except SelectorError:
        return
    canonical = format_selector(sel)
    assert parse_selector(canonical) == sel
    assert format_selector(parse_selector(canonical)) == canonical
    selector_matches(sel, "a", (("a", "b"),))


REGEX_ALPHABET = "()[]{}*+?|.^$\\-aAb0:=!<>P,dwsSzZ"


@settings(max_examples=300)
@given(st.text(alphabet=REGEX_ALPHABET, max_size=30), st.text(max_size=40))
def test_random_regexes_raise_only_selector_errors_and_match_fast(pattern: str,
                                                                   text: str) -> None:
    """Any regex a client sends is either refused with SelectorError (parse time) or
    matched, in bounded time, against any name: never another exception."""
    try:
        sel = parse_selector(f"~{encode(pattern)}{{k~{encode(pattern)}}}")
    except SelectorError:
        return
    t0 = time.perf_counter()
    selector_matches(sel, text, (("k", text),))
    selector_matches(sel, text * 50, (("k", text * 50),))
    assert time.perf_counter() - t0 < 1.0
    # the fast path agrees with google-re2's public API
    if all(not 0xD800 <= ord(c) <= 0xDFFF for c in text):  # the public API refuses those
        public = re2.compile(pattern).fullmatch(text) is not None
        assert compile_regex(pattern).fullmatch(text) is public


def test_public_api_fallback_matches_the_same() -> None:
    """If a google-re2 release renames the private names the fast path uses."""
    fallback = Regex("web.*|é", re2.compile("web.*|é"))
    fallback._rx = None
    for text, want in (("web1", True), ("xweb", False), ("é", True), ("", False)):
        assert fallback.fullmatch(text) is want
        assert compile_regex("web.*|é").fullmatch(text) is want
