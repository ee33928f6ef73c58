"""Fuzzing the replicate body's framing and record headers.

``decode_frames`` reads bytes from a peer (``POST /api/v0/replicate``) and from disk: for
any input it must return records or raise DatalogCorruptError (a 400 / a named corrupt
file), never KeyError, TypeError, RecursionError... (a 500 with a traceback).
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout.datalog.format import FRAME, LENGTHS, OPS, Record, decode_frames, encode_frames
from fanout.errors import DatalogCorruptError

GOOD: dict[str, Any] = {"seq": 1, "origin": "n1", "oseq": 1, "time": 1, "op": "update",
                        "token_id": "ingest", "params": {}, "via": []}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Mostly well-formed headers with one or two fields replaced, removed or of another type;
# sometimes a whole random JSON document.
field_names = st.sampled_from([*GOOD, "extra"])


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return json.dumps(draw(json_values)).encode()
    if kind == 1:
        return draw(st.binary(max_size=200))
    h = dict(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(field_names)
        if draw(st.booleans()) and name in h:
            del h[name]
        else:
            h[name] = draw(json_values | st.sampled_from([*OPS, 2**63, -1, 2**70, ["a", 1]]))
    text = json.dumps(h, sort_keys=True)
    if kind == 3:  # textual damage: cut, or a byte changed
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "}", "\"", "\xff", "[" * 50]))
    return text.encode("utf-8", "surrogatepass")


def frame(header: bytes, body: bytes = b"1// a{} 1\n") -> bytes:
    """A frame whose lengths and CRC are right: only the header's content is hostile."""
    lengths = LENGTHS.pack(len(header), len(body))
    crc = zlib.crc32(body, zlib.crc32(header, zlib.crc32(lengths)))
    return lengths + struct.pack("<I", crc) + header + body


def decode(data: bytes) -> list[Record] | None:
    try:
        return decode_frames(memoryview(data), 0, "request body")
    except DatalogCorruptError as exc:
        assert "request body" in str(exc)
        return None


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(headers(), min_size=1, max_size=3))
def test_random_headers_raise_only_corrupt_errors(hs: list[bytes]) -> None:
    records = decode(b"".join(frame(h) for h in hs))
    if records is not None:  # what passes is a record with fields of the right types
        for r in records:
            assert all(isinstance(v, int) and not isinstance(v, bool)
                       for v in (r.seq, r.oseq, r.time))
            assert isinstance(r.origin, str) and isinstance(r.token_id, str)
            assert r.op in OPS and isinstance(r.params, dict)
            assert all(isinstance(v, str) for v in r.via)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_corrupt_errors(data: bytes) -> None:
    decode(data)


def _good_batch() -> bytes:
    recs = [Record(1, "a", 1, 5, "update", "ingest", {}, (), b"1// a{} 1\n"),
            Record(2, "a", 2, 6, "delete", "ingest", {"selector": "=a{}", "deleteall": True},
                   ("b",), b""),
            Record(3, "a", 3, 7, "meta", "ingest", {"delta": True}, (), b"a{}{x=y}\n")]
    return encode_frames(recs)


@settings(max_examples=300)
@given(st.data())
def test_bit_flipped_and_cut_frames_raise_only_corrupt_errors(data: st.DataObject) -> None:
    raw = bytearray(_good_batch())
    flips = data.draw(st.sets(st.integers(0, len(raw) - 1), min_size=1, max_size=3))
    for pos in flips:  # distinct bytes: two flips of one bit would cancel out
        raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(raw)))
    records = decode(bytes(raw[:cut]))
    # a CRC32 catches every flip of up to 3 bits; records before the damage may decode
    # only if the damage was cut off
    assert records is None or cut == 0 or cut <= min(flips)


@settings(max_examples=300)
@given(st.data())
def test_frame_fields_with_recomputed_crc_raise_only_corrupt_errors(
        data: st.DataObject) -> None:
    """Lengths chosen by an attacker, CRC made to match: the CRC cannot save the reader."""
    header = data.draw(headers())
    body = data.draw(st.binary(max_size=50))
    hlen = data.draw(st.one_of(st.just(len(header)), st.integers(0, 2**32 - 1)))
    blen = data.draw(st.one_of(st.just(len(body)), st.integers(0, 2**32 - 1)))
    lengths = LENGTHS.pack(hlen, blen)
    payload = (header + body)
    crc = zlib.crc32(payload, zlib.crc32(lengths))
    decode(lengths + struct.pack("<I", crc) + payload)


def test_deeply_nested_header_is_corrupt_not_recursion_error() -> None:
    assert decode(frame(b"[" * 200_000 + b"]" * 200_000)) is None
    assert FRAME.size == 12


def test_good_batch_still_decodes() -> None:
    records = decode(_good_batch())
    assert records is not None and [r.op for r in records] == ["update", "delete", "meta"]
