"""Forged replication records against a real node: refused whole, and harmless after.

The issue's attacks, with the replicate token every upstream peer holds: a record with an
empty origin was filed under the receiver's own id (oseq 2^63-1 then broke every later
client write, also after a restart); a null origin was applied as a local write that never
replicated. Each must now be a 400 naming the record and the field, before anything moves.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from fanout.datalog.format import LENGTHS, MAX_HEADER, Record, encode_record
from fanout.testing import NodeProc

MAX = (1 << 63) - 1
CTYPE = {"Content-Type": "application/x-fanout-records"}


def raw_frame(header: dict[str, Any], body: bytes = b"") -> bytes:
    """A correctly checksummed frame around any header, valid or not."""
    h = json.dumps(header).encode()
    lengths = LENGTHS.pack(len(h), len(body))
    crc = zlib.crc32(body, zlib.crc32(h, zlib.crc32(lengths)))
    return lengths + struct.pack("<I", crc) + h + body


def header(**over: Any) -> dict[str, Any]:
    h: dict[str, Any] = {"seq": 1, "origin": "peer", "oseq": 1, "time": 1_700_000_000_000,
                         "op": "update", "token_id": "ingest", "params": {}, "via": []}
    h.update(over)
    return h


UPDATE = b"1000// forged{} 1\n"


def just_under_max_header() -> dict[str, Any]:
    """A delete whose header fits MAX_HEADER as sent, but not once re-logged with this
    node's id appended to ``via`` (its own forwarder would read that file as corrupt)."""
    h = header(op="delete", params={"selector": "", "deleteall": True})
    room = MAX_HEADER - len(json.dumps(h)) - 20
    h["params"]["selector"] = "a" * room + "{}"
    assert MAX_HEADER - 40 < len(json.dumps(h)) <= MAX_HEADER
    return h


FORGED = [  # (header, body, field the 400 must name)
    (header(origin="", oseq=MAX), UPDATE, "origin"),
    (header(origin=None, oseq=5), UPDATE, "origin"),
    (header(origin="", oseq=1), UPDATE, "origin"),
    (header(origin="../n1", oseq=1), UPDATE, "origin"),
    (header(oseq=MAX + 1), UPDATE, "oseq"),
    (header(oseq=0), UPDATE, "oseq"),
    (header(seq=True), UPDATE, "seq"),
    (header(time="now"), UPDATE, "time"),
    (header(via=["a", "a"]), UPDATE, "via"),
    (header(via=[""]), UPDATE, "via[0]"),
    (header(params=["x"]), UPDATE, "params"),
    (header(op="meta", params={}), b"forged{}{a=b}\n", "params"),
    (header(op="delete", params={"selector": "~.*{}", "start": 5, "end": 1}), b"", "params"),
    (header(op="delete", params={"selector": "~.*{}"}), b"", "params"),
    (header(op="delete", params={"selector": "~(.*{}", "deleteall": True}), b"",
     "params.selector"),
    (just_under_max_header(), b"", "header"),
]


def post(node: NodeProc, body: bytes) -> tuple[int, str]:
    with node.client("replicator") as c:
        status, data = c.request("POST", "/api/v0/replicate", body, headers=CTYPE,
                                 check=False)
    return status, data.decode(errors="replace")


def where(node: NodeProc) -> tuple[dict[str, Any], str]:
    with node.client("replicator") as c:
        marks = json.loads(c.request("GET", "/api/v0/replication/marks")[1])
    return marks, node.client("reader").fetch("~.*{}", showattr=True)


def client_writes_work(node: NodeProc, n: int) -> None:
    """update, meta and delete all answer 200 and take the node's own next oseqs."""
    with node.client("ingest") as c:
        c.update(f"{n}// mine{{}} {n}\n")
        assert c.last_headers["x-fanout-origin"] == node_id(node)
        first = int(c.last_headers["x-fanout-oseq"])
        c.meta(f"mine{{}}{{round={n}}}\n")
        c.delete("gone{}")
        assert int(c.last_headers["x-fanout-oseq"]) == first + 2


def node_id(node: NodeProc) -> str:
    return node.dir.name


def test_forged_records_are_refused_and_change_nothing(make_node) -> None:
    node = make_node("n1").start_and_wait()
    client_writes_work(node, 1)
    before = where(node)
    good = encode_record(Record(1, "peer", 1, 1_700_000_000_000, "update", "ingest", {}, (),
                                b"5// fine{} 5\n"))
    for i, (hdr, body, field) in enumerate(FORGED):
        status, text = post(node, raw_frame(hdr, body))
        assert status == 400, (hdr, status, text)
        # a field of the wrong JSON type is refused while decoding the frame, a bad value
        # by the validator (which also names the record); either way the field is named
        assert f"field '{field}'" in text, (hdr, text)
        # the same forged record after a good one: the whole batch is refused
        hdr2 = hdr if field == "seq" else dict(hdr, seq=2)
        status, text = post(node, good + raw_frame(hdr2, body))
        assert status == 400, (i, hdr2, text)
        assert where(node) == before, f"forged record {hdr} moved marks or data"
    assert node.alive()
    assert "Traceback" not in node.log_text()

    # the node's own history is untouched: client writes go on, also after a restart
    client_writes_work(node, 2)
    node.stop()
    node.start_and_wait()
    client_writes_work(node, 3)
    marks, data = where(node)
    assert marks["marks"] == {"n1": "9"}, marks
    assert "forged" not in data and "fine" not in data


def test_valid_batch_still_applies(make_node) -> None:
    """The checks refuse forgeries, not honest records (and a via it can extend)."""
    node = make_node("n1").start_and_wait()
    recs = [Record(1, "peer", 1, 1_700_000_000_000, "update", "ingest", {}, ("relay",),
                   b"5// fine{} 5\n"),
            Record(2, "peer", 2, 1_700_000_000_000, "meta", "ingest", {"delta": True}, (),
                   b"fine{}{team=a}\n"),
            Record(3, "peer", 3, 1_700_000_000_000, "delete", "ingest",
                   {"selector": "nothing{}", "start": 0, "end": 10}, (), b"")]
    status, text = post(node, b"".join(encode_record(r) for r in recs))
    assert status == 200, text
    assert json.loads(text)["applied"] == 3
    marks, data = where(node)
    assert marks["marks"] == {"peer": "3"}
    assert "fine{team=a}" in data or "team=a" in data


def test_huge_oseq_of_a_real_origin_does_not_block_client_writes(make_node) -> None:
    """In range for a foreign origin (its mark is its own business), and never the
    receiver's: the node's own writes still get oseqs 1, 2, 3."""
    node = make_node("n1").start_and_wait()
    status, text = post(node, raw_frame(header(oseq=MAX), UPDATE))
    assert status == 200, text
    client_writes_work(node, 1)
    with node.client("ingest") as c:
        c.update("7// more{} 7\n")
        assert c.last_headers["x-fanout-oseq"] == "4"
