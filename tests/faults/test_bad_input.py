"""Bad input of every kind: a 2xx or a 4xx with a body, never a 5xx, never a change."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout.config import load_node_config
from fanout.errors import ConfigError
from fanout.ops.init import init_node
from fanout.ops.targets import add_target
from fanout.target_config import load_target_config
from fanout.testing import NodeProc, fanout_cmd, free_port

MAX_BODY = 65536
TIMEOUT = 10.0
FUZZ = settings(max_examples=150, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
WRITE_PATHS = ("/api/v0/update", "/api/v0/meta", "/api/v0/delete", "/api/v0/replicate",
               "/api/v0/replication/restore")
TRIED: Counter[str] = Counter()


class Fuzzed:
    """The node under test plus the record of every reply it gave."""

    def __init__(self, node: NodeProc):
        self.node = node
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.logged = 0  # 2xx writes whose reply carried a tick

    def secret(self, who: str) -> str | None:
        if who == "none":
            return None
        if who == "unknown":
            return "not-a-token-0123456789abcdef"
        return self.node.tokens[who]

    def raw(self, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data, dict(resp.getheaders())
        finally:
            conn.close()

    def tick(self) -> int:
        status, data, _ = self.raw("GET", "/api/v0/replication/logger-state",
                                   headers={"X-Warp10-Token": self.node.tokens["replicator"]})
        assert status == 200, data
        return int(json.loads(data)["state"]["lastLogTick"])

    def store(self) -> bytes:
        q = urllib.parse.urlencode({"selector": "~.*{}", "start": str(-(1 << 63)),
                                    "stop": str((1 << 63) - 1), "showattr": "true"})
        status, data, _ = self.raw("GET", "/api/v0/fetch?" + q,
                                   headers={"X-Warp10-Token": self.node.tokens["reader"]})
        assert status == 200, data
        return data

    def check(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
              who: str) -> int:
        """One request; asserts the reply's class and, for a rejected write, no change."""
        hdrs = dict(headers)
        tok = self.secret(who)
        if tok is not None:
            hdrs["X-Warp10-Token"] = tok
        is_write = path.split("?")[0] in WRITE_PATHS
        if is_write:
            tick0, store0 = self.tick(), self.store()
        t0 = time.monotonic()
        status, data, reply_headers = self.raw(method, path, body, hdrs)
        assert time.monotonic() - t0 < TIMEOUT
        endpoint = path.split("?")[0]
        if endpoint.startswith(("/api/v0/update/", "/api/v0/meta/")):
            endpoint = endpoint.rsplit("/", 1)[0] + "/{token}"
        TRIED[endpoint] += 1
        assert status < 500, (method, path, headers, body[:300] if body else body, status, data)
        assert 200 <= status < 300 or 400 <= status < 500, status
        if status >= 400:
            assert data.strip(), (status, path, "a 4xx must say why")
            self.rejected[endpoint] += 1
            if is_write:
                assert self.tick() == tick0, ("a rejected write took a seq", path, data)
                assert self.store() == store0, ("a rejected write changed the store", path)
        else:
            self.accepted[endpoint] += 1
            if "X-Fanout-Tick" in reply_headers:
                self.logged += 1
            elif endpoint == "/api/v0/replicate":
                self.logged += int(json.loads(data)["applied"])
        return status


@pytest.fixture(scope="module")
def fz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    node = NodeProc.init(tmp_path_factory.mktemp("fuzz") / "n1", "n1",
                         max_body_size=MAX_BODY).start_and_wait()
    try:
        fz = Fuzzed(node)
        yield fz
        assert node.alive(), node.log_text()[-3000:]
        # still answering, and every seq it gave out belongs to an acknowledged write
        assert fz.tick() == fz.logged, (fz.tick(), fz.logged)
        sys.stderr.write(f"\nrequests per endpoint: {dict(TRIED)}\n"
                         f"accepted: {dict(fz.accepted)}\nrejected: {dict(fz.rejected)}\n"
                         f"logged: {fz.logged}\n")
    finally:
        node.kill()


# -- strategies ----------------------------------------------------------------------------

# the write token is drawn more often, so that enough bodies get past authorization
WHO = st.sampled_from(["none", "unknown", "ingest", "ingest", "ingest", "reader", "replicator"])
HDR_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
INTS = st.one_of(st.integers(-(1 << 70), 1 << 70), st.integers(-5000, 5000),
                 st.sampled_from([(1 << 63) - 1, -(1 << 63), 1 << 63, -(1 << 63) - 1]))
NUMISH = st.one_of(INTS.map(str), HDR_TEXT, st.sampled_from(["", "1e3", "0x10", " 5 ",
                                                              "1_000", "nan", "-"]))
NAME = st.one_of(st.from_regex(r"[a-z~.*]{1,8}", fullmatch=True), HDR_TEXT)
LABELS = st.one_of(st.just("{}"), st.from_regex(r"\{([a-z]{1,4}[=~][a-z0-9%]{0,4},?){0,3}\}",
                                                fullmatch=True), HDR_TEXT)
VALUE = st.one_of(INTS.map(str), st.floats().map(str), st.sampled_from(["T", "F", "'x'", "'",
                                                                        "true", "[", "b64:"]),
                  HDR_TEXT)
GTS_LINE = st.builds(lambda ts, geo, n, lab, v: f"{ts}/{geo}/ {n}{lab} {v}",
                     st.one_of(INTS.map(str), st.just("")),
                     st.sampled_from(["", "48.1:-4.5", "91:0", "x:y", "1:2:3"]), NAME, LABELS,
                     VALUE)
META_LINE = st.builds(lambda n, lab, attrs: f"{n}{lab}{attrs}", NAME, LABELS, LABELS)
VALID_LINE = st.builds(lambda ts, n, v: f"{ts}// {n}{{}} {v}", st.integers(0, 10**12),
                      st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.integers(-99, 99))
TEXT_BODY = st.one_of(
    st.lists(VALID_LINE, min_size=1, max_size=4).map(lambda ls: "\n".join(ls) + "\n"),
    st.lists(GTS_LINE, max_size=6).map(lambda ls: "\n".join(ls) + "\n"),
    st.lists(META_LINE, max_size=6).map(lambda ls: "\n".join(ls)),
    st.text(max_size=300),
).map(lambda s: s.encode("utf-8", "surrogatepass"))
VALID_BODY = st.lists(VALID_LINE, min_size=1, max_size=4).map(
    lambda ls: ("\n".join(ls) + "\n").encode())
BODY = st.one_of(VALID_BODY, TEXT_BODY, st.binary(max_size=600), st.just(b""))


@st.composite
def gzipped(draw: st.DrawFn, body: st.SearchStrategy[bytes]) -> bytes:
    raw = draw(body)
    kind = draw(st.sampled_from(["whole", "truncated", "random", "corrupt"]))
    z = gzip.compress(raw)
    if kind == "truncated":
        return z[: draw(st.integers(0, max(0, len(z) - 1)))]
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "corrupt":
        i = draw(st.integers(0, len(z) - 1))
        return z[:i] + bytes([z[i] ^ 0x5A]) + z[i + 1:]
    return z


HEADERS = st.dictionaries(
    st.sampled_from(["X-Warp10-Now", "X-Warp10-Attributes", "Content-Type", "Accept",
                     "Authorization", "X-Whatever", "Content-Encoding", "Transfer-Encoding-X"]),
    HDR_TEXT, max_size=4)


@st.composite
def write_request(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    headers = draw(HEADERS)
    headers.pop("Content-Encoding", None)
    if draw(st.integers(0, 3)) == 0:
        headers["X-Warp10-Now"] = draw(NUMISH)
    elif draw(st.booleans()):
        headers.pop("X-Warp10-Now", None)
    if draw(st.integers(0, 3)) == 0:
        headers["Content-Type"] = draw(st.sampled_from(["application/gzip",
                                                        "application/x-gzip; q=1"]))
        return draw(gzipped(BODY)), headers
    headers.pop("Content-Type", None) if headers.get("Content-Type", "").lower().startswith(
        ("application/gzip", "application/x-gzip")) else None
    return draw(BODY), headers


QUERY_KEYS = ["selector", "start", "end", "stop", "now", "timespan", "deleteall", "showattr",
              "replace", "x"]


@st.composite
def query(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind <= 1:  # well-formed, so that some get through
        name = draw(st.from_regex(r"[a-z]{1,6}", fullmatch=True))
        if kind == 0:
            return urllib.parse.urlencode({"selector": name + "{}", "deleteall": "true"})
        start = draw(st.integers(-(10**12), 10**12))
        return urllib.parse.urlencode({"selector": name + "{}", "start": start,
                                       "end": start + draw(st.integers(0, 10**12)),
                                       "stop": start + 5})
    if kind == 2:  # raw, possibly malformed, query string
        return urllib.parse.quote(draw(st.text(max_size=80)), safe="=&%+;")
    q: dict[str, str] = {}
    for key in draw(st.lists(st.sampled_from(QUERY_KEYS), max_size=5, unique=True)):
        if key == "selector":
            q[key] = draw(st.one_of(st.builds(lambda n, lab: n + lab, NAME, LABELS),
                                    st.text(max_size=40)))
        elif key in ("deleteall", "showattr", "replace"):
            q[key] = draw(st.sampled_from(["", "true", "false", "TRUE", "1"]))
        elif key == "x":
            q[key] = draw(st.text(max_size=20))
        else:
            q[key] = draw(NUMISH)
    return urllib.parse.urlencode(q, encoding="utf-8", errors="surrogatepass")


# -- the fuzzing ---------------------------------------------------------------------------

@FUZZ
@given(req=write_request(), who=WHO, path=st.sampled_from(["/api/v0/update", "/api/v0/meta"]),
       in_path=st.booleans())
def test_update_and_meta_bodies(fz: Fuzzed, req: tuple[bytes, dict[str, str]], who: str,
                                path: str, in_path: bool) -> None:
    body, headers = req
    if in_path and who not in ("none",):
        # Warp 10 clients put the token in the path
        path = f"{path}/{urllib.parse.quote(fz.secret(who) or '', safe='')}"
        who = "none"
    fz.check("POST", path, body, headers, who)


@FUZZ
@given(q=query(), who=WHO, path=st.sampled_from(["/api/v0/delete", "/api/v0/fetch"]))
def test_delete_and_fetch_queries(fz: Fuzzed, q: str, who: str, path: str) -> None:
    fz.check("GET", f"{path}?{q}", None, {}, who)


@FUZZ
@given(req=write_request(), who=WHO)
def test_replicate_bodies(fz: Fuzzed, req: tuple[bytes, dict[str, str]], who: str) -> None:
    body, headers = req
    fz.check("POST", "/api/v0/replicate", body, headers, who)


@FUZZ
@given(req=write_request(), who=WHO,
       header=st.one_of(st.just(""), st.builds(
           lambda tick, marks: json.dumps({"format": "fanout-snapshot", "version": 1,
                                           "serverId": "x", "lastLogTick": tick,
                                           "marks": marks}) + "\n",
           st.one_of(INTS, HDR_TEXT), st.dictionaries(HDR_TEXT, INTS, max_size=2))))
def test_restore_bodies(fz: Fuzzed, req: tuple[bytes, dict[str, str]], who: str,
                        header: str) -> None:
    body, headers = req
    fz.check("POST", "/api/v0/replication/restore", header.encode() + body, headers, who)


@pytest.mark.parametrize("body", [b"\xff\n", gzip.compress(b"x\n"),
                                  b'{"format": "fanout-snapshot"}\n\xff\n'])
def test_restore_non_utf8_body_is_400(fz: Fuzzed, body: bytes) -> None:
    fz.check("POST", "/api/v0/replication/restore", body, {}, "replicator")


@FUZZ
@given(who=WHO, q=query(), headers=HEADERS,
       path=st.sampled_from(["/api/v0/replication/logger-state", "/api/v0/replication/marks",
                             "/api/v0/replication/snapshot", "/metrics"]))
def test_read_endpoints(fz: Fuzzed, who: str, q: str, headers: dict[str, str],
                        path: str) -> None:
    headers.pop("Content-Type", None)
    fz.check("GET", f"{path}?{q}", None, headers, who)


def test_empty_bodies_are_200_and_log_nothing(fz: Fuzzed) -> None:
    tick = fz.tick()
    for path in ("/api/v0/update", "/api/v0/meta"):
        for body, headers in ((b"", {}), (b"\n# only a comment\n\n", {}),
                              (gzip.compress(b""), {"Content-Type": "application/gzip"})):
            assert fz.check("POST", path, body, headers, "ingest") == 200
    assert fz.tick() == tick


def test_body_over_max_body_size_is_413(fz: Fuzzed) -> None:
    tick = fz.tick()
    big = b"".join(b"%d// big{} %d\n" % (i, i) for i in range(20000))
    assert len(big) > MAX_BODY
    for path in ("/api/v0/update", "/api/v0/meta", "/api/v0/replicate"):
        who = "replicator" if path.endswith("replicate") else "ingest"
        status, data, _ = fz.raw("POST", path, big, {"X-Warp10-Token": fz.secret(who) or ""})
        assert status == 413 and data.strip(), (path, status, data)
        # a gzip bomb: small on the wire, over the limit once inflated
        status, data, _ = fz.raw("POST", path, gzip.compress(b"\n" * (MAX_BODY * 4)),
                                 {"X-Warp10-Token": fz.secret(who) or "",
                                  "Content-Type": "application/gzip"})
        assert status == 413 and data.strip(), (path, status, data)
    assert fz.tick() == tick


# -- malformed HTTP on a raw socket --------------------------------------------------------

def raw_exchange(port: int, data: bytes, close_write: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and not close_write:
                break
    return out


def status_of(reply: bytes) -> int | None:
    if not reply:
        return None  # a clean close
    line = reply.split(b"\r\n", 1)[0].split()
    return int(line[1])


@pytest.mark.parametrize("name", ["bad-request-line", "bad-version", "bad-content-length",
                                  "negative-content-length", "huge-header", "short-body",
                                  "binary-garbage", "bad-chunked"])
def test_malformed_http_gets_4xx_or_close(fz: Fuzzed, name: str) -> None:
    tok = fz.node.tokens["ingest"].encode()
    line = b"1// raw{} 1\n"
    cases = {
        "bad-request-line": (b"GARBAGE\r\n\r\n", False),
        "bad-version": (b"GET /api/v0/fetch HTTP/9.9z\r\n\r\n", False),
        "bad-content-length": (b"POST /api/v0/update HTTP/1.1\r\nHost: x\r\nX-Warp10-Token: "
                               + tok + b"\r\nContent-Length: abc\r\n\r\n" + line, False),
        "negative-content-length": (b"POST /api/v0/update HTTP/1.1\r\nHost: x\r\n"
                                    b"X-Warp10-Token: " + tok
                                    + b"\r\nContent-Length: -5\r\n\r\n" + line, False),
        "huge-header": (b"GET /api/v0/fetch?selector=a{}&start=0&stop=1 HTTP/1.1\r\nHost: x\r\n"
                        b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", False),
        "short-body": (b"POST /api/v0/update HTTP/1.1\r\nHost: x\r\nX-Warp10-Token: " + tok
                       + b"\r\nContent-Length: 1000\r\n\r\n" + line, True),
        "binary-garbage": (bytes(range(256)) * 4, False),
        "bad-chunked": (b"POST /api/v0/update HTTP/1.1\r\nHost: x\r\nX-Warp10-Token: " + tok
                        + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + line + b"\r\n",
                        True),
    }
    data, close_write = cases[name]
    tick = fz.tick()
    reply = raw_exchange(fz.node.port, data, close_write)
    status = status_of(reply)
    assert status is None or 400 <= status < 500, reply[:300]
    assert fz.tick() == tick  # nothing half-received was logged
    assert fz.node.alive()
    fz.check("GET", "/api/v0/replication/logger-state", None, {}, "reader")


# -- configuration fuzz --------------------------------------------------------------------

@pytest.fixture
def valid_files(tmp_path: Path) -> tuple[Path, Path]:
    cfg = init_node(tmp_path / "n1", "n1", f"127.0.0.1:{free_port()}")
    target = add_target(cfg, "b", "http://127.0.0.1:9", "secret-token-value", None)
    load_node_config(cfg)
    load_target_config(target)
    return cfg, target


WRONG = [["a", "list"], {"a": "mapping"}, True, 3, 1.5, "a string"]

NODE_KEYS: dict[str, Any] = {
    "id": "str", "listen": "str", "store": "map", "store.type": "str", "store.path": "str",
    "datalog_dir": "str", "state_dir": "str", "targets_dir": "str",
    "log_remote_changes": "bool", "tokens_file": "str", "max_body_size": "int",
    "group_commit": "bool", "bootstrap_from": "map",
    "tls": "map", "tls.cert_file": "str",
    "require_tls": "bool",
}
TARGET_KEYS: dict[str, Any] = {
    "target": "str", "source_dir": "str", "state_dir": "str", "sink": "map",
    "sink.type": "str", "sink.endpoint": "str", "sink.token_file": "str",
    "sink.compress": "bool", "ignore_origins": "list", "chunk_size": "int",
    "connect_timeout": "num", "request_timeout": "num", "max_connect_retries": "int",
    "retry_min": "num", "retry_max": "num", "adaptive_polling": "bool",
    "poll_interval": "num", "on_reject": "str", "retention": "map",
    "retention.max_files": "int", "retention.max_bytes": "int", "auto_resync": "bool",
    "auto_resync_retries": "int", "linger": "num",
    "sink.tls": "map", "sink.tls.ca_file": "str", "sink.tls.cert_file": "str",
}
OK_FOR = {"str": (str,), "map": (dict,), "bool": (bool,), "int": (int,),
          "num": (int, float), "list": (list,)}


def wrong_values(kind: str) -> list[Any]:
    ok = OK_FOR[kind]
    return [v for v in WRONG
            if not (isinstance(v, ok) and not (isinstance(v, bool) and bool not in ok))]


def set_key(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        data = data.setdefault(p, {})
    data[last] = value


@pytest.mark.parametrize("key", sorted(NODE_KEYS))
def test_node_config_wrong_types_name_file_and_key(valid_files: tuple[Path, Path],
                                                   key: str) -> None:
    cfg, _ = valid_files
    original = yaml.safe_load(cfg.read_text())
    for value in wrong_values(NODE_KEYS[key]):
        data = yaml.safe_load(yaml.safe_dump(original))
        if key == "bootstrap_from":
            set_key(data, "store", {"type": "memory"})
        set_key(data, key, value)
        cfg.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as err:
            load_node_config(cfg)
        assert str(cfg) in str(err.value) and f": {key}: " in str(err.value), (value, err.value)


@pytest.mark.parametrize("key", sorted(TARGET_KEYS))
def test_target_config_wrong_types_name_file_and_key(valid_files: tuple[Path, Path],
                                                     key: str) -> None:
    _, target = valid_files
    original = yaml.safe_load(target.read_text())
    for value in wrong_values(TARGET_KEYS[key]):
        data = yaml.safe_load(yaml.safe_dump(original))
        set_key(data, key, value)
        target.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as err:
            load_target_config(target)
        assert str(target) in str(err.value) and f": {key}: " in str(err.value), \
            (value, err.value)


@pytest.mark.parametrize("value", [-0.001, 1.5])
def test_target_linger_out_of_range_names_file_and_key(valid_files: tuple[Path, Path],
                                                       value: float) -> None:
    _, target = valid_files
    data = yaml.safe_load(target.read_text())
    data["linger"] = value
    target.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_target_config(target)
    assert str(target) in str(err.value) and ": linger: " in str(err.value), err.value


BROKEN_YAML = ["id: a\nlisten: [unclosed\n", "a: b\n  c: d\n", "key: 'open\n",
               "- a\n- b\nc: d\n", "a: b\n\tc: d\n", "{a: 1\n"]


@pytest.mark.parametrize("text", BROKEN_YAML)
def test_malformed_yaml_names_file_and_line(valid_files: tuple[Path, Path], text: str) -> None:
    loaders: tuple[Callable[[Path], object], ...] = (load_node_config, load_target_config)
    for path, load in zip(valid_files, loaders, strict=True):
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load(path)
        assert str(err.value).startswith(f"{path}: invalid YAML: line "), err.value


def test_broken_files_exit_78_with_the_message(valid_files: tuple[Path, Path]) -> None:
    cfg, target = valid_files
    cfg.write_text("id: n1\nlisten: [unclosed\n")
    res = subprocess.run(fanout_cmd("node", "--config", str(cfg)), text=True,
                         capture_output=True, timeout=60)
    assert res.returncode == 78, res.stderr
    assert f"{cfg}: invalid YAML: line" in res.stderr
    target.write_text("target: b\nsink: {endpoint: 'open\n")
    res = subprocess.run([sys.executable, "-m", "forwarder.main", "--config", str(target)],
                         text=True, capture_output=True, timeout=60)
    assert res.returncode == 78, res.stderr
    assert f"{target}: invalid YAML: line" in res.stderr
