"""Record header validation: every field of a received record, one row per case."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.datalog.format import LENGTHS, MAX_HEADER, Record, decode_frames, encode_record
from fanout.errors import DatalogCorruptError
from fanout.node.changes import change_of
from fanout.node.validate import (
    MAX_TICK,
    MAX_TOKEN_ID_CHARS,
    MAX_VIA,
    RELOG_EXTRA,
    RELOG_GROWTH,
    RecordInvalid,
    RecordLimits,
    validate_batch,
    validate_record,
)

I64 = (1 << 63) - 1
GOOD = Record(7, "paris-1", 3, 1_700_000_000_000, "update", "ingest", {}, ("lyon", "x.y_z"),
              b"1// a{} 1\n")
GOOD_META = dataclasses.replace(GOOD, op="meta", params={"delta": True}, body=b"a{}{k=v}\n")
GOOD_DELETE = dataclasses.replace(GOOD, op="delete", body=b"",
                                  params={"selector": "~a.*{k=v}", "start": -5, "end": 5})


def rec(base: Record = GOOD, **changes: Any) -> Record:
    return dataclasses.replace(base, **changes)


VALID = [
    GOOD,
    GOOD_META,
    rec(GOOD_META, params={"delta": False}),
    GOOD_DELETE,
    rec(GOOD_DELETE, params={"selector": "a{}", "deleteall": True}),
    rec(GOOD_DELETE, params={"selector": "a{}", "start": -(1 << 63), "end": I64}),
    rec(GOOD_DELETE, params={"selector": "a{}", "start": 4, "end": 4}),
    rec(seq=1, oseq=1), rec(seq=MAX_TICK, oseq=MAX_TICK),
    rec(time=-(1 << 63)), rec(time=I64), rec(time=0),
    rec(origin="a" * 64), rec(origin="A-z_0.9"),
    rec(via=()), rec(via=tuple(f"n{i}" for i in range(MAX_VIA))),
    rec(token_id=""), rec(token_id="t" * MAX_TOKEN_ID_CHARS),
]

INVALID = [  # (record, field named in the error)
    (rec(origin=""), "origin"),
    (rec(origin=None), "origin"),
    (rec(origin=5), "origin"),
    (rec(origin="a" * 65), "origin"),
    (rec(origin="a/b"), "origin"),
    (rec(origin="../x"), "origin"),
    (rec(origin="paris-1\n"), "origin"),
    (rec(origin="pa ris"), "origin"),
    (rec(origin="é"), "origin"),
    (rec(seq=0), "seq"),
    (rec(seq=-1), "seq"),
    (rec(seq=MAX_TICK + 1), "seq"),
    (rec(seq=True), "seq"),
    (rec(seq=1.0), "seq"),
    (rec(seq="1"), "seq"),
    (rec(seq=None), "seq"),
    (rec(oseq=0), "oseq"),
    (rec(oseq=1 << 63), "oseq"),
    (rec(oseq=False), "oseq"),
    (rec(oseq=2.5), "oseq"),
    (rec(oseq="3"), "oseq"),
    (rec(time=1 << 63), "time"),
    (rec(time=-(1 << 63) - 1), "time"),
    (rec(time=True), "time"),
    (rec(time=1.5), "time"),
    (rec(time=None), "time"),
    (rec(op="drop"), "op"),
    (rec(op=None), "op"),
    (rec(op="UPDATE"), "op"),
    (rec(token_id=None), "token_id"),
    (rec(token_id=7), "token_id"),
    (rec(token_id="t" * (MAX_TOKEN_ID_CHARS + 1)), "token_id"),
    (rec(via="lyon"), "via"),
    (rec(via=tuple(f"n{i}" for i in range(MAX_VIA + 1))), "via"),
    (rec(via=("lyon", "lyon")), "via"),
    (rec(via=("",)), "via[0]"),
    (rec(via=("ok", None)), "via[1]"),
    (rec(via=("ok", "a/b")), "via[1]"),
    (rec(params=None), "params"),
    (rec(params=[]), "params"),
    (rec(params={"delta": True}), "params"),
    (rec(GOOD_META, params={}), "params"),
    (rec(GOOD_META, params={"delta": 1}), "params"),
    (rec(GOOD_META, params={"delta": "true"}), "params"),
    (rec(GOOD_META, params={"delta": True, "x": 1}), "params"),
    (rec(GOOD_DELETE, params={"start": 1, "end": 2}), "params.selector"),
    (rec(GOOD_DELETE, params={"selector": 5, "deleteall": True}), "params.selector"),
    (rec(GOOD_DELETE, params={"selector": "a{", "deleteall": True}), "params.selector"),
    (rec(GOOD_DELETE, params={"selector": "~(a{}", "deleteall": True}), "params.selector"),
    (rec(GOOD_DELETE, params={"selector": "a{}"}), "params"),
    (rec(GOOD_DELETE, params={"selector": "a{}", "deleteall": False}), "params.deleteall"),
    (rec(GOOD_DELETE, params={"selector": "a{}", "deleteall": 1}), "params.deleteall"),
    (rec(GOOD_DELETE, params={"selector": "a{}", "deleteall": True, "start": 1, "end": 2}),
     "params"),
    (rec(GOOD_DELETE, params={"selector": "a{}", "start": 1}), "params"),
    (rec(GOOD_DELETE, params={"selector": "a{}", "start": 3, "end": 2}), "params"),
    (rec(GOOD_DELETE, params={"selector": "a{}", "start": "1", "end": 2}), "params.start"),
    (rec(GOOD_DELETE, params={"selector": "a{}", "start": 1, "end": 1 << 63}), "params.end"),
    (rec(GOOD_DELETE, params={"selector": "a{}", "start": True, "end": 2}), "params.start"),
    (rec(GOOD_DELETE, params={"selector": "a{}", "start": 0.5, "end": 2}), "params.start"),
    (rec(GOOD_DELETE, body=b"x"), "body"),
    (rec(body="text"), "body"),
    (rec(GOOD_DELETE, params={"selector": "a" * MAX_HEADER, "deleteall": True}), "header"),
    (rec(token_id="t" * (MAX_HEADER - 200)), "token_id"),
]


@pytest.mark.parametrize("record", VALID, ids=lambda r: repr(r)[:60])
def test_valid_headers_pass(record: Record) -> None:
    validate_record(record)
    change_of(record)  # what passes can be applied


@pytest.mark.parametrize(("record", "field"), INVALID, ids=[f"{f}-{i}" for i, (_, f) in
                                                              enumerate(INVALID)])
def test_invalid_header_names_the_field_and_the_record(record: Record, field: str) -> None:
    with pytest.raises(RecordInvalid) as info:
        validate_record(record)
    assert info.value.field == field
    text = str(info.value)
    assert f"field '{field}'" in text
    assert text.startswith(f"record seq {record.seq!r}"[:40])
    assert len(text) < 1000, "a hostile value is cut, not echoed whole"


def test_header_limit_leaves_room_to_relog_with_one_more_via() -> None:
    """A header that fits as received but not once re-logged here is refused: the
    receiver's own forwarder could not read what it wrote (issue: 1401 after re-log)."""
    limits = RecordLimits(max_header=600, max_token_id_chars=10_000)
    base = len(GOOD.header_bytes())
    fits = rec(token_id="t" * (600 - base - 200))
    validate_record(fits, limits)
    # the same header with room for the record as sent, but not for one more 64-char id
    tight = rec(token_id="t" * (600 - base + len(GOOD.token_id) - 20))
    assert len(tight.header_bytes()) <= 600
    with pytest.raises(RecordInvalid) as info:
        validate_record(tight, limits)
    assert info.value.field == "header"


def test_body_limit() -> None:
    validate_record(rec(body=b"1// a{} 1\n" * 10), RecordLimits(max_body=100))
    with pytest.raises(RecordInvalid) as info:
        validate_record(rec(body=b"1// a{} 1\n" * 11), RecordLimits(max_body=100))
    assert info.value.field == "body"


def test_batch_seqs_must_increase() -> None:
    validate_batch([rec(seq=1), rec(seq=2), rec(seq=9)])
    for seqs in ([1, 1], [2, 1], [1, 3, 2]):
        with pytest.raises(RecordInvalid) as info:
            validate_batch([rec(seq=s) for s in seqs])
        assert info.value.field == "seq"


def test_one_bad_record_refuses_the_batch() -> None:
    with pytest.raises(RecordInvalid) as info:
        validate_batch([rec(seq=1), rec(seq=2, origin=""), rec(seq=3)])
    assert info.value.seq == 2


def test_via_that_is_not_a_list_is_corrupt_at_decode() -> None:
    """A string ``via`` would otherwise become a tuple of one-letter ids."""
    frame = frame_of({**header_of(GOOD), "via": "lyon"}, b"")
    with pytest.raises(DatalogCorruptError, match="via"):
        decode_frames(memoryview(frame), 0, "body")


# -- property: random headers validate or raise RecordInvalid, never anything else -----------

def header_of(r: Record) -> dict[str, Any]:
    return json.loads(r.header_bytes())


def frame_of(header: Any, body: bytes) -> bytes:
    h = json.dumps(header).encode()
    lengths = LENGTHS.pack(len(h), len(body))
    crc = zlib.crc32(body, zlib.crc32(h, zlib.crc32(lengths)))
    return lengths + struct.pack("<I", crc) + h + body


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=8,
)
GOOD_IDS = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
GOOD_TICKS = st.one_of(st.integers(1, 5), st.integers(MAX_TICK - 2, MAX_TICK))
SELECTORS = st.one_of(st.sampled_from(["a{}", "~.*{}", "~a{k~v.*}", "=a{k=v,l~x}"]),
                      st.text(max_size=20))
GOOD_FIELDS = {
    "seq": GOOD_TICKS, "oseq": GOOD_TICKS, "time": st.integers(-(1 << 63), I64),
    "origin": GOOD_IDS, "token_id": st.text(max_size=10),
    "via": st.lists(GOOD_IDS, max_size=4, unique=True),
}
GOOD_PARAMS = {
    "update": st.just({}),
    "meta": st.fixed_dictionaries({"delta": st.booleans()}),
    "delete": st.one_of(
        st.fixed_dictionaries({"selector": SELECTORS, "deleteall": st.just(True)}),
        st.fixed_dictionaries({"selector": SELECTORS, "start": st.integers(-(1 << 63), 0),
                               "end": st.integers(0, I64)})),
}
# what a hostile or careless peer puts in a field instead
BAD = {
    "seq": st.one_of(st.integers(-3, 0), st.integers(MAX_TICK + 1, 1 << 70), JSON),
    "oseq": st.one_of(st.integers(-3, 0), st.just(1 << 63), JSON),
    "time": st.one_of(st.integers(1 << 63, 1 << 70), JSON),
    "origin": st.one_of(st.text(max_size=70), st.just(""), JSON),
    "op": st.one_of(st.text(max_size=8), JSON),
    "token_id": st.one_of(st.text(min_size=250, max_size=300), JSON),
    "via": st.one_of(st.lists(st.one_of(GOOD_IDS, st.text(max_size=5), JSON), max_size=70),
                     JSON),
    "params": st.one_of(JSON, st.fixed_dictionaries(
        {"selector": SELECTORS, "start": JSON, "end": JSON}),
        st.fixed_dictionaries({"selector": JSON, "deleteall": JSON}),
        st.fixed_dictionaries({"delta": JSON})),
}


@st.composite
def headers(draw: st.DrawFn, hostile: bool = True) -> Any:
    """A valid header with none, one or a few fields replaced by hostile values (or, with
    ``hostile`` False, just a valid one)."""
    op = draw(st.sampled_from(["update", "meta", "delete"]))
    h: dict[str, Any] = {k: draw(v) for k, v in GOOD_FIELDS.items()}
    h["op"], h["params"] = op, draw(GOOD_PARAMS[op])
    if not hostile:
        return h
    if draw(st.integers(0, 30)) == 0:
        return draw(JSON)
    for key in draw(st.lists(st.sampled_from(sorted(BAD)), max_size=3, unique=True)):
        h[key] = draw(BAD[key])
    if draw(st.integers(0, 20)) == 0:
        del h[draw(st.sampled_from(sorted(h)))]
    if draw(st.booleans()):
        h[draw(st.text(max_size=6))] = draw(JSON)  # unknown keys are allowed
    return h


@settings(max_examples=600, deadline=None)
@given(header=headers(), body=st.sampled_from([b"", b"1// a{} 1\n", b"a{}{k=v}\n"]))
def test_random_headers_validate_or_raise_record_invalid(header: Any, body: bytes) -> None:
    frame = frame_of(header, body)
    try:
        [record] = decode_frames(memoryview(frame), 0, "body")
    except DatalogCorruptError:
        return  # refused at framing: also a 400, with the offset
    try:
        validate_record(record)
    except RecordInvalid as exc:
        assert exc.field and str(exc)
        return
    # what passes is what an honest origin writes: it applies and re-logs readably
    parses = {"update": b"1", "meta": b"a", "delete": b""}[record.op]
    if body.startswith(parses):
        change_of(record)
    relogged = dataclasses.replace(record, via=(*record.via, "z" * 64), seq=MAX_TICK,
                                   frame=b"")
    assert len(relogged.header_bytes()) <= MAX_HEADER
    assert isinstance(record.origin, str) and record.origin


# -- the re-log size bound: a received header is sized without re-encoding it -------------

def _relogged_size(record: Record) -> int:
    return len(dataclasses.replace(record, via=(*record.via, "x" * 64), seq=MAX_TICK,
                                   frame=b"").header_bytes())


def _frame_text(header_text: bytes, body: bytes = b"") -> bytes:
    lengths = LENGTHS.pack(len(header_text), len(body))
    crc = zlib.crc32(body, zlib.crc32(header_text, zlib.crc32(lengths)))
    return lengths + struct.pack("<I", crc) + header_text + body


@settings(max_examples=400, deadline=None)
@given(header=headers(), ascii_only=st.booleans(), compact=st.booleans())
def test_relog_bound_holds_for_any_received_header(header: Any, ascii_only: bool,
                                                   compact: bool) -> None:
    """However the sender wrote its JSON (raw UTF-8 or escapes, spaces or not), the
    re-logged header is never larger than the bound the fast check trusts."""
    text = json.dumps(header, ensure_ascii=ascii_only,
                      separators=(",", ":") if compact else None).encode()
    try:
        [record] = decode_frames(memoryview(_frame_text(text)), 0, "body")
    except DatalogCorruptError:
        return
    assert _relogged_size(record) <= RELOG_GROWTH * len(text) + RELOG_EXTRA


@pytest.mark.parametrize("params", [b"[1E15,1E15,1E15,1E15]", b'{"a":1E14,"b":[1E2,0.1E-5]}',
                                    b'"\\u0001\\ud83d\\ude00"', "\"é😀\"".encode()])
def test_relog_bound_holds_for_numbers_and_characters_that_grow(params: bytes) -> None:
    """The worst growths: numbers written short ("1E15" -> 1000000000000000.0), raw
    UTF-8 characters written again as escapes, escapes of control characters."""
    text = (b'{"seq":1,"origin":"a","oseq":1,"time":0,"op":"delete","token_id":"t",'
            b'"via":[],"params":{"k":' + params + b"}}")
    [record] = decode_frames(memoryview(_frame_text(text)), 0, "body")
    assert _relogged_size(record) <= RELOG_GROWTH * len(text) + RELOG_EXTRA


def test_a_received_header_too_big_once_relogged_is_refused() -> None:
    """A decoded record (sized by the bound first) is refused exactly as one built here."""
    limits = RecordLimits(max_header=600, max_token_id_chars=10_000)
    base = len(GOOD.header_bytes())
    tight = rec(token_id="t" * (600 - base + len(GOOD.token_id) - 20))
    [received] = decode_frames(memoryview(encode_record(tight)), 0, "body")
    assert received.frame and len(tight.header_bytes()) <= 600
    with pytest.raises(RecordInvalid) as info:
        validate_record(received, limits)
    assert info.value.field == "header"
    [small] = decode_frames(memoryview(encode_record(GOOD)), 0, "body")
    validate_record(small, limits)
