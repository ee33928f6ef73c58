"""A client body already in canonical form is read as columns and logged as it came
(fanout.node.changes._exact_canonical): the write must be exactly what the general path
makes of the same body (logged bytes, readings, point count, or the same error)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.gts import format_update
from fanout.gts.canonical import CanonicalReadings
from fanout.gts.limits import FieldLimits
from fanout.node import changes
from fanout.node.changes import RequestLimits, update_pendings

from ..gts.test_canonical import fast_readings
from ..gts.test_update import near_valid_lines

TIGHT = RequestLimits(FieldLimits(max_class_length=3, max_label_value_length=3,
                                  max_string_value_length=3), max_points=5,
                      max_record_bytes=200)


def _outcome(body: str, limits: RequestLimits | None) -> object:
    try:
        ps = update_pendings(body, 123, "tok", limits)
    except Exception as exc:  # compared: the same error either way
        return f"{type(exc).__name__}: {exc}"
    return [(p.op, p.params, p.body, repr(list(p.change.readings))  # type: ignore[union-attr]
             if p.op == "update" else p.change, p.points) for p in ps]


def _same_as_general_path(body: str, limits: RequestLimits | None) -> None:
    fast = _outcome(body, limits)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(changes, "_exact_canonical", lambda *a: None)
        general = _outcome(body, limits)
    assert fast == general


@settings(max_examples=200)
@given(st.lists(fast_readings, max_size=6), st.sampled_from([None, RequestLimits(), TIGHT]))
def test_canonical_bodies(rs: list, limits: RequestLimits | None) -> None:
    _same_as_general_path(format_update(rs), limits)


@settings(max_examples=200)
@given(st.lists(near_valid_lines(), min_size=1, max_size=3),
       st.sampled_from([None, RequestLimits(), TIGHT]))
def test_other_bodies(lines: list[str], limits: RequestLimits | None) -> None:
    _same_as_general_path("\n".join(["1// p{} 0", *lines]) + "\n", limits)


def test_a_canonical_body_takes_the_fast_path_and_is_logged_as_sent() -> None:
    body = "1// a{host=h1} 1.5\n2// a{host=h2} 'x%20y'\n3// b{} T\n4// b{} -7\n"
    [p] = update_pendings(body, 0, "tok", RequestLimits())
    assert isinstance(p.change.readings, CanonicalReadings)  # type: ignore[union-attr]
    assert p.body == body.encode() and p.points == 4
    _same_as_general_path(body, RequestLimits())


def test_attributes_and_limits_still_take_the_general_path() -> None:
    body = "1// a{host=h1}{owner=x} 1.5\n"
    [u, m] = update_pendings(body, 0, "tok", RequestLimits())
    assert not isinstance(u.change.readings, CanonicalReadings)  # type: ignore[union-attr]
    assert m.op == "meta"
    _same_as_general_path(body, RequestLimits())
    _same_as_general_path("1// abcd{} 1\n", TIGHT)  # class over the limit: the same 400
