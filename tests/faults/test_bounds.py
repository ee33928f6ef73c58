"""Hostile clients and targets against a real node and forwarder: every resource bounded.

Each test runs an attack against processes on 127.0.0.1 and asserts what a user relies on
(the node stays up, good writes go through, the reply says which limit) plus the cost the
attack was allowed (CPU seconds, peak RSS, open descriptors), read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanout.testing import HTTPError, NodeProc, Topology, drop_closed, wait_until

CLK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def settled_cpu(pid: int, timeout: float = 20.0) -> float:
    """The process's CPU seconds once it stops spending (two samples 0.5 s apart agree)."""
    last = [cpu_seconds(pid)]
    time.sleep(0.5)  # not a decision: the first of the two samples being compared

    def idle() -> bool:
        now = cpu_seconds(pid)
        same = now - last[0] < 0.02
        last[0] = now
        return same

    wait_until(idle, timeout, interval=0.5, what="node CPU to settle")
    return last[0]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """1 GiB of zeros gzipped to about 1 MiB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.gz"
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(MiB)
    path.write_bytes(b"".join(c.compress(zero) for _ in range(1024)) + c.flush())
    return path.read_bytes()


@contextlib.contextmanager
def running(tmp: Path, **overrides: Any) -> Iterator[NodeProc]:
    n = NodeProc.init(tmp / "n", "n", **overrides)
    n.start_and_wait()
    try:
        yield n
    finally:
        n.stop()


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 60.0) -> bytes:
    """Send one request on a fresh socket and return what the node answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode() + body)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and b"Connection: close" not in out:
                    break
        except ConnectionResetError:
            pass
    return out


# -- connections ---------------------------------------------------------------------------

def test_idle_connections_past_fd_limit_leave_node_serving(tmp_path: Path) -> None:
    """1.1x RLIMIT_NOFILE idle connections: the node refuses the excess at accept (fd
    headroom), closes the idle ones after idle_timeout, keeps writing its state file,
    and a normal write succeeds afterwards."""
    limit = 256
    n = NodeProc.init(tmp_path / "n", "n", limits={"idle_timeout": 3.0})
    n.args = ["prlimit", f"--nofile={limit}:{limit}", *n.args]
    n.start_and_wait()
    socks: list[socket.socket] = []
    try:
        for _ in range(int(limit * 1.1)):
            with contextlib.suppress(OSError):  # refused at accept: what headroom is for
                socks.append(socket.create_connection(("127.0.0.1", n.port), timeout=5))
        held = len(socks)
        t_idle = time.monotonic()
        state = n.state_dir / "node.json"
        before = state.stat().st_mtime_ns
        wait_until(lambda: state.stat().st_mtime_ns != before, 15, what="state file written")
        assert n.alive(), n.log_text()[-2000:]

        wait_until(lambda: drop_closed(socks), 30, what="idle connections closed by the node")
        print(f"{int(limit * 1.1)} idle connections at nofile={limit}: {held} connected, "
              f"all closed by the node {time.monotonic() - t_idle:.1f}s later")
        assert n.alive(), n.log_text()[-2000:]
        assert n.client().update("1// fd.ok{} 1\n") == 200
        assert "fd.ok{} 1" in n.client("reader").fetch("fd.ok{}")
        assert n.stop() == 0
    finally:
        for s in socks:
            s.close()
        n.stop()


def test_slow_loris_headers_closed_within_idle_timeout(tmp_path: Path) -> None:
    with running(tmp_path, limits={"idle_timeout": 2.0}) as n:
        s = socket.create_connection(("127.0.0.1", n.port), timeout=1)
        t0 = time.monotonic()
        closed_after = None
        try:
            s.sendall(b"POST /api/v0/update HTTP/1.1\r\nHost: x\r\n")
            while time.monotonic() - t0 < 30:
                try:
                    s.sendall(b"X-a: b\r\n")  # one header line every 0.3 s, never the end
                    if s.recv(1) == b"":
                        closed_after = time.monotonic() - t0
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed_after = time.monotonic() - t0
                    break
        finally:
            s.close()
        assert closed_after is not None, "slow loris connection still open after 30 s"
        print(f"slow loris: closed after {closed_after:.1f}s (idle_timeout 2 s)")
        assert closed_after < 15
        assert n.client().update("1// loris.ok{} 1\n") == 200


def _start_slow_body(n: NodeProc) -> socket.socket:
    """A write whose headers are complete but whose body never finishes."""
    s = socket.create_connection(("127.0.0.1", n.port), timeout=30)
    s.sendall(("POST /api/v0/update HTTP/1.1\r\nHost: x\r\n"
               f"X-Warp10-Token: {n.tokens['ingest']}\r\nContent-Length: 1000\r\n\r\n"
               "1// slow{} 1\n").encode())
    return s


def _reply_of(s: socket.socket) -> bytes:
    out = b""
    while b"\r\n\r\n" not in out and (chunk := s.recv(65536)):
        out += chunk
    return out


def test_concurrency_cap_answers_503_with_retry_after(tmp_path: Path) -> None:
    with running(tmp_path, limits={"max_concurrent_requests": 2}) as n:
        slow = [_start_slow_body(n), _start_slow_body(n)]
        c = n.client()
        try:
            # both slots are held by bodies that never finish: the next request is told
            # at once to come back later
            def busy() -> bool:
                return c.request("POST", "/api/v0/update", b"1// x{} 1\n",
                                 check=False)[0] == 503
            wait_until(busy, 30, what="503 while both slots are held")
            assert c.last_headers.get("retry-after") == "1"
        finally:
            for s in slow:
                s.close()
        wait_until(lambda: c.request("POST", "/api/v0/update", b"1// after{} 1\n",
                                     check=False)[0] == 200, 30, what="slots given back")
        assert "slow{}" not in n.client("reader").fetch("~.*{}")


def test_inflight_body_bytes_capped(tmp_path: Path) -> None:
    """Bodies being received count against one budget: past it, 503 + Retry-After."""
    with running(tmp_path, limits={"max_inflight_body_bytes": 100_000}) as n:
        part = b"".join(b"1// held{} %d\n" % i for i in range(7000))[:90_000]
        s = socket.create_connection(("127.0.0.1", n.port), timeout=30)
        s.sendall(("POST /api/v0/update HTTP/1.1\r\nHost: x\r\n"
                   f"X-Warp10-Token: {n.tokens['ingest']}\r\nContent-Length: 200000\r\n\r\n"
                   ).encode() + part)
        c = n.client()
        body = b"1// other{} 1\n" * 2000  # 30 KB: over what the held body leaves
        try:
            def refused() -> bytes | None:
                st, data = c.request("POST", "/api/v0/update", body, check=False)
                return data if st == 503 else None
            reply = wait_until(refused, 30, what="503 while 90 KB of another body are held")
            assert b"max_inflight_body_bytes" in reply
            assert c.last_headers.get("retry-after") == "1"
        finally:
            s.close()
        wait_until(lambda: c.request("POST", "/api/v0/update", body, check=False)[0] == 200,
                   30, what="budget given back once the held body is gone")
        assert "held{}" not in n.client("reader").fetch("~.*{}")


def test_stalled_body_gets_408_within_body_timeout(tmp_path: Path) -> None:
    with running(tmp_path, limits={"body_timeout": 2.0}) as n:
        t0 = time.monotonic()
        s = _start_slow_body(n)
        try:
            reply = _reply_of(s)
        finally:
            s.close()
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert time.monotonic() - t0 < 20
        assert n.client().update("1// after{} 1\n") == 200
        assert "slow{}" not in n.client("reader").fetch("~.*{}")


# -- no work for strangers -----------------------------------------------------------------

def test_gzip_bomb_without_token_costs_no_cpu(tmp_path: Path, bomb: bytes) -> None:
    """The attacker keeps its connection open after the 403, as a real one would: the
    node must not inflate what it goes on reading (it used to, in full, to discard it)."""
    with running(tmp_path) as n:
        cpu0 = cpu_seconds(n.pid)
        t0 = time.monotonic()
        head = ("POST /api/v0/update HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                f"Content-Length: {len(bomb)}\r\n\r\n").encode()
        socks = [socket.create_connection(("127.0.0.1", n.port), timeout=60) for _ in "ab"]
        try:
            replies = []
            for s in socks:  # two senders, as in the report
                with contextlib.suppress(OSError):
                    s.sendall(head + bomb)
            for s in socks:
                reply = b""
                while b"\r\n\r\n" not in reply and (chunk := s.recv(65536)):
                    reply += chunk
                replies.append(reply)
            elapsed = time.monotonic() - t0
            cost = settled_cpu(n.pid) - cpu0  # lingering reads included, sockets still open
        finally:
            for s in socks:
                s.close()
        for reply in replies:
            assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
        print(f"2 gzip bombs without token: 403 in {elapsed:.2f}s, node CPU {cost:.2f}s")
        assert cost < 0.3, f"node spent {cost:.2f}s of CPU on strangers' bodies"
        assert n.client().update("1// stranger.ok{} 1\n") == 200


@pytest.mark.parametrize("how", ["Content-Encoding: gzip", "Content-Type: application/gzip"])
def test_gzip_bomb_with_token_413_bounded_rss(tmp_path: Path, bomb: bytes, how: str) -> None:
    with running(tmp_path) as n:
        rss0 = status_kib(n.pid, "VmRSS")
        tok = n.tokens["ingest"]
        reply = raw_request(n.port, "POST /api/v0/update HTTP/1.1\r\nHost: x\r\n"
                            f"X-Warp10-Token: {tok}\r\n{how}\r\n"
                            f"Content-Length: {len(bomb)}\r\n\r\n", bomb)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert b"over the limit" in reply
        peak = status_kib(n.pid, "VmHWM")
        print(f"gzip bomb with token ({how}): 413, RSS {rss0 // 1024} -> peak "
              f"{peak // 1024} MiB")
        assert peak < rss0 + 300 * 1024
        assert n.client().update("1// bomb.ok{} 1\n") == 200


# -- memory ----------------------------------------------------------------------------------

def test_64mib_of_short_lines_refused_in_bounded_memory(tmp_path: Path) -> None:
    body = b"1// a{} 1\n" * (64 * MiB // 10)
    with running(tmp_path) as n:
        rss0 = status_kib(n.pid, "VmRSS")
        with pytest.raises(HTTPError) as err:
            n.client().update(body)
        assert err.value.status == 413
        assert "max_points_per_request" in err.value.body
        peak = status_kib(n.pid, "VmHWM")
        print(f"64 MiB short lines: 413, RSS {rss0 // 1024} -> peak {peak // 1024} MiB")
        assert peak < rss0 + 500 * 1024
        assert n.client().update("1// mem.ok{} 1\n") == 200


def test_60mb_class_name_refused(tmp_path: Path) -> None:
    body = b"1// " + b"c" * (60 * 1000 * 1000) + b"{} 1\n"
    with running(tmp_path) as n:
        with pytest.raises(HTTPError) as err:
            n.client().update(b"1// small{} 1\n" + body)
        assert err.value.status == 400
        assert "line 2" in err.value.body and "max_class_length" in err.value.body
        with pytest.raises(HTTPError) as err:
            n.client().meta("x{" + "k" * 300 + "=v}{}")
        assert err.value.status == 400 and "max_label_name_length" in err.value.body
        assert n.client("reader").fetch("~.*{}") == ""


def test_oversized_canonical_form_refused_at_origin(tmp_path: Path) -> None:
    """A body under max_body_size whose canonical record would not fit a receiver's
    /replicate body is refused (413 naming max_record_bytes), never acknowledged."""
    body = b"// grow{} 1\n" * 80_000  # 960 KB as sent, ~2.3 MB once timestamps are filled
    with running(tmp_path, max_body_size=MiB) as n:
        with pytest.raises(HTTPError) as err:
            n.client().update(body)
        assert err.value.status == 413 and "max_record_bytes" in err.value.body
        assert n.client("reader").fetch("grow{}") == ""
        assert n.client().update(b"// grow{} 1\n" * 1000) == 200


def test_max_record_bytes_over_receiver_limit_is_a_config_error(tmp_path: Path) -> None:
    from fanout.config import load_node_config
    from fanout.errors import ConfigError

    n = NodeProc.init(tmp_path / "n", "n", max_body_size=MiB,
                      limits={"max_record_bytes": MiB})
    with pytest.raises(ConfigError) as err:
        load_node_config(n.config)
    assert "fanout.yaml" in str(err.value) and "max_record_bytes" in str(err.value)
    n2 = NodeProc.init(tmp_path / "n2", "n2", limits={"max_labelz": 3})
    with pytest.raises(ConfigError) as err:
        load_node_config(n2.config)
    assert "max_labelz" in str(err.value)


# -- readers released ----------------------------------------------------------------------

def test_aborted_fetches_leave_fds_flat(tmp_path: Path) -> None:
    with running(tmp_path) as n:
        w = n.client()
        for i in range(20):
            w.update("".join(f"{j}// big{{i={i}}} {j}\n" for j in range(10_000)))
        q = urllib.parse.urlencode({"selector": "~.*{}", "start": str(-(1 << 63)),
                                    "stop": str((1 << 63) - 1)})
        head = (f"GET /api/v0/fetch?{q} HTTP/1.1\r\nHost: x\r\n"
                f"X-Warp10-Token: {n.tokens['reader']}\r\n\r\n").encode()

        def abort_fetches(count: int) -> None:
            for _ in range(count):
                s = socket.create_connection(("127.0.0.1", n.port), timeout=30)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(head)
                assert s.recv(64).startswith(b"HTTP/1.1 200")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()  # RST mid-reply

        abort_fetches(20)  # warm up: the store keeps up to 8 idle readers pooled
        wait_until(lambda: n.client("reader").fetch("big{i=1}", 1, 1), 10)
        base = open_fds(n.pid)
        abort_fetches(300)
        # SQLite keeps the fds of closed connections on a file another connection has
        # locked for reuse, so open fds follow the peak of concurrent readers: at most
        # max_concurrent_fetches (16) plus 8 pooled, never one per aborted fetch.
        wait_until(lambda: open_fds(n.pid) <= base + 40, 30,
                   what=f"node fds back near {base} (now {open_fds(n.pid)})")
        print(f"300 aborted fetches: fds {base} -> {open_fds(n.pid)}")
        assert "big{i=3} 5" in n.client("reader").fetch("big{i=3}", 5, 5)


# -- a hostile target ------------------------------------------------------------------------

class BombServer:
    """Answers every HTTP request with a gzip bomb; counts the requests."""

    def __init__(self, bomb: bytes):
        self.bomb = bomb
        self.requests = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c: socket.socket) -> None:
        with c:
            c.settimeout(10)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.requests += 1
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Encoding: gzip\r\nConnection: close\r\n"
                          + f"Content-Length: {len(self.bomb)}\r\n\r\n".encode() + self.bomb)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.thread.join(5)
        self.sock.close()


def test_hostile_target_gzip_bomb_bounded_forwarder(topo: Topology, bomb: bytes) -> None:
    from fanout.ops.targets import add_target

    a = topo.node("a")
    evil = BombServer(bomb)
    try:
        path = add_target(a.config, "evil", f"http://127.0.0.1:{evil.port}",
                          "x" * 32, None)
        text = path.read_text() + "retry_min: 0.05\nretry_max: 0.5\npoll_interval: 0.2\n"
        path.write_text(text)
        topo.targets[("a", "evil")] = path
        topo.start()
        a.client().update("1// evil{} 1\n")
        fwd = topo.forwarders[("a", "evil")]

        def saw_1401() -> bool:
            err = (topo.forwarder_state(a, "evil") or {}).get("lastError") or {}
            return err.get("errorNum") == 1401 and evil.requests >= 3

        wait_until(saw_1401, 60, what="forwarder reports 1401 and keeps retrying")
        seen = evil.requests
        wait_until(lambda: evil.requests > seen + 2, 30, what="forwarder still retrying")
        assert fwd.alive(), fwd.log_text()[-2000:]
        peak = status_kib(fwd.pid, "VmHWM")
        print(f"hostile target gzip bomb: forwarder peak RSS {peak // 1024} MiB, "
              f"{evil.requests} tries, lastError 1401")
        assert peak < 250 * 1024
        err = topo.forwarder_state(a, "evil")["lastError"]
        assert "inflates to over" in err["errorMessage"] or "over" in err["errorMessage"]
    finally:
        topo.close()
        evil.close()


def test_restore_over_limit_refused(tmp_path: Path) -> None:
    with running(tmp_path, limits={"max_restore_bytes": 4096}) as n:
        c = n.client("replicator")
        with pytest.raises(HTTPError) as err:
            c.request("POST", "/api/v0/replication/restore", b"x" * 10_000)
        assert err.value.status == 413 and "max_restore_bytes" in err.value.body
        body = b'{"format": "fanout-snapshot"' + b" " * 3000
        with pytest.raises(HTTPError) as err:
            c.request("POST", "/api/v0/replication/restore", body)
        assert err.value.status == 400

