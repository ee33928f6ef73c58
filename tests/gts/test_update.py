"""The update format: every form docs/warp10-input.md lists, errors with line numbers, and
round-trip properties over generated readings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.errors import GTSParseError
from fanout.gts import format_reading, format_update, parse_update, series_key, sort_key
from fanout.gts import update as update_mod
from fanout.gts.fastnew import make_reading
from fanout.gts.model import Reading

from .strategies import readings

NOW = 5_000_000


def one(line: str) -> Reading:
    [r] = parse_update(line, NOW)
    return r


def r(ts=1000, lat=None, lon=None, elev=None, cls="a", labels=(), value=1) -> Reading:
    return Reading(ts, lat, lon, elev, cls, labels, value)


# --- the forms of docs/warp10-input.md -------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/48.1:-4.5/ name{} 1", r(ts=NOW, lat=48.1, lon=-4.5, cls="name")),
        ("1000// a{} 1", r()),
        ("1000/48.1:-4.5/ a{} 1", r(lat=48.1, lon=-4.5)),
        ("1000//12 a{} 1", r(elev=12)),
        ("1000/48.1:-4.5/12 a{} 1", r(lat=48.1, lon=-4.5, elev=12)),
        ("1000/-90:180/-12 a{} 1", r(lat=-90.0, lon=180.0, elev=-12)),
        ("1000/0:-0.5e1/ a{} 1", r(lat=0.0, lon=-5.0)),
        ("-1000// a{} 1", r(ts=-1000)),
        ("// a{} 1", r(ts=NOW)),
    ],
)
def test_position_forms(line: str, expected: Reading) -> None:
    assert one(line) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-7", -7),
        ("0", 0),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("3.14", 3.14),
        ("1.0E10", 1.0e10),
        ("1e5", 1e5),
        ("-2.5e-3", -2.5e-3),
        (".5", 0.5),
        ("5.", 5.0),
        ("T", True),
        ("F", False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("False", False),
        ("tRuE", True),
        ("'hello%20world'", "hello world"),
        ("''", ""),
        ("'raw text é {}=,'", "raw text é {}=,"),
        ("'%27quoted%27'", "'quoted'"),
    ],
)
def test_value_types(text: str, value: object) -> None:
    got = one(f"1000// a{{}} {text}").value
    assert got == value
    assert type(got) is type(value)


def test_labels_decoded_and_sorted() -> None:
    got = one("1000// os%20cpu{z=1,a=,b%3D=v%2Cw} 1")
    assert got.cls == "os cpu"
    assert got.labels == (("a", ""), ("b=", "v,w"), ("z", "1"))


def test_continuation_comments_blank_lines_and_crlf() -> None:
    body = "# header\r\n\r\n1000// a{k=v} 42\r\n=1001// 43\n  \n=/1:2/3 'x'\n# end\n"
    assert parse_update(body, NOW) == [
        r(labels=(("k", "v"),), value=42),
        r(ts=1001, labels=(("k", "v"),), value=43),
        r(ts=NOW, lat=1.0, lon=2.0, elev=3, labels=(("k", "v"),), value="x"),
    ]


def test_continuation_follows_the_latest_series() -> None:
    body = "1// a{} 1\n=2// 2\n3// b{} 3\n=4// 4\n"
    assert [(x.cls, x.ts) for x in parse_update(body, NOW)] == [
        ("a", 1),
        ("a", 2),
        ("b", 3),
        ("b", 4),
    ]


def test_blanks_between_fields_and_around_value() -> None:
    assert one("1000//\t a{}  \t 'a b' \t") == r(value="a b")
    assert one("  1000// a{} 1") == r()
    assert parse_update("", NOW) == []
    assert parse_update("\n\n# only comments\n", NOW) == []


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("x// a{} 1", "invalid timestamp 'x'"),
        ("99999999999999999999// a{} 1", "timestamp 99999999999999999999 out of signed 64-bit"),
        ("1000/91:0/ a{} 1", "latitude 91.0 out of range [-90, 90]"),
        ("1000/0:-180.5/ a{} 1", "longitude -180.5 out of range [-180, 180]"),
        ("1000/1:/ a{} 1", "latitude and longitude must be given together"),
        ("1000/:1/ a{} 1", "latitude and longitude must be given together"),
        ("1000/48.1/ a{} 1", "location must be LAT:LON or an HHCode"),
        ("1000/nan:0/ a{} 1", "invalid latitude 'nan'"),
        ("1000/1e999:0/ a{} 1", "latitude inf out of range"),
        ("1000//1.5 a{} 1", "invalid elevation '1.5'"),
        ("1000/1 a{} 1", "invalid TS/LAT:LON/ELEV field '1000/1'"),
        ("1000 a{} 1", "invalid TS/LAT:LON/ELEV field '1000'"),
        ("1000// a{ 1", "unclosed label block"),
        ("1000// a 1", "missing label block"),
        ("1000// a{}x 1", "unexpected text 'x' after label block"),
        ("1000// {} 1", "empty class name"),
        ("1000// %zz{} 1", "invalid class '%zz'"),
        ("1000// a{k=1,k=2} 1", "duplicate label 'k'"),
        ("1000// a{=1} 1", "empty label name"),
        ("1000// a{k} 1", "label 'k' has no '='"),
        ("1000// a{k=1,} 1", "empty label"),
        ("1000// a{}", "missing value"),
        ("1000// 42", "missing CLASS{LABELS}"),
        ("1000//", "missing CLASS{LABELS} and VALUE"),
        ("1000// a{} 'abc", "unterminated string value"),
        ("1000// a{} '", "unterminated string value"),
        ("1000// a{} 'a' b", "unterminated string value"),
        ("1000// a{} '%zz'", "invalid string value"),
        ("1000// a{} abc", "value 'abc' is not a LONG, DOUBLE, BOOLEAN, STRING or BINARY"),
        ("1000// a{} 1 2", "value '1 2' is not a LONG"),
        ("1000// a{} nan", "value 'nan' is not a LONG"),
        ("1000// a{} inf", "value 'inf' is not a LONG"),
        ("1000// a{} 9223372036854775808", "LONG value 9223372036854775808 out of signed 64-bit"),
        ("=1001// 43", "continuation line '=' without a previous reading"),
        ("1// a{} 1\n=2// \x0c", "value '\\x0c' is not a LONG"),
        ("1// a{} 1\n=2// b{} 3", "a continuation line ('=') takes no CLASS{LABELS}"),
        ("1000// a{} \ud800", "invalid character U+D800"),
    ],
)
def test_errors_name_the_reason(line: str, reason: str) -> None:
    with pytest.raises(GTSParseError) as info:
        parse_update(line, NOW)
    last = line.count("\n") + 1  # the bad line is the last one
    assert info.value.line == last
    assert reason in info.value.reason, info.value.reason
    assert str(info.value) == f"line {last}: {info.value.reason}"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("1000// a{} 1\n1001// a{} 2\n1002// a{} x", 3),
        ("1000// a{} 1\n1001// a{} 2\n1002// a{} x\n", 3),
        ("# c\n\n1000// a{} oops\n1001// a{} 1\n", 3),
        ("1000// a{} 1\r\n=1001// 2\r\n=x// 3\r\n", 3),
        ("1// a{} 1\n2// b{} 2\n3// c{ 3\n", 3),
        ("1// a{} 1\n2// b{} 2\n=3// c{} 3\n", 3),
        ("1// a{} 1\n2// b{} 2\n3// c{} 99999999999999999999\n", 3),
        ("1// a{} 1\n2// b{} 2\n3/91:0/ c{} 3\n", 3),
        ("1// a{} 1\n\n\n\n5// b{} \ud800\n", 5),
    ],
)
def test_error_line_numbers(body: str, line: int) -> None:
    with pytest.raises(GTSParseError) as info:
        parse_update(body, NOW)
    assert info.value.line == line


# --- formatting --------------------------------------------------------------------------


def test_format_examples() -> None:
    assert format_reading(r()) == "1000// a{} 1"
    x = r(lat=48.1, lon=-4.5, elev=12, cls="a.b", labels=(("k", "v w"),), value="x'y")
    assert format_reading(x) == "1000/48.1:-4.5/12 a.b{k=v%20w} 'x%27y'"
    assert format_reading(r(elev=-3, value=2.0)) == "1000//-3 a{} 2.0"
    assert format_reading(r(value=1e100)) == "1000// a{} 1e+100"
    assert format_reading(r(value=True)) == "1000// a{} T"
    assert format_reading(r(value=False)) == "1000// a{} F"
    assert format_reading(r(lat=1.0, lon=2.0)) == "1000/1.0:2.0/ a{} 1"
    assert format_reading(r(labels=(("k", "v"),)), (("x", "1"), ("y", ""))) == (
        "1000// a{k=v}{x=1,y=} 1"
    )
    assert format_reading(r(), ()) == "1000// a{}{} 1"


def test_format_update_writes_full_lines() -> None:
    body = "1000// a{k=v} 1\n=1001// 2\n=1002/1.5:2.5/ 'é'\n"
    assert format_update(parse_update(body, NOW)) == (
        "1000// a{k=v} 1\n1001// a{k=v} 2\n1002/1.5:2.5/ a{k=v} '%C3%A9'\n"
    )
    assert format_update([]) == ""


def test_format_update_matches_format_reading() -> None:
    rs = [
        r(),
        r(value=1.5),
        r(value=True),
        r(value="s p"),
        r(lat=1.0, lon=2.0, elev=3),
        r(elev=0),
        r(cls="b", value=-0.0),
    ]
    assert format_update(rs) == "".join(format_reading(x) + "\n" for x in rs)


def test_format_rejects_unformattable_readings() -> None:
    # Non-finite doubles are values since Warp 10 takes them; a half position is not.
    assert format_reading(r(value=float("nan"))) == "1000// a{} NaN"
    assert format_update([r(value=float("-inf"))]) == "1000// a{} -Infinity\n"
    with pytest.raises(ValueError):
        format_update([r(lat=1.0)])


def test_series_key_and_sort_key() -> None:
    assert series_key("os cpu", (("a", "1"), ("b", "{}"))) == "os%20cpu{a=1,b=%7B%7D}"
    assert series_key("a", ()) == "a{}"
    series = [
        ("b", ()),
        ("a", (("k", "2"),)),
        ("a", ()),
        ("a", (("j", "9"),)),
        ("a", (("k", "1"), ("z", ""))),
        ("a", (("k", "1"),)),
    ]
    assert sorted(series, key=lambda s: sort_key(*s)) == [
        ("a", ()),
        ("a", (("j", "9"),)),
        ("a", (("k", "1"),)),
        ("a", (("k", "1"), ("z", ""))),
        ("a", (("k", "2"),)),
        ("b", ()),
    ]


# --- the fast path -----------------------------------------------------------------------


def test_canonical_bodies_never_take_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The timing budget depends on canonical lines staying on the fast path."""

    def fail(*args: object) -> None:
        raise AssertionError(f"slow path used for {args[0]!r}")

    body = (
        "1000// a{k=v} 1\n1001/48.1:-4.5/12 a{k=v} 2.5\n1002//-1 b%20c{} 'x%20y'\n"
        "1003// a{} T\n1004// a{} F\n1005// a{} ''\n1006// a{} 1e+100\n"
        "=1007// 9223372036854775\n"
    )
    monkeypatch.setattr(update_mod, "_parse_slow", fail)
    assert len(parse_update(body, NOW)) == 8


def test_make_reading_equals_the_constructor() -> None:
    a = make_reading(1, 2.0, 3.0, 4, "c", (("k", "v"),), "x")
    b = Reading(1, 2.0, 3.0, 4, "c", (("k", "v"),), "x")
    assert type(a) is Reading
    assert a == b
    assert hash(a) == hash(b)
    assert repr(a) == repr(b)


# Pieces of lines, valid and not, combined by near_valid_lines().
LINE_PARTS = {
    "ts": [
        "",
        "0",
        "-1",
        "1000",
        "01",
        "-",
        "1.5",
        "x",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "1234567890123456789",
        "+5",
        "T-5",
        "T",
        "T+9223372036854775807",
    ],
    "ll": [
        "",
        "1:2",
        "48.1:-4.5",
        "-90:180",
        "91:0",
        "0:181",
        "1:",
        ":",
        ":2",
        ".5:-.5",
        "1e1:1E1",
        "a:b",
        "1:2:3",
        "1e999:0",
        "-0:-0",
        "+1:2",
        "0",
        "-5372670727227936656",
        "NaN:0",
        "1d:0x1p1",
    ],
    "elev": ["", "0", "12", "-12", "1.5", "x", "99999999999999999999", "-"],
    "series": [
        "a{}",
        "a{k=v}",
        "a%20b{k=v%2C}",
        "a",
        "{}",
        "a{k}",
        "a{",
        "a{}x",
        "%zz{}",
        "a{k=1,k=2}",
        "=a{}",
    ],
    "value": [
        "",
        "1 2",
        "1",
        "-1",
        "0",
        "1.5",
        ".5",
        "1.",
        "1e5",
        "1E+5",
        "-1.5e-3",
        "1e999",
        "'x'",
        "''",
        "'a%20b'",
        "'a b'",
        "'%zz'",
        "'a'b'",
        "'",
        "'x",
        "T",
        "F",
        "t",
        "true",
        "TRUE",
        "tRuE",
        "fAlSe",
        "nan",
        "NaN",
        "inf",
        "-Infinity",
        "+1",
        "abc",
        "99999999999999999999",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "1234567890123456789",
        "-1234567890123456789",
        '"x y"',
        "\"it's\"",
        "'it's'",
        "b64:AAH-_w",
        "b64:AAH+/w==",
        "b64:A",
        "hex:0aff",
        "hex:abc",
        "HH:48.0:-4.5",
        "[ 1 2.5 'x' ]",
        "[!1 [ 2 ] 3/48.0:-4.5/7/T]",
        "[ 1",
        "Infinity",
        "0x1.8p1",
        "2d",
        "f",
        "Q:1:0:0:0",
    ],
    "sep": [" ", "\t", "  ", " \t "],
}


@st.composite
def near_valid_lines(draw: st.DrawFn) -> str:
    part = {k: draw(st.sampled_from(v)) for k, v in LINE_PARTS.items()}
    position = f"{part['ts']}/{part['ll']}/{part['elev']}"
    if draw(st.booleans()):
        line = f"={position}{part['sep']}{part['value']}"
    else:
        line = f"{position}{part['sep']}{part['series']}{part['sep']}{part['value']}"
    return draw(st.sampled_from(["", " ", "\t"])) + line + draw(st.sampled_from(["", " ", "\r"]))


def _slow_only(body: str) -> list[Reading] | str:
    """Reference parse of a body through the explaining path only."""
    prev = None
    out = []
    for n, line in enumerate(body.split("\n"), 1):
        try:
            got = update_mod._parse_slow(line.removesuffix("\r"), NOW, prev)
        except update_mod.FieldError as exc:
            return f"line {n}: {exc}"
        if got is not None:
            out.append(got)
            prev = got
    return out


@settings(max_examples=300)
@given(st.lists(near_valid_lines(), min_size=1, max_size=3))
def test_fast_path_agrees_with_slow_path(lines: list[str]) -> None:
    body = "\n".join(["1// p{} 0", *lines])
    try:
        got: list[Reading] | str = parse_update(body, NOW)
    except GTSParseError as exc:
        got = str(exc)
    expected = _slow_only(body)
    assert repr(got) == repr(expected)


# --- properties --------------------------------------------------------------------------


@given(st.lists(readings(), max_size=8))
def test_format_then_parse_roundtrips(rs: list[Reading]) -> None:
    text = format_update(rs)
    back = parse_update(text, 0)
    # repr() compares exactly: value types (bool vs int, int vs float) and -0.0 vs 0.0.
    assert repr(back) == repr(rs)
    assert format_update(back) == text


@given(readings())
def test_format_reading_parses_back(x: Reading) -> None:
    assert repr(parse_update(format_reading(x), 0)) == repr([x])


@given(st.lists(near_valid_lines(), max_size=4))
def test_format_parse_is_idempotent(lines: list[str]) -> None:
    try:
        rs = parse_update("1// p{} 0\n" + "\n".join(lines), NOW)
    except GTSParseError:
        return
    text = format_update(rs)
    assert format_update(parse_update(text, 0)) == text


FUZZ_ALPHABET = "0123456789/:=.-+eE \t\n\r\x0b\x0c\x85\u3000{}%,'~#abTFtrue\u00e9\ud800"


@given(
    st.one_of(
        st.text(),
        st.text(alphabet=FUZZ_ALPHABET),
        st.binary().map(lambda b: b.decode("utf-8", "replace")),
        st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),
    )
)
def test_random_text_raises_only_parse_errors(text: str) -> None:
    try:
        rs = parse_update(text, NOW)
    except GTSParseError as exc:
        assert exc.line >= 1
        return
    assert parse_update(format_update(rs), NOW) == rs
