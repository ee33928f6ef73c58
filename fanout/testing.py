"""Helpers to run real fanout processes and talk to them; used by tests, bench and demo.

Shipped with the package (as structlog ships ``structlog.testing``) so operators can script
the same checks the test suite makes.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from fanout.gts.model import INT64_MAX, INT64_MIN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _NoDelayConnection(http.client.HTTPConnection):
    """http.client sends headers and body in two segments: without TCP_NODELAY every
    request waits ~40 ms for a delayed ACK."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _NoDelayHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HTTPError(Exception):
    def __init__(self, status: int, body: str):
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body.strip()[:300]}")


class Client:
    """A small synchronous Warp 10 API client over one keep-alive connection."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None):
        u = urllib.parse.urlsplit(url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname or "127.0.0.1", u.port or (443 if self.https else 80)
        self.token = token
        self.timeout = timeout
        self.ssl_context = ssl_context  # for https: verifies the node, may hold our cert
        self._conn: http.client.HTTPConnection | None = None
        self.last_headers: dict[str, str] = {}  # of the last reply, names lower-cased

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __del__(self) -> None:  # a dropped client closes its socket quietly
        self.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, token: str | None = None,
                check: bool = True) -> tuple[int, bytes]:
        hdrs = dict(headers or {})
        tok = token if token is not None else self.token
        if tok is not None:
            hdrs["X-Warp10-Token"] = tok
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = _NoDelayHTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self.ssl_context) \
                    if self.https else \
                    _NoDelayConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=body, headers=hdrs)
                resp = self._conn.getresponse()
                data = resp.read()
                self.last_headers = {k.lower(): v for k, v in resp.getheaders()}
                break
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        if check and resp.status >= 400:
            raise HTTPError(resp.status, data.decode("utf-8", "replace"))
        return resp.status, data

    def update(self, text: str | bytes, **kw: Any) -> int:
        body = text.encode() if isinstance(text, str) else text
        return self.request("POST", "/api/v0/update", body, **kw)[0]

    def meta(self, text: str, delta: bool = False, **kw: Any) -> int:
        headers = {"X-Warp10-Attributes": "delta"} if delta else None
        return self.request("POST", "/api/v0/meta", text.encode(), headers=headers, **kw)[0]

    def delete(self, selector: str, start: int | None = None, end: int | None = None,
               **kw: Any) -> str:
        q = {"selector": selector}
        if start is None:
            q["deleteall"] = "true"
        else:
            q["start"], q["end"] = str(start), str(end)
        return self.request("GET", "/api/v0/delete?" + urllib.parse.urlencode(q), **kw)[1].decode()

    def fetch(self, selector: str = "~.*{}", start: int = INT64_MIN,
              stop: int = INT64_MAX,
              showattr: bool = False, fmt: str = "canonical", **kw: Any) -> str:
        """Fetch in ``fmt``; the default is the node's canonical form (oldest first, exact
        floats), which replicas are compared with byte for byte. Warp 10's default is
        ``text``: pass fmt="text" for what its clients see."""
        q = {"selector": selector, "start": str(start), "stop": str(stop), "format": fmt}
        if showattr:
            q["showattr"] = "true"
        return self.request("GET", "/api/v0/fetch?" + urllib.parse.urlencode(q), **kw)[1].decode()

    def logger_state(self, **kw: Any) -> dict[str, Any]:
        return json.loads(self.request("GET", "/api/v0/replication/logger-state", **kw)[1])


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def drop_closed(socks: list[socket.socket]) -> bool:
    """Close and forget every socket of ``socks`` its peer has closed; True once none is
    left (poll it with ``wait_until`` to see a server drop idle connections)."""
    for s in list(socks):
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                socks.remove(s)
                s.close()
        except BlockingIOError:
            pass
        except OSError:
            socks.remove(s)
            s.close()
    return not socks


def eventually(check: Any, what: str, timeout: float = 10.0) -> None:
    """Poll an assertion until it holds (state files are written about once a second);
    on timeout re-raise the last AssertionError so the test says what was wrong.

    ``check`` asserts; it may also return a bool, and a returned ``False`` counts as not
    yet (so ``eventually(lambda: x == y, ...)`` can fail). Returning ``None`` means "held":
    write ``lambda: x == y``, never ``lambda: x == y or None``."""
    err: list[BaseException] = []

    def ok() -> bool:
        try:
            if check() is False:
                raise AssertionError(f"{what}: the check returned False")
            return True
        except (AssertionError, KeyError) as exc:
            err[:] = [exc]
            return False

    try:
        wait_until(ok, timeout, interval=0.2, what=what)
    except TimeoutError:
        raise AssertionError(f"{what}: {err[0]!r}") from None


def tokens_of(node_dir: Path) -> dict[str, str]:
    """token id -> secret, from a node directory made by ``fanout init``."""
    data = yaml.safe_load((Path(node_dir) / "secrets" / "tokens.yaml").read_text())
    return {tid: v["secret"] for tid, v in data.items()}


class Proc:
    """A fanout process in its own process group, so a kill reaches its children too."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.args = args
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def fanout_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fanout.cli.main", *args]


class NodeProc(Proc):
    """A ``fanout node`` process made by ``fanout init`` in ``node_dir``."""

    def __init__(self, node_dir: Path, port: int):
        self.dir = Path(node_dir)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.config = self.dir / "fanout.yaml"
        super().__init__(fanout_cmd("node", "--config", str(self.config)),
                         self.dir / "node.log")
        self.tokens = tokens_of(self.dir)
        self.ssl_context: ssl.SSLContext | None = None  # clients of an https node use it

    @classmethod
    def init(cls, node_dir: Path, node_id: str, store: str = "sqlite",
             port: int | None = None, **overrides: Any) -> NodeProc:
        from fanout.ops.init import init_node

        port = port or free_port()
        cfg = init_node(node_dir, node_id, f"127.0.0.1:{port}", store)
        if overrides:
            data = yaml.safe_load(cfg.read_text())
            data.update(overrides)
            cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        return cls(node_dir, port)

    def use_tls(self, cert: Path, key: Path, ca: Path, client_cert: Path,
                client_key: Path) -> None:
        """Serve https with ``cert``/``key``, requiring client certificates ``ca`` signed;
        this harness's clients then verify the node with ``ca`` and present
        ``client_cert``. Call before ``start``."""
        from fanout.tlsconfig import ClientTLS

        data = yaml.safe_load(self.config.read_text())
        data["tls"] = {"cert_file": str(cert), "key_file": str(key), "client_ca_file": str(ca)}
        self.config.write_text(yaml.safe_dump(data))
        self.url = f"https://127.0.0.1:{self.port}"
        self.ssl_context = ClientTLS(ca, client_cert, client_key).context()

    def client(self, token: str = "ingest") -> Client:
        return Client(self.url, self.tokens[token], ssl_context=self.ssl_context)

    def start_and_wait(self, timeout: float = 30.0) -> NodeProc:
        self.start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        c = self.client("reader")

        def ready() -> bool:
            if not self.alive():
                code = self.popen.returncode if self.popen else "?"
                raise RuntimeError(f"node exited with {code}:\n{self.log_text()[-3000:]}")
            try:
                c.logger_state()
                return True
            except (OSError, HTTPError):
                c.close()
                return False

        try:
            wait_until(ready, timeout, what=f"node on port {self.port}")
        finally:
            c.close()

    @property
    def datalog_dir(self) -> Path:
        return self.dir / "data" / "datalog"

    @property
    def state_dir(self) -> Path:
        return self.dir / "data" / "state"


def forwarder_cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "forwarder.main", "--config", str(config)]


class Topology:
    """Nodes, distributors and forwarders as real processes under one directory.

    ``link(a, b)`` makes ``b`` a target of ``a`` (a target file in a's ``forwarders.d``
    holding b's replicate token); ``start()`` runs every distributor and forwarder.
    Everything it started is killed by ``close()``.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.nodes: dict[str, NodeProc] = {}
        self.distributors: dict[str, Proc] = {}
        self.forwarders: dict[tuple[str, str], Proc] = {}
        self.targets: dict[tuple[str, str], Path] = {}

    def node(self, node_id: str, store: str = "sqlite", **overrides: Any) -> NodeProc:
        n = NodeProc.init(self.root / node_id, node_id, store, **overrides)
        self.nodes[node_id] = n
        return n

    def link(self, src: NodeProc, dst: NodeProc, name: str | None = None,
             **overrides: Any) -> Path:
        from fanout.ops.targets import add_target

        name = name or dst.dir.name
        # auto_resync replaces the target's store: that needs a token with 'admin' there
        token = dst.tokens["admin" if overrides.get("auto_resync") else "replicator"]
        path = add_target(src.config, name, dst.url, token, None)
        data = yaml.safe_load(path.read_text())
        data.setdefault("retry_min", 0.05)
        data.setdefault("retry_max", 0.5)
        data.setdefault("poll_interval", 0.2)
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.targets[(src.dir.name, name)] = path
        return path

    def start_nodes(self) -> None:
        for n in self.nodes.values():
            if not n.alive():
                n.start()
        for n in self.nodes.values():
            n.wait_ready()

    def distributor(self, src: NodeProc) -> Proc:
        p = Proc(fanout_cmd("distribute", "--config", str(src.config)),
                 src.dir / "distributor.log")
        self.distributors[src.dir.name] = p
        return p

    def forwarder(self, src: NodeProc, target: str) -> Proc:
        key = (src.dir.name, target)
        p = Proc(forwarder_cmd(self.targets[key]), src.dir / f"forwarder-{target}.log")
        self.forwarders[key] = p
        return p

    def start(self) -> None:
        """Nodes, then each source's distributor and forwarders."""
        self.start_nodes()
        for src_id in {s for s, _ in self.targets}:
            src = self.nodes[src_id]
            if src_id not in self.distributors or not self.distributors[src_id].alive():
                self.distributor(src).start()
        for (src_id, target) in self.targets:
            p = self.forwarders.get((src_id, target))
            if p is None or not p.alive():
                self.forwarder(self.nodes[src_id], target).start()

    def forwarder_state(self, src: NodeProc, target: str) -> dict[str, Any]:
        """The raw document (tests assert the bytes operators read); typed:
        ``fanout.state.ForwarderState.read``."""
        from fanout.state import forwarder_state_path
        from fanout.statefile import read_json

        return read_json(forwarder_state_path(src.state_dir, target)) or {}

    def node_state(self, node: NodeProc) -> dict[str, Any]:
        """The raw document; typed: ``fanout.state.NodeState.read``."""
        from fanout.state import node_state_path
        from fanout.statefile import read_json

        return read_json(node_state_path(node.state_dir)) or {}

    def fetch_all(self, node: NodeProc) -> str:
        with node.client("reader") as c:
            return c.fetch("~.*{}", showattr=True)

    def wait_converged(self, reference: NodeProc, others: list[NodeProc],
                       timeout: float = 60.0) -> str:
        """Until every node's full fetch equals the reference's; returns it."""
        last: dict[str, str] = {}

        def same() -> bool:
            ref = self.fetch_all(reference)
            for o in others:
                last[o.dir.name] = self.fetch_all(o)
            return all(v == ref for v in last.values()) and bool(ref)

        try:
            wait_until(same, timeout, interval=0.25, what="replicas to converge")
        except TimeoutError:
            ref = self.fetch_all(reference)
            diff = {k: (len(v), len(ref)) for k, v in last.items() if v != ref}
            raise TimeoutError(f"not converged (bytes node/ref): {diff}\n"
                               + self.logs_tail()) from None
        return self.fetch_all(reference)

    def logs_tail(self, n: int = 1500) -> str:
        out = []
        for p in [*self.distributors.values(), *self.forwarders.values(),
                  *self.nodes.values()]:
            out.append(f"--- {p.log_path}\n{p.log_text()[-n:]}")
        return "\n".join(out)

    def close(self) -> None:
        for p in [*self.forwarders.values(), *self.distributors.values(),
                  *self.nodes.values()]:
            p.kill()


class CapturingProxy:
    """A plain HTTP/1.1 relay on 127.0.0.1 in front of ``upstream`` that records each
    request's method, path, headers and body as the client sent them: what a test checks
    when the claim is about the wire (e.g. "batches travel gzipped"), not about the result.

    One thread per connection; keep-alive is kept, bodies must carry a Content-Length.
    Use as a context manager; ``url`` is what the client should call instead."""

    def __init__(self, upstream: str):
        import http.server
        import threading

        target = urllib.parse.urlsplit(upstream)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet under pytest
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                proxy.requests.append((self.command, self.path, dict(headers), body))
                up = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                                timeout=60)
                try:
                    up.request(self.command, self.path, body=body or None, headers=headers)
                    resp = up.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("content-length", "connection",
                                             "transfer-encoding", "date", "server"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    up.close()

            do_GET = do_POST = do_PUT = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def posts(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for m, p, h, b in list(self.requests) if m == "POST" and p == path]

    def __enter__(self) -> CapturingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


# -- in-process fakes: unit tests of one policy, without processes or sockets ---------------


@dataclasses.dataclass(frozen=True)
class FakeReply:
    """What a sink's ``send`` reports (the fields of ``forwarder.sinks.base.SendResult``;
    spelled here because ``fanout`` does not import ``forwarder``)."""

    applied: int
    duplicate: int = 0
    gap: int = 0
    loop: int = 0


class FakeSink:
    """A forwarder sink in memory: records every batch it is sent, and answers from a
    script, then from ``reply``.

    ``script`` entries are consumed one per ``send``: an exception is raised, a callable
    is called with the batch (and may raise or return a reply), anything else is returned.
    Once the script is empty ``reply(batch)`` answers (default: everything applied).
    ``sent`` holds the records of every attempt, refused ones included; ``applied`` only
    those of attempts that were answered. ``describe``/``history_marks`` answer
    ``target_id``/``marks`` (set ``marks`` to None for a target that cannot tell)."""

    def __init__(self, target_id: str | None = "target",
                 marks: dict[str, dict[str, int]] | None = None,
                 script: list[Any] | None = None, reply: Any = None):
        self.target_id = target_id
        self.marks_value = marks if marks is not None else {}
        self.script: collections.deque[Any] = collections.deque(script or [])
        self.reply = reply if reply is not None else (lambda b: FakeReply(len(b.records)))
        self.sent: list[list[Any]] = []
        self.applied: list[list[Any]] = []
        self.describes = 0
        self.closed = False

    async def describe(self) -> str | None:
        self.describes += 1
        return self.target_id

    async def history_marks(self) -> dict[str, dict[str, int]] | None:
        return self.marks_value

    async def marks(self) -> dict[str, int] | None:
        if self.marks_value is None:
            return None
        return {o: max(hs.values()) for o, hs in self.marks_value.items() if hs}

    async def send(self, batch: Any) -> Any:
        self.sent.append(list(batch.records))
        step = self.script.popleft() if self.script else self.reply
        if isinstance(step, BaseException):
            raise step
        result = step(batch) if callable(step) else step
        self.applied.append(list(batch.records))
        return result

    async def close(self) -> None:
        self.closed = True

    def applied_seqs(self) -> list[int]:
        return [r.seq for batch in self.applied for r in batch]


class RecordingStore:
    """Wraps a real store (e.g. ``open_store("memory", ...)``) and records the entries of
    every ``apply`` call: one call is one commit's transaction. With ``gate`` set, the
    first ``apply`` waits for it (``entered`` is set when it starts waiting), so a test
    can queue writes while a commit runs. ``refuse(entries)`` may return an exception
    to raise instead of applying (the store then rolls back: nothing is applied)."""

    def __init__(self, inner: Any, gate: threading.Event | None = None,
                 refuse: Any = None):
        self.inner = inner
        self.gate = gate
        self.entered = threading.Event()
        self.refuse = refuse
        self.calls: list[list[Any]] = []

    def apply(self, entries: Any, last_seq: int) -> Any:
        self.calls.append(list(entries))
        if self.gate is not None and len(self.calls) == 1:
            self.entered.set()
            if not self.gate.wait(60):
                raise TimeoutError("RecordingStore: the gate was never opened")
        error = self.refuse(entries) if self.refuse is not None else None
        if error is not None:
            raise error
        return self.inner.apply(entries, last_seq)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
