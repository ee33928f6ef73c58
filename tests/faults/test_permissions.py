"""Least privilege: replacing a store needs ``admin``; bad token bytes are a 403, never a 500.

The table below is the contract: every replication call with every kind of token, against
a real node. ``replace=true`` wipes whatever the node holds, so the ``replicate`` token
that every upstream forwarder holds must not be enough for it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from fanout.ops.bootstrap import BootstrapError, Endpoint, copy_snapshot
from fanout.testing import NodeProc

RESTORE = "/api/v0/replication/restore"
# (method, path) -> {token kind: status}; "none" sends no token
TABLE: dict[tuple[str, str], dict[str, int]] = {
    ("POST", f"{RESTORE}?replace=true"):
        {"none": 403, "ingest": 403, "reader": 403, "replicator": 403, "admin": 200},
    ("POST", f"{RESTORE}?replace=TRUE"):
        {"replicator": 403, "admin": 200},
    ("POST", RESTORE):  # into a non-empty store: refused whoever asks, nothing replaced
        {"none": 403, "ingest": 403, "reader": 403, "replicator": 409, "admin": 409},
    ("GET", "/api/v0/replication/snapshot"):
        {"none": 403, "ingest": 403, "reader": 403, "replicator": 200, "admin": 200},
    ("POST", "/api/v0/replicate"):
        {"none": 403, "ingest": 403, "reader": 403, "replicator": 200, "admin": 200},
}
LEAK = b"sEcReTlOoKaLiKe0123456789"  # must never reach the log, even in a refused header


def _snapshot_of(node: NodeProc) -> bytes:
    with node.client("replicator") as c:
        return c.request("GET", "/api/v0/replication/snapshot")[1]


@pytest.mark.parametrize(("method", "path"), list(TABLE))
def test_permission_table(make_node, method: str, path: str) -> None:
    src = make_node("src").start_and_wait()
    src.client("ingest").update("5// from.src{} 5\n")
    snap = _snapshot_of(src)
    node: NodeProc = make_node("n1").start_and_wait()
    for kind, want in TABLE[(method, path)].items():
        node.client("ingest").update("1// mine{} 1\n")  # not empty before each call
        body = snap if "restore" in path else (b"" if method == "POST" else None)
        token = "" if kind == "none" else node.tokens[kind]
        with node.client("reader") as c:
            status, reply = c.request(method, path, body, token=token, check=False)
        assert status == want, (path, kind, status, reply)
        text = reply.decode()
        if status == 403:
            if kind == "none":
                assert "missing token" in text, text
            else:  # says which permission is missing, never the secret
                needed = "'admin'" if "replace=" in path else "'replicate'"
                assert f"token '{kind}' lacks the {needed} permission" in text, text
                assert node.tokens[kind] not in text
        fetched = node.client("reader").fetch("~.*{}")
        if "replace=" in path and status == 200:
            assert fetched == "5// from.src{} 5\n"  # replaced by the snapshot
        else:
            assert "mine{}" in fetched and "from.src" not in fetched  # untouched
    assert "Traceback" not in node.log_text()


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    n = NodeProc.init(tmp_path_factory.mktemp("bad-token") / "n1", "n1").start_and_wait()
    yield n
    n.kill()


@pytest.mark.parametrize("raw", [b"\xff" * 20, b"\xc3\x28abcdefghijklmnop", b"\x01\x02" + LEAK,
                                 "é".encode() * 10, b"\x80"])
@pytest.mark.parametrize("path", ["/api/v0/update", f"{RESTORE}?replace=true",
                                  "/api/v0/replicate", "/metrics"])
def test_token_with_bad_bytes_is_403(one_node: NodeProc, raw: bytes, path: str) -> None:
    """Raw header bytes (not UTF-8, control characters) go through aiohttp as surrogate
    escapes; comparing them used to raise UnicodeEncodeError: a 500 and a traceback."""
    node = one_node
    for header in (b"X-Warp10-Token", b"Authorization"):
        value = b"Bearer " + raw if header == b"Authorization" else raw
        method = b"GET" if path == "/metrics" else b"POST"
        req = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + header + b": "
               + value + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        with socket.create_connection(("127.0.0.1", node.port), timeout=30) as s:
            s.sendall(req)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        status_line = reply.split(b"\r\n", 1)[0]
        # 400 is aiohttp refusing a control character in a header before any handler
        assert status_line.split()[1] in (b"403", b"400"), (header, raw, reply[:300])
        if b"\x01" not in raw:
            assert status_line.split()[1] == b"403", (header, raw, reply[:300])
            assert b"unknown token" in reply, reply
    assert node.alive()
    log = node.log_text()
    assert "Traceback" not in log, log[-2000:]
    assert LEAK.decode() not in log, log[-2000:]
    if b"\x01" in raw:  # aiohttp's parser refused it: one line, without the raw bytes
        assert "refused a malformed HTTP request from 127.0.0.1: 400 Invalid header" in log


def test_bootstrap_replace_needs_admin_on_the_target(make_node) -> None:
    """``fanout bootstrap --replace`` and auto_resync post restore?replace=true with the
    target token of the forwarder: with a plain replicate token they stop with a hint."""
    a = make_node("a").start_and_wait()
    b = make_node("b").start_and_wait()
    a.client("ingest").update("1// a.series{} 1\n")
    b.client("ingest").update("2// b.series{} 2\n")
    src = Endpoint(a.url, a.tokens["replicator"])
    with pytest.raises(BootstrapError) as err:
        asyncio.run(copy_snapshot(src, Endpoint(b.url, b.tokens["replicator"]), True))
    assert "403" in str(err.value) and "'admin'" in str(err.value), str(err.value)
    assert b.client("reader").fetch("~.*{}") == "2// b.series{} 2\n"
    result = asyncio.run(copy_snapshot(src, Endpoint(b.url, b.tokens["admin"]), True))
    assert result["points"] == 1
    assert b.client("reader").fetch("~.*{}") == "1// a.series{} 1\n"
