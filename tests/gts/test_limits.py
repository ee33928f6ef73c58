"""Field limits on parsed writes: the first field over its limit is named with its line."""

from __future__ import annotations

import pytest

from fanout.errors import GTSParseError
from fanout.gts import parse_meta, parse_update
from fanout.gts.limits import FieldLimits, RequestTooLargeError, check_meta, check_readings
from fanout.node.changes import RequestLimits, meta_pending, update_pending, update_pendings

LIM = FieldLimits(max_class_length=8, max_label_name_length=4, max_label_value_length=5,
                  max_labels=2, max_string_value_length=3)


@pytest.mark.parametrize("line, limit", [
    ("1// classname9{} 1", "max_class_length"),
    ("1// c{abcde=v} 1", "max_label_name_length"),
    ("1// c{k=vvvvvv} 1", "max_label_value_length"),
    ("1// c{a=1,b=2,c=3} 1", "max_labels"),
    ("1// c{} 'abcd'", "max_string_value_length"),
    ("1// c{} \"abcd\"", "max_string_value_length"),
    ("1// c{} hex:00010203", "max_string_value_length"),  # 4 bytes
    ("1// c{} b64:AAECAw", "max_string_value_length"),
    ("1// c{} [1 2]", "max_string_value_length"),  # canonical "[ 1 2 ]", 7 characters
])
def test_update_field_over_limit_names_line_and_limit(line: str, limit: str) -> None:
    text = "1// ok{} 1\n# comment\n" + line + "\n"
    with pytest.raises(GTSParseError) as err:
        check_readings(text, parse_update(text, 0), LIM)
    assert err.value.line == 3 and limit in err.value.reason


def test_at_limit_accepted() -> None:
    text = "1// class678{abcd=vvvvv,b=1} 'abc'\n=2// hex:000102\n=3// [ ]\n"
    check_readings(text, parse_update(text, 0), LIM)
    meta = "c{a=1}{abcd=vvvvv,x=y}\n"
    check_meta(meta, parse_meta(meta), LIM)


def test_meta_attribute_over_limit() -> None:
    meta = "c{}{k=vvvvvv}\n"
    with pytest.raises(GTSParseError) as err:
        check_meta(meta, parse_meta(meta), LIM)
    assert "attribute" in err.value.reason and "max_label_value_length" in err.value.reason


def test_line_count_and_canonical_size_checked() -> None:
    lim = RequestLimits(FieldLimits(), max_points=3, max_record_bytes=60)
    with pytest.raises(RequestTooLargeError, match="max_points_per_request"):
        update_pending("1// a{} 1\n" * 4, 0, "t", lim)
    # 3 short lines under the limit as sent, over it once timestamps are written out
    with pytest.raises(RequestTooLargeError, match="max_record_bytes"):
        update_pending("// a{} 1\n" * 3, 1_700_000_000_000_000, "t", lim)
    assert update_pending("1// a{} 1\n" * 3, 0, "t", lim).points == 3
    with pytest.raises(RequestTooLargeError):
        meta_pending("abcdefghij{}{}\n" * 5, False, "t", lim)




def test_update_attribute_block_over_limit_names_its_line() -> None:
    text = "1// ok{} 1\n\n2// c{}{k=vvvvvv} 2\n"
    with pytest.raises(GTSParseError) as err:
        update_pendings(text, 0, "t", RequestLimits(LIM))
    assert err.value.line == 3 and "max_label_value_length" in err.value.reason
