"""Framing: every corruption is caught and named with file and offset."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.datalog.format import (
    FILE_HEADER,
    Record,
    decode_records,
    encode_frames,
    file_header,
    file_name,
    parse_file_name,
)
from fanout.errors import DatalogCorruptError


def rec(seq: int, body: bytes = b"1000// a{} 1\n", **kw: object) -> Record:
    base: dict[str, object] = dict(seq=seq, origin="n1", oseq=seq, time=1, op="update",
                                   token_id="ingest", params={}, via=(), body=body)
    base.update(kw)
    return Record(**base)  # type: ignore[arg-type]


def image(records: list[Record]) -> bytes:
    return file_header(len(records)) + encode_frames(records)


def test_round_trip_keeps_every_header_field() -> None:
    records = [
        rec(1),
        rec(2, op="delete", body=b"", params={"selector": "=a{}", "deleteall": True}),
        rec(3, origin="other", oseq=77, via=("b", "c"), op="meta", params={"delta": True}),
    ]
    assert decode_records(image(records)) == records


def test_file_names_sort_in_replay_order() -> None:
    names = [file_name(s, "n1") for s in (10, 9, 100, 1)]
    assert sorted(names) == [file_name(s, "n1") for s in (1, 9, 10, 100)]
    assert parse_file_name(file_name(42, "paris-1")) == (42, "paris-1")
    assert parse_file_name("00000000000000000042-x.dlog.tmp") is None
    assert parse_file_name("42-x.dlog") is None


@settings(max_examples=200)
@given(st.data())
def test_any_flipped_byte_is_detected_with_its_record_offset(data: st.DataObject) -> None:
    records = [rec(1), rec(2, body=b"2000// b{k=v} 'x'\n"), rec(3)]
    raw = bytearray(image(records))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(DatalogCorruptError) as err:
        decode_records(bytes(raw), "f.dlog")
    assert "f.dlog" in str(err.value)
    # The offset names the start of the damaged record (or the file header).
    starts = [0, FILE_HEADER.size]
    for r in records[:-1]:
        starts.append(starts[-1] + len(encode_frames([r])))
    assert err.value.offset <= pos
    assert err.value.offset in starts


@settings(max_examples=100)
@given(st.integers(1, 200))
def test_truncation_is_detected(cut: int) -> None:
    raw = image([rec(1), rec(2)])
    cut = min(cut, len(raw) - 1)
    with pytest.raises(DatalogCorruptError, match=r"truncated|shorter"):
        decode_records(raw[: len(raw) - cut], "t.dlog")


def test_cut_at_a_record_boundary_is_detected() -> None:
    one = image([rec(1)])
    two = image([rec(1), rec(2)])
    with pytest.raises(DatalogCorruptError, match="header says 2 records, found 1"):
        decode_records(two[: len(one)], "t.dlog")


def test_not_a_datalog_file() -> None:
    with pytest.raises(DatalogCorruptError, match="bad magic"):
        decode_records(b"hello world, not a datalog", "x")
