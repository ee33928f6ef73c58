"""Malformed record headers in a replicate batch are a 400 naming the problem, never a 500.

The frames are well formed (lengths and CRC right): only the JSON header is hostile, as a
careless or malicious peer holding the replicate token could send it.
"""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from fanout.datalog.format import LENGTHS
from fanout.testing import NodeProc

GOOD = {"seq": 1, "origin": "peer", "oseq": 1, "time": 1, "op": "update",
        "token_id": "ingest", "params": {}, "via": []}


def frame(header: bytes, body: bytes = b"1// a{} 1\n") -> bytes:
    lengths = LENGTHS.pack(len(header), len(body))
    crc = zlib.crc32(body, zlib.crc32(header, zlib.crc32(lengths)))
    return lengths + struct.pack("<I", crc) + header + body


def with_(**kw: object) -> bytes:
    h = dict(GOOD)
    for k, v in kw.items():
        if v is _DROP:
            del h[k]
        else:
            h[k] = v
    return json.dumps(h).encode()


_DROP = object()
BAD: list[tuple[str, bytes, str]] = [
    ("array", b"[1, 2, 3]", "a JSON array, not an object"),
    ("string", b'"hello"', "a JSON string, not an object"),
    ("null", b"null", "a JSON null, not an object"),
    ("not json", b"{nope", "bad record header"),
    ("not utf-8", b'{"seq": "\xff"}', "bad record header"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, "bad record header"),
    ("no via", with_(via=_DROP), "no field 'via'"),
    ("seq string", with_(seq="1"), "field 'seq' must be a JSON integer"),
    ("oseq bool", with_(oseq=True), "field 'oseq' must be a JSON integer"),
    ("time float", with_(time=1.5), "field 'time' must be a JSON integer"),
    ("origin null", with_(origin=None), "field 'origin' must be a JSON string"),
    ("via int", with_(via=7), "field 'via' must be a JSON array"),
    ("via of ints", with_(via=[1, 2]), "field 'via' must be a list of node ids"),
    ("params list", with_(params=[]), "field 'params' must be a JSON object"),
    ("op unknown", with_(op="drop"), "field 'op' must be one of update, meta, delete"),
    ("op list", with_(op=["update"]), "field 'op' must be a JSON string"),
    ("selector int", with_(op="delete", params={"selector": 5, "deleteall": True}),
     "needs a selector string"),
    ("start 1e400", with_(op="delete", params={"selector": "a{}", "start": 1, "end": 5})
     .replace(b'"start": 1', b'"start": 1e400'), "number 1e400 is out of range"),
    ("NaN", with_(time=0).replace(b'"time": 0', b'"time": NaN'), "NaN is not valid JSON"),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    n = NodeProc.init(tmp_path_factory.mktemp("bad-headers") / "n1", "n1").start_and_wait()
    yield n
    n.kill()


@pytest.mark.parametrize(("name", "header", "reason"), BAD, ids=[b[0] for b in BAD])
def test_malformed_header_is_400(node: NodeProc, name: str, header: bytes,
                                 reason: str) -> None:
    body = frame(with_()) + frame(header)  # a good record first: the batch is refused whole
    with node.client("replicator") as c:
        status, reply = c.request("POST", "/api/v0/replicate", body, check=False)
    assert status == 400, (name, status, reply[:500])
    assert reason in reply.decode(), reply[:500]
    with node.client("reader") as r:
        assert r.fetch("~.*{}") == ""  # nothing of the batch applied
    assert node.alive()
    assert "Traceback" not in node.log_text(), node.log_text()[-3000:]
