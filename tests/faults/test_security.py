"""Secrets stay in ``secrets/``; replication needs the replicate permission; loose modes refuse."""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

from fanout.testing import HTTPError, NodeProc, Topology, fanout_cmd, forwarder_cmd, wait_until


def all_secrets(root: Path) -> dict[str, str]:
    """Every secret of every tokens.yaml and *.token file under root: secret -> where."""
    found: dict[str, str] = {}
    for f in root.rglob("tokens.yaml"):
        for tid, v in yaml.safe_load(f.read_text()).items():
            found[v["secret"]] = f"{f}:{tid}"
    for f in root.rglob("*.token"):
        found[f.read_text().strip()] = str(f)
    assert all(len(s) >= 16 for s in found), "a secret too short to grep for safely"
    return found


def files_outside_secrets(node_dir: Path) -> list[Path]:
    return [p for p in node_dir.rglob("*")
            if p.is_file() and "secrets" not in p.relative_to(node_dir).parts]


def test_no_secret_leaves_secrets_dir(topo: Topology) -> None:
    a, b, c = topo.node("a"), topo.node("b"), topo.node("c")
    topo.link(a, b)
    # a forced error: c's *reader* token, so c answers 403 and a quarantines
    topo.link(a, c, on_reject="quarantine")
    (a.dir / "secrets" / "c.token").write_text(c.tokens["reader"] + "\n")
    topo.start()
    w = a.client("ingest")
    for i in range(20):
        w.update("".join(f"{i * 10 + j}// sec.a{{k={i}}} {j}\n" for j in range(10)))
    w.meta("sec.a{k=1}{owner=x}")
    w.delete("sec.a{k=2}")
    # failed logins: wrong permission with real secrets, unknown secrets, secrets in paths
    for node in (a, b):
        for tok in ("ingest", "reader"):
            for path in ("/api/v0/replicate", "/api/v0/replication/restore"):
                with pytest.raises(HTTPError) as err:
                    node.client(tok).request("POST", path, b"x")
                assert err.value.status == 403
        for tok in ("reader", "replicator"):
            with pytest.raises(HTTPError) as err:
                node.client(tok).update("1// x{} 1\n")
            assert err.value.status == 403
            st, _ = node.client(tok).request(
                "POST", "/api/v0/update/" + urllib.parse.quote(node.tokens[tok]),
                b"1// x{} 1\n", token="", check=False)
            assert st == 403
        with pytest.raises(HTTPError):
            node.client("ingest").update("1// x{} 1\n", token=a.tokens["ingest"] + "x")
    qdir = a.dir / "data" / "targets" / "c" / "quarantine"
    wait_until(lambda: len(list(qdir.glob("*.dlog"))) >= 1, 30, what="a quarantined file")
    topo.wait_converged(a, [b])
    wait_until(lambda: topo.forwarder_state(a, "b").get("lastAppliedTick"), 30,
               what="forwarder state written")
    for p in [*topo.forwarders.values(), *topo.distributors.values(), *topo.nodes.values()]:
        p.stop()  # flush logs and final state files
    secrets = all_secrets(topo.root)
    assert len(secrets) == 3 * 4  # the two *.token files hold b's and c's secrets
    assert len(list(topo.root.rglob("*.token"))) == 2
    checked = 0
    kinds: set[str] = set()
    for node in (a, b, c):
        for f in files_outside_secrets(node.dir):
            data = f.read_bytes()
            checked += 1
            kinds.add(f.suffix or f.name)
            for secret, where in secrets.items():
                assert secret.encode() not in data, f"secret {where} found in {f}"
    assert {".dlog", ".json", ".log", ".yaml"} <= kinds, kinds
    assert checked > 10


@pytest.mark.parametrize("token", ["ingest", "reader"])
def test_replication_endpoints_need_replicate_permission(make_node, token: str) -> None:
    node: NodeProc = make_node("n1").start_and_wait()
    node.client("ingest").update("1// a{} 1\n")
    c = node.client(token)
    tick = node.client("replicator").logger_state()["state"]["lastLogTick"]
    for method, path, needed in (
            ("POST", "/api/v0/replicate", b"'replicate'"),
            ("GET", "/api/v0/replication/snapshot", b"'replicate'"),
            ("POST", "/api/v0/replication/restore", b"'replicate'"),
            ("POST", "/api/v0/replication/restore?replace=true", b"'admin'")):
        status, body = c.request(method, path, b"" if method == "POST" else None, check=False)
        assert status == 403, (path, status, body)
        assert needed in body and node.tokens[token].encode() not in body
    assert node.client("replicator").logger_state()["state"]["lastLogTick"] == tick
    assert node.client("reader").fetch("a{}") == "1// a{} 1\n"


def test_world_readable_tokens_yaml_refused(make_node) -> None:
    node: NodeProc = make_node("n1")
    tokens = node.dir / "secrets" / "tokens.yaml"
    os.chmod(tokens, 0o644)
    res = subprocess.run(fanout_cmd("node", "--config", str(node.config)), text=True,
                         capture_output=True, timeout=60)
    assert res.returncode == 78, res.stderr
    assert str(tokens) in res.stderr and "group or others" in res.stderr
    assert all(s not in res.stderr + res.stdout for s in node.tokens.values())


def test_world_readable_target_token_file_refused(topo: Topology) -> None:
    a, b = topo.node("a"), topo.node("b")
    target = topo.link(a, b)
    token_file = a.dir / "secrets" / "b.token"
    assert token_file.exists()
    os.chmod(token_file, 0o644)
    res = subprocess.run(forwarder_cmd(target), text=True, capture_output=True, timeout=60)
    assert res.returncode == 78, res.stderr
    assert str(token_file) in res.stderr and "group or others" in res.stderr
    assert b.tokens["replicator"] not in res.stderr + res.stdout
