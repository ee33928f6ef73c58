"""Datalog file framing: a magic and version, then length-prefixed, checksummed records.

File layout::

    b"FANOUTDL" | u16 version | u16 flags (0) | u32 record count | u32 crc32   (20 bytes)
    record*     : u32 header_len | u32 body_len | u32 crc32 | header | body

A record's CRC covers the two lengths, the header and the body, so a flipped length is
caught as surely as a flipped payload byte. The file header's count (under its own CRC)
catches a file cut exactly at a record boundary, which framing alone cannot see.

A record's header is compact JSON with sorted keys: small next to the body, readable in a
hex dump, and open to new fields without a new format version. ``history`` (the origin's
history id, 16 hex characters) and ``base`` (``[base history, base oseq]`` or null) came
later: a record without them is read as history ``0000000000000000`` with no base.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from fanout.errors import DatalogCorruptError
from fanout.fileio import DATALOG_SUFFIX, parse_datalog_name
from fanout.gts.model import INT64_MAX

MAGIC = b"FANOUTDL"
VERSION = 1
FILE_HEADER = struct.Struct("<8sHHII")
_HEADER_BODY = struct.Struct("<8sHHI")
FRAME = struct.Struct("<III")
LENGTHS = struct.Struct("<II")
SUFFIX = DATALOG_SUFFIX
OPS = ("update", "meta", "delete")

# Sanity bounds: a length beyond these is corruption, not a record to allocate for.
MAX_HEADER = 1 << 20
MAX_BODY = 1 << 30

LEGACY_HISTORY = "0000000000000000"  # the same as fanout.store.base.LEGACY_HISTORY
_HISTORY_RE = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class Record:
    """One logged request. ``body`` is the normalized payload (canonical GTS text)."""

    seq: int
    origin: str
    oseq: int
    time: int  # ms since the epoch, at the origin
    op: str
    token_id: str
    params: dict[str, Any] = field(default_factory=dict)
    via: tuple[str, ...] = ()
    body: bytes = b""
    # The origin's history this write belongs to, and that history's base (see
    # fanout.store.base.History); both travel unchanged through every hop, like oseq.
    history: str = LEGACY_HISTORY
    base: tuple[str, int] | None = None
    # The verified bytes this record was decoded from, so forwarding never re-encodes or
    # re-checksums it; empty for records built in memory.
    frame: bytes = field(default=b"", compare=False, repr=False)

    def header_bytes(self) -> bytes:
        return json.dumps(
            {
                "seq": self.seq,
                "origin": self.origin,
                "oseq": self.oseq,
                "time": self.time,
                "op": self.op,
                "token_id": self.token_id,
                "params": self.params,
                "via": list(self.via),
                "history": self.history,
                "base": None if self.base is None else list(self.base),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()


def file_header(count: int) -> bytes:
    head = _HEADER_BODY.pack(MAGIC, VERSION, 0, count)
    return head + struct.pack("<I", zlib.crc32(head))


def encode_record(rec: Record) -> bytes:
    if rec.frame:
        return rec.frame
    header = rec.header_bytes()
    lengths = LENGTHS.pack(len(header), len(rec.body))
    crc = zlib.crc32(rec.body, zlib.crc32(header, zlib.crc32(lengths)))
    return lengths + struct.pack("<I", crc) + header + rec.body


def file_name(first_seq: int, node_id: str) -> str:
    """``<seq of first record, 20 digits>-<node id>.dlog``: name order is replay order."""
    return f"{first_seq:020d}-{node_id}{SUFFIX}"


# (first seq, node id) of a datalog file name, or None: the grammar is fanout.fileio's
parse_file_name = parse_datalog_name


# Header fields and the JSON types they must have (bool is excluded from int below).
_FIELD_TYPES: dict[str, type] = {
    "seq": int, "origin": str, "oseq": int, "time": int, "op": str, "token_id": str,
    "params": dict, "via": list,
}


def _header_to_record(path: object, offset: int, header: bytes, body: bytes,
                      frame: bytes) -> Record:
    """The record a header describes. Anything but a JSON object with every field of the
    right type is DatalogCorruptError (a 400 for a replicate batch), never a KeyError or
    TypeError escaping to a 500; what the values mean is checked by the receiver."""
    try:
        h = json.loads(header, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DatalogCorruptError(path, offset, f"bad record header: {exc}") from None
    if not isinstance(h, dict):
        raise DatalogCorruptError(
            path, offset, f"bad record header: a JSON {_json_name(h)}, not an object")
    for key, kind in _FIELD_TYPES.items():
        if key not in h:
            raise DatalogCorruptError(path, offset, f"bad record header: no field {key!r}")
        value = h[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise DatalogCorruptError(
                path, offset, f"bad record header: field {key!r} must be a JSON "
                f"{'integer' if kind is int else _json_name(kind())}, got {_show(value)}")
    if not all(isinstance(v, str) for v in h["via"]):
        raise DatalogCorruptError(path, offset, "bad record header: field 'via' must be a "
                                  f"list of node ids, got {_show(h['via'])}")
    if h["op"] not in OPS:
        raise DatalogCorruptError(path, offset, f"bad record header: field 'op' must be one "
                                  f"of {', '.join(OPS)}, got {_show(h['op'])}")
    history = h.get("history", LEGACY_HISTORY)  # absent: written before histories
    if not isinstance(history, str) or not _HISTORY_RE.fullmatch(history):
        raise DatalogCorruptError(path, offset, "bad record header: field 'history' must be "
                                  f"16 lowercase hex digits, got {_show(history)}")
    base = h.get("base")
    if base is not None:
        if not (isinstance(base, list) and len(base) == 2 and isinstance(base[0], str)
                and _HISTORY_RE.fullmatch(base[0]) and type(base[1]) is int
                and 0 <= base[1] <= INT64_MAX):
            raise DatalogCorruptError(path, offset, "bad record header: field 'base' must be "
                                      f"null or [history, oseq], got {_show(base)}")
        base = (base[0], base[1])
    return Record(seq=h["seq"], origin=h["origin"], oseq=h["oseq"], time=h["time"],
                  op=h["op"], token_id=h["token_id"], params=h["params"],
                  via=tuple(h["via"]), body=body, history=history, base=base, frame=frame)


def _finite_float(text: str) -> float:
    """JSON numbers like 1e400 parse as inf, which int() then refuses with OverflowError:
    no header field is a float, so an out-of-range one is corruption, found here."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", dict: "object", list: "array", int: "number",
            float: "number"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """A short, printable rendering of a bad value for an error message."""
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def decode_records(data: bytes | memoryview, path: object = "<bytes>",
                   verify: bool = True) -> list[Record]:
    """Every record of a whole file image; raises DatalogCorruptError at the first bad byte.

    Offsets in errors are byte offsets into the file, so ``verify`` output can be checked
    with ``xxd -s OFFSET``. ``verify=False`` skips the record checksums (framing, counts
    and headers are still checked) for a caller whose receiver verifies them anyway.
    """
    mv = memoryview(data)
    if len(mv) < FILE_HEADER.size:
        raise DatalogCorruptError(path, 0, f"file shorter than its {FILE_HEADER.size}-byte header")
    magic, version, flags, count, crc = FILE_HEADER.unpack_from(mv, 0)
    if magic != MAGIC:
        raise DatalogCorruptError(path, 0, f"bad magic {bytes(magic)!r}, not a datalog file")
    if zlib.crc32(mv[: _HEADER_BODY.size]) != crc:
        raise DatalogCorruptError(path, 0, "file header checksum mismatch")
    if version != VERSION or flags != 0:
        raise DatalogCorruptError(path, 8, f"unsupported format version {version}.{flags}")
    records = decode_frames(mv, FILE_HEADER.size, path, verify)
    if len(records) != count:
        raise DatalogCorruptError(
            path, len(mv), f"truncated file: header says {count} records, found {len(records)}"
        )
    return records


def decode_frames(mv: memoryview, pos: int, path: object, verify: bool = True) -> list[Record]:
    """Records framed back to back from ``pos`` to the end of ``mv`` (no file header)."""
    out: list[Record] = []
    end = len(mv)
    while pos < end:
        if end - pos < FRAME.size:
            raise DatalogCorruptError(path, pos, "truncated record frame")
        hlen, blen, crc = FRAME.unpack_from(mv, pos)
        if hlen > MAX_HEADER or blen > MAX_BODY:
            raise DatalogCorruptError(path, pos, f"implausible lengths header={hlen} body={blen}")
        start = pos + FRAME.size
        stop = start + hlen + blen
        if stop > end:
            raise DatalogCorruptError(
                path, pos, f"truncated record: needs {stop - pos} bytes, {end - pos} left"
            )
        actual = zlib.crc32(mv[start:stop], zlib.crc32(mv[pos : pos + 8])) if verify else crc
        if actual != crc:
            raise DatalogCorruptError(
                path, pos, f"checksum mismatch (stored {crc:08x}, computed {actual:08x})"
            )
        frame = bytes(mv[pos:stop])
        head = FRAME.size + hlen
        out.append(_header_to_record(path, pos, frame[FRAME.size:head], frame[head:], frame))
        pos = stop
    return out


def frame_ok(frame: bytes) -> bool:
    """Whether one framed record's stored CRC matches its bytes."""
    if len(frame) < FRAME.size:
        return False
    _, _, crc = FRAME.unpack_from(frame, 0)
    return zlib.crc32(memoryview(frame)[FRAME.size:], zlib.crc32(frame[:8])) == crc


def encode_frames(records: list[Record]) -> bytes:
    return b"".join(encode_record(r) for r in records)
