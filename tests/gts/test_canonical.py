"""parse_canonical: the fast reader of canonical update bodies must give exactly what
parse_update gives, and decline (None) every body parse_update refuses."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.errors import GTSParseError
from fanout.gts import format_update, parse_update
from fanout.gts.canonical import CanonicalReadings, _numeric_columns, parse_canonical
from fanout.gts.model import Reading

from .strategies import INT64, names, pairs, readings, texts
from .test_update import near_valid_lines


def _reference(body: str) -> list[Reading] | str:
    try:
        return parse_update(body, 0)
    except GTSParseError as exc:
        return f"error: {exc}"


def _agrees(body: str) -> bool:
    """The fast reader agrees with parse_update on ``body``; True if it took it. What its
    exact mode takes is also exactly format_update of the readings."""
    exact = parse_canonical(body, exact=True)
    if exact is not None:
        assert format_update(list(exact)) == body
        assert repr(list(exact)) == repr(_reference(body))
    got = parse_canonical(body)
    if got is None:
        assert exact is None
        return False
    expected = _reference(body)
    assert not isinstance(expected, str), f"took a body parse_update refuses: {expected}"
    # repr() compares exactly: bool vs int, int vs float, -0.0 vs 0.0
    assert repr(list(got)) == repr(expected)
    assert len(got) == len(expected)
    return True


# Readings the fast reader is meant to take: no position, longs of <= 18 digits, finite
# doubles, strings, booleans.
fast_values = st.one_of(
    st.integers(-(10**18) + 1, 10**18 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    texts,
)
fast_readings = st.builds(Reading, ts=st.integers(-(10**18) + 1, 10**18 - 1), lat=st.none(),
                          lon=st.none(), elev=st.none(), cls=names, labels=pairs,
                          value=fast_values)


@given(st.lists(fast_readings, max_size=8))
def test_takes_every_canonical_body_of_its_kind(rs: list[Reading]) -> None:
    body = format_update(rs)
    assert _agrees(body)
    for exact in (False, True):
        got = parse_canonical(body, exact)
        assert got is not None and repr(list(got)) == repr(rs)


@given(st.lists(readings(), max_size=6))
def test_any_canonical_body_is_read_as_parse_update_reads_it(rs: list[Reading]) -> None:
    try:
        body = format_update(rs)
    except ValueError:
        return  # not formattable (one of lat/lon, a non-finite position)
    _agrees(body)


@settings(max_examples=400)
@given(st.lists(near_valid_lines(), min_size=1, max_size=3), st.booleans())
def test_near_valid_bodies(lines: list[str], trailing_newline: bool) -> None:
    body = "\n".join(["1// p{} 0", *lines]) + ("\n" if trailing_newline else "")
    _agrees(body)


@settings(max_examples=400)
@given(st.lists(fast_readings, min_size=1, max_size=4), st.data())
def test_damaged_canonical_bodies(rs: list[Reading], data: st.DataObject) -> None:
    """A canonical body with characters replaced, inserted or removed: taken only if
    parse_update reads it the same."""
    _agrees(_damaged(format_update(rs), data))


def _damaged(body: str, data: st.DataObject) -> str:
    """``body`` with one to three characters replaced, inserted or removed."""
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(body)))
        ch = data.draw(st.sampled_from([*" \t\r\n/'{}=,%.e+-_0123456789TFx#é", "//"]))
        how = data.draw(st.sampled_from(["insert", "replace", "delete"]))
        if how == "insert":
            body = body[:i] + ch + body[i:]
        elif how == "replace":
            body = body[:i] + ch + body[i + 1:]
        else:
            body = body[:i] + body[i + 1:]
    return body


# Bodies whose values are all doubles or all longs are read column by column
# (_numeric_columns); these make sure that path, intact or damaged, agrees too. It leaves
# numbers of over 18 characters (an 18-digit negative one) to the line loop.
_one_kind = st.sampled_from([
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**17) + 1, 10**18 - 1),
    st.integers(-1000, 1000),
    st.floats(-1000, 1000).map(lambda x: round(x, 2)),
]).flatmap(lambda values: st.lists(
    st.builds(Reading, ts=st.integers(-(10**17) + 1, 10**18 - 1), lat=st.none(), lon=st.none(),
              elev=st.none(), cls=st.sampled_from(["a", "b.c", "d%2Fe"]),
              labels=st.sampled_from([(), (("host", "h1"),), (("x", "y z"),)]), value=values),
    min_size=1, max_size=6))


@settings(max_examples=300)
@given(_one_kind)
def test_bodies_of_one_kind_of_number_are_read_as_columns(rs: list[Reading]) -> None:
    body = format_update(rs)
    lines = body.split("\n")[:-1]
    for exact in (False, True):
        cols = _numeric_columns(body, lines, exact)
        assert cols is not None, "a body of one kind of number is not read as columns"
        assert repr(list(cols)) == repr(rs)
    assert _agrees(body)


@settings(max_examples=400)
@given(_one_kind, st.data())
def test_damaged_bodies_of_one_kind_of_number(rs: list[Reading], data: st.DataObject) -> None:
    _agrees(_damaged(format_update(rs), data))


@pytest.mark.parametrize("body", [
    "1// a{} 1\n2// a{} 2.5\n",  # a long and a double: the line loop reads them
    "1// a{} 1e+16\n2// a{} 5\n", "1// a{} 1.5\n2// a{} T\n", "1// a{} 'x'\n2// a{} 1\n",
    "-123456789012345678// a{} 1\n", "1// a{} -123456789012345678\n",
])
def test_bodies_the_columns_leave_to_the_loop(body: str) -> None:
    assert _numeric_columns(body, body.split("\n")[:-1], False) is None
    assert _agrees(body)


@pytest.mark.parametrize("body", [
    "1// a{} 1.5 2.5\n2//a{} 3.5\n",  # three spaces and one: two a line on average
    "1// a{} 1.5 2.5\n2// a{} 3.5\n", "1// a{} 1.5\n2// a{} 3.5 x\n",  # a fourth field
    "1// a{} 1.5\n2// a{}  \n", "1// a{} 1.5\n2 // a{} 2.5\n", "1// a{} 1.5\n// a{} 2.5\n",
    "1// a{} 1.5\n2/ a{} 2.5\n", "1// a{} 1.5\n1-2// a{} 2.5\n", "1// a{} 1.5\n2// a{} 2..5\n",
    "1// a{} 1.5\n2// a{} 1e999\n", "1// a{} 1.5\n2// a{} +2.5\n", "1// a{} 1\n2// a{} 2-\n",
    "1// a{} 1\n2// a{} -\n", "1// a{} 1\n2// a{ 2\n", "1// a{} 1\n2///a{} 2\n",
])
def test_bodies_of_numbers_declined(body: str) -> None:
    assert parse_canonical(body) is None
    _reference(body)  # whatever parse_update makes of it: the caller's answer


@pytest.mark.parametrize("body", [
    "1// a{} 1\n", "-5// a{} -0.0\n", "1// a{} 1e+16\n", "1// a{} 1.5e-05\n",
    "1// a{} 'x%20y'\n", "1// a{} ''\n", "1// a{} T\n", "1// a{} F\n", "",
    "1// a{} 5.\n", "1// a{} -.5\n", "007// a{} 007\n", "1// a{b=c} 1\n2// a{b=c} 2",
    "123456789012345678// a{} -123456789012345678\n",
])
def test_canonical_spellings_taken(body: str) -> None:
    assert _agrees(body)


@pytest.mark.parametrize("body", [
    "007// a{} 1\n", "1// a{} 007\n", "-0// a{} 1\n", "1// a{} -0\n", "1// a{} 5.\n",
    "1// a{} 1.50\n", "1// a{} 1e5\n", "1// a{} 'x%2fy'\n", "1// a{} 'x%41'\n",
    "1// a{b=c,a=d} 1\n", "1// a{b=%41} 1\n", "1// a{} 1",
])
def test_exact_mode_declines_other_spellings(body: str) -> None:
    assert parse_canonical(body) is not None
    assert parse_canonical(body, exact=True) is None
    assert format_update(parse_update(body, 0)) != body


@pytest.mark.parametrize("body", [
    "1/48.0:2.0/ a{} 1\n", "1//5 a{} 1\n", "// a{} 1\n", "T-1// a{} 1\n", "=1// 1\n",
    "1// a{} 1\n\n2// a{} 2\n", "# c\n1// a{} 1\n", " 1// a{} 1\n", "1//  a{} 1\n",
    "1// a{} 1 \n", "1// a{} 1\r\n", "1// a{}\t1\n", "1// a{} true\n", "1// a{} 'x y'\n",
    "1// a{} NaN\n", "1// a{} Infinity\n", "1// a{} 1e999\n", "1// a{} +1.5\n",
    "1// a{} 1_0.5\n", "1// a{} 1E5\n", "1// a{} 1234567890123456789\n",
    "1234567890123456789// a{} 1\n", "1// a{} b64:AA\n", "1// a{} [ 1 ]\n",
    "1// a{}{b=c} 1\n", "1// a{ 1\n", "1// a{} 'x%zz'\n", "1// a{} 'it's'\n",
    "1// é{} 1\n", "1// a{} 1 2\n", "1// a{}\n",
    "1// a{} \u0663\n", "\u0661// a{} 1\n",  # Arabic-Indic digits
])
def test_other_bodies_declined(body: str) -> None:
    assert parse_canonical(body) is None
    _reference(body)  # whatever parse_update makes of it: the caller's answer


@given(st.lists(fast_readings, max_size=5))
def test_columns_sequence_behaves_as_the_list(rs: list[Reading]) -> None:
    got = parse_canonical(format_update(rs))
    assert isinstance(got, CanonicalReadings)
    expected = parse_update(format_update(rs), 0)
    assert got == expected and expected == list(got)
    assert list(reversed(got)) == expected[::-1]
    assert got[:2] == expected[:2]
    if rs:
        assert got[-1] == expected[-1]
    assert [r.ts for r in got] == got.ts
    assert all(math.isfinite(v) for v in got.values if type(v) is float)


@given(INT64)
def test_long_timestamps_beyond_18_digits_are_left_to_parse_update(ts: int) -> None:
    body = f"{ts}// a{{}} 1\n"
    got = parse_canonical(body)
    if len(str(abs(ts))) > 18:
        assert got is None
    else:
        assert got is not None and list(got) == parse_update(body, 0)
