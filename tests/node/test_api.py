"""The Warp 10 write/read subset, as a client sees it, against a real node process."""

from __future__ import annotations

import gzip
import http.client
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from fanout.datalog import iter_dir
from fanout.testing import HTTPError, NodeProc, fanout_cmd


@pytest.fixture
def node(make_node) -> NodeProc:
    return make_node("n1", max_body_size=4096).start_and_wait()


def logged(node: NodeProc) -> list:
    return [r for _, recs in iter_dir(node.datalog_dir) for r in recs]


def test_update_then_fetch_in_canonical_form(node: NodeProc) -> None:
    w, r = node.client("ingest"), node.client("reader")
    w.update("1000/48.1:-4.5/12 temp{room=b,floor=1} 21.5\n=1001// 22\n# comment\n\n"
             "2000// flag{} T\n3000// name%20x{k=a%2Cb} 'hello%20world'\n")
    assert r.fetch("~.*{}") == (
        "2000// flag{} T\n"
        "3000// name%20x{k=a%2Cb} 'hello%20world'\n"
        "1000/48.1:-4.5/12 temp{floor=1,room=b} 21.5\n"
        "1001// temp{floor=1,room=b} 22\n"
    )
    assert r.fetch("temp{room=b}", start=1001, stop=5000) == "1001// temp{floor=1,room=b} 22\n"


def test_write_replies_carry_their_tick(node: NodeProc) -> None:
    c = node.client("ingest")
    c.update("1// a{} 1\n")
    c.update("2// a{} 2\n")
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    conn.request("POST", "/api/v0/update", b"3// a{} 3\n",
                 {"X-Warp10-Token": node.tokens["ingest"]})
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 200
    assert (r.getheader("X-Fanout-Tick"), r.getheader("X-Fanout-Origin"),
            r.getheader("X-Fanout-Oseq")) == ("3", "n1", "3")


def test_empty_timestamp_uses_the_nodes_now_and_is_logged_absolute(node: NodeProc) -> None:
    w = node.client("ingest")
    w.update("// a{} 1", headers={"X-Warp10-Now": "123456"})
    [rec] = logged(node)
    assert rec.body == b"123456// a{} 1\n"
    assert rec.token_id == "ingest" and rec.origin == "n1" and rec.oseq == 1 and rec.seq == 1


def test_gzip_body_and_token_in_path(node: NodeProc) -> None:
    w = node.client("ingest")
    body = gzip.compress(b"5// g{} 42\n")
    secret = node.tokens["ingest"]
    w.request("POST", f"/api/v0/update/{secret}", body,
              headers={"Content-Type": "application/gzip"}, token="")
    assert node.client("reader").fetch("g{}") == "5// g{} 42\n"


def test_bad_line_rejects_whole_request_naming_the_line(node: NodeProc) -> None:
    w = node.client("ingest")
    with pytest.raises(HTTPError) as err:
        w.update("1// a{} 1\n2// a{} 2\n3// a{} notavalue\n")
    assert err.value.status == 400 and "line 3" in err.value.body
    assert node.client("reader").fetch("~.*{}") == ""
    assert logged(node) == []


@pytest.mark.parametrize(
    ("body", "headers", "status", "text"),
    [
        (b"\x1f\x8bnot gzip", {"Content-Type": "application/gzip"}, 400, "gzip"),
        (b"x" * 5000, {}, 413, "limit"),
        (gzip.compress(b"1// a{} 1\n" * 1000), {"Content-Type": "application/gzip"}, 413,
         "limit"),
        (b"1// a{} 1\n\xff\xfe\n", {}, 400, "line 2"),
    ],
)
def test_bad_bodies(node: NodeProc, body: bytes, headers: dict, status: int, text: str) -> None:
    with pytest.raises(HTTPError) as err:
        node.client("ingest").update(body, headers=headers)
    assert err.value.status == status and text in err.value.body
    assert logged(node) == []


def test_tokens_and_permissions(node: NodeProc) -> None:
    c = node.client("ingest")
    for token, perm_word in [("", "missing"), ("not-a-token-at-all!", "unknown"),
                             (node.tokens["reader"], "lacks the 'write'")]:
        with pytest.raises(HTTPError) as err:
            c.update("1// a{} 1", token=token)
        assert err.value.status == 403 and perm_word in err.value.body
    with pytest.raises(HTTPError) as err:
        c.fetch("a{}")  # ingest has no read permission
    assert err.value.status == 403
    with pytest.raises(HTTPError) as err:
        c.delete("a{}", token=node.tokens["replicator"])
    assert err.value.status == 403
    assert logged(node) == []


def test_meta_replace_and_delta(node: NodeProc) -> None:
    w, r = node.client("ingest"), node.client("reader")
    w.update("1// s{h=a} 1\n1// s{h=b} 2\n")
    w.meta("s{h=a}{owner=x,dc=p}\nunknown{}{z=1}\n")
    w.meta("s{h=a}{dc=,rack=9}\n", delta=True)
    assert r.fetch("s{}", showattr=True) == "1// s{h=a}{owner=x,rack=9} 1\n1// s{h=b}{} 2\n"
    recs = logged(node)
    assert [x.op for x in recs] == ["update", "meta", "meta"]
    assert recs[2].params == {"delta": True}


def test_delete_range_and_deleteall_reply_with_series(node: NodeProc) -> None:
    w, r = node.client("ingest"), node.client("reader")
    w.update("1// d{k=1} 1\n2// d{k=1} 2\n3// d{k=2} 3\n5// e{} 5\n")
    assert w.delete("d{k~.*}", 2, 3) == "d{k=1}{}\r\nd{k=2}{}\r\n"
    assert r.fetch("~.*{}") == "1// d{k=1} 1\n5// e{} 5\n"
    assert w.delete("~[de]{}") == "d{k=1}{}\r\nd{k=2}{}\r\ne{}{}\r\n"
    assert r.fetch("~.*{}") == ""
    dels = [x for x in logged(node) if x.op == "delete"]
    assert dels[0].params == {"selector": "=d{k~.%2A}", "start": 2, "end": 3}
    assert dels[1].params == {"selector": "~%5Bde%5D{}", "deleteall": True}


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("selector=a{}&start=5&end=1", "must be <="),
        ("selector=a{}&start=1", "both"),
        ("selector=a{}&start=1&end=2&deleteall=true", "either"),
        ("selector=a{x~(}&deleteall=true", "regex"),
        ("start=1&end=2", "selector"),
    ],
)
def test_bad_delete_requests(node: NodeProc, query: str, text: str) -> None:
    with pytest.raises(HTTPError) as err:
        node.client("ingest").request("GET", "/api/v0/delete?" + query)
    assert err.value.status == 400 and text in err.value.body


def test_fetch_now_and_timespan(node: NodeProc) -> None:
    w, r = node.client("ingest"), node.client("reader")
    w.update("".join(f"{t}// c{{}} {t}\n" for t in range(1, 11)))
    _, body = r.request("GET", "/api/v0/fetch?selector=c{}&now=10&timespan=3")
    assert body.decode() == "10// c{} 10\n=9// 9\n=8// 8\n"  # Warp 10: text, newest first
    _, body = r.request("GET", "/api/v0/fetch?selector=c{}&now=5&timespan=-2&format=canonical")
    assert body.decode() == "4// c{} 4\n5// c{} 5\n"


def test_logger_state(node: NodeProc) -> None:
    node.client("ingest").update("1// a{} 1\n2// a{} 2\n")
    node.client("ingest").update("3// a{} 3\n")
    st = node.client("replicator").logger_state()
    assert st["state"]["running"] is True
    assert st["state"]["lastLogTick"] == "2"  # a string: ticks are 64-bit
    assert st["state"]["totalEvents"] == 2
    assert st["server"]["serverId"] == "n1"
    with pytest.raises(HTTPError) as err:
        node.client("ingest").logger_state()
    assert err.value.status == 403


def run_node_expecting_failure(node: NodeProc) -> subprocess.CompletedProcess[str]:
    return subprocess.run(fanout_cmd("node", "--config", str(node.config)), text=True,
                          capture_output=True, timeout=30)


def test_world_readable_tokens_file_is_refused(make_node) -> None:
    node = make_node("n1")
    tokens = node.dir / "secrets" / "tokens.yaml"
    os.chmod(tokens, 0o644)
    res = run_node_expecting_failure(node)
    assert res.returncode == 78
    assert str(tokens) in res.stderr and "group or others" in res.stderr
    assert "chmod 600" in res.stderr
    assert node.tokens["ingest"] not in res.stderr


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("listen", "nowhere", "listen: must be HOST:PORT"),
        ("id", "bad id!", "id: must be 1 to 64"),
        ("log_remote_changes", "yes please", "log_remote_changes: must be true or false"),
        ("store", {"type": "rocks"}, "store.type: must be one of sqlite, memory"),
        ("surprise", 1, "surprise: unknown key"),
    ],
)
def test_config_errors_name_file_and_key(make_node, key: str, value: object,
                                         text: str) -> None:
    node = make_node("n1")
    data = yaml.safe_load(node.config.read_text())
    data[key] = value
    node.config.write_text(yaml.safe_dump(data))
    res = run_node_expecting_failure(node)
    assert res.returncode == 78
    assert f"{node.config}: {text}" in res.stderr


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "fanout.yaml"
    cfg.write_text("id: a\nlisten: [unclosed\n")
    res = subprocess.run(fanout_cmd("node", "--config", str(cfg)), text=True,
                         capture_output=True, timeout=30)
    assert res.returncode == 78 and f"{cfg}: invalid YAML: line" in res.stderr
