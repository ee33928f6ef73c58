"""``fanout target add|list|remove``: names are names, bad set-ups are refused before
anything is written, and a removed target leaves nothing behind (issues 11 and 12)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fanout.exitcodes import EXIT_LOCKED
from fanout.ops.init import new_secret
from fanout.testing import NodeProc, Topology, fanout_cmd, forwarder_cmd, wait_until


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its mode and a hash of its content."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            out[str(p.relative_to(root))] = f"{oct(st.st_mode)} {digest}"
    return out


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(fanout_cmd(*args), capture_output=True, text=True, timeout=60)


@pytest.fixture
def node(short_tmp: Path) -> NodeProc:
    n = NodeProc.init(short_tmp / "n1", "n1")
    res = cli("target", "add", "--config", str(n.config), "--name", "b",
              "--endpoint", "http://127.0.0.1:9", "--token", "b-secret")
    assert res.returncode == 0, res.stderr
    return n


BAD_NAMES = ["../../../x", "../secrets/b", ".hidden", "..", "-x", "a/b", "a b", "", "x" * 65,
             "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_refused_and_nothing_written(node: NodeProc, name: str) -> None:
    root = node.dir.parent
    before = snapshot(root)
    res = cli("target", "add", "--config", str(node.config), f"--name={name}",
              "--endpoint", "http://127.0.0.1:10", "--token", "new-secret")
    assert res.returncode == 78, res.stdout + res.stderr
    assert "--name" in res.stderr and "not starting with '.'" in res.stderr
    assert snapshot(root) == before
    assert (node.dir / "secrets" / "b.token").read_text() == "b-secret\n"


def bad_setups(node: NodeProc) -> list[tuple[list[str], str]]:
    own = f"127.0.0.1:{node.port}"
    return [
        (["--endpoint", f"http://{own}"], "is this node itself"),
        (["--endpoint", f"http://localhost:{node.port}/"], "is this node itself"),
        (["--endpoint", "http://127.0.0.1:9"], "also the endpoint of target 'b'"),
        (["--endpoint", "http://127.0.0.1:9/"], "also the endpoint of target 'b'"),
        (["--endpoint", "http://127.0.0.1:11", "--source-dir", str(node.datalog_dir)],
         "inside datalog_dir"),
        (["--endpoint", "http://127.0.0.1:11", "--source-dir",
          str(node.datalog_dir / ".tmp" / "c")], "inside datalog_dir"),
        (["--endpoint", "ftp://127.0.0.1:11"], "must be an http(s) URL"),
    ]


def test_bad_setups_refused_and_nothing_written(node: NodeProc) -> None:
    root = node.dir.parent
    for extra, why in bad_setups(node):
        before = snapshot(root)
        res = cli("target", "add", "--config", str(node.config), "--name", "c",
                  "--token", "c-secret", *extra)
        assert res.returncode == 78, (extra, res.stdout, res.stderr)
        assert why in res.stderr and "c.yaml" in res.stderr, (extra, res.stderr)
        assert snapshot(root) == before, extra


def test_bad_token_file_refused_and_nothing_written(node: NodeProc, short_tmp: Path) -> None:
    open_file = short_tmp / "open.token"
    open_file.write_text("x\n")
    open_file.chmod(0o644)
    before = snapshot(node.dir)
    res = cli("target", "add", "--config", str(node.config), "--name", "c",
              "--endpoint", "http://127.0.0.1:11", "--token-file", str(open_file))
    assert res.returncode == 78 and "chmod 600" in res.stderr, res.stderr
    assert snapshot(node.dir) == before


def test_loaded_target_files_are_checked_too(node: NodeProc) -> None:
    """A hand-written file the CLI would refuse: the forwarder and the distributor exit 78
    naming the file and the key, and nothing is created inside datalog/."""
    path = node.dir / "forwarders.d" / "self.yaml"
    data = yaml.safe_load((node.dir / "forwarders.d" / "b.yaml").read_text())
    data.update(target="self")
    data["sink"]["endpoint"] = node.url
    path.write_text(yaml.safe_dump(data))
    res = subprocess.run(forwarder_cmd(path), capture_output=True, text=True, timeout=60)
    assert res.returncode == 78, res.stderr
    assert f"{path}: sink.endpoint: " in res.stderr and "node itself" in res.stderr

    data["sink"]["endpoint"] = "http://127.0.0.1:9"  # b's
    path.write_text(yaml.safe_dump(data))
    res = subprocess.run(forwarder_cmd(path), capture_output=True, text=True, timeout=60)
    assert res.returncode == 78 and "also the endpoint of target 'b'" in res.stderr, res.stderr

    data["sink"]["endpoint"] = "http://127.0.0.1:12"
    data["source_dir"] = "../data/datalog/.tmp/self"
    path.write_text(yaml.safe_dump(data))
    res = subprocess.run(forwarder_cmd(path), capture_output=True, text=True, timeout=60)
    assert res.returncode == 78 and f"{path}: source_dir: " in res.stderr, res.stderr
    res = cli("distribute", "--config", str(node.config))
    assert res.returncode == 78, res.stderr
    assert f"{path}: source_dir: " in res.stderr and "inside datalog_dir" in res.stderr
    assert not (node.datalog_dir / ".tmp" / "self").exists()
    res = cli("up", "--config", str(node.config))
    assert res.returncode == 78 and "inside datalog_dir" in res.stderr, res.stderr


def test_secrets_never_start_with_dash_and_token_equals_form(node: NodeProc) -> None:
    assert not any(new_secret().startswith("-") for _ in range(3000))
    res = cli("target", "add", "--config", str(node.config), "--name", "c",
              "--endpoint", "http://127.0.0.1:11", "--token=-starts-with-dash")
    assert res.returncode == 0, res.stderr
    assert (node.dir / "secrets" / "c.token").read_text() == "-starts-with-dash\n"
    assert oct((node.dir / "secrets" / "c.token").stat().st_mode & 0o777) == "0o600"


def _metric_targets(n: NodeProc) -> set[str]:
    with n.client("reader") as c:
        body = c.request("GET", "/metrics")[1].decode()
    return {s.labels["target"] for fam in text_string_to_metric_families(body)
            for s in fam.samples if s.name == "fanout_target_up"}


def test_list_and_remove(topo: Topology) -> None:
    a, b, c = topo.node("a"), topo.node("b"), topo.node("c")
    topo.link(a, b)
    topo.link(a, c)
    topo.start()
    with a.client() as w:
        for i in range(5):
            w.update(f"{i}// m{{}} {i}\n")
    topo.wait_converged(a, [b, c])
    fwd_b = topo.forwarders[("a", "b")]
    wait_until(lambda: _metric_targets(a) == {"b", "c"}, 30, interval=0.2,
               what="both targets in metrics")

    res = cli("target", "list", "--config", str(a.config))
    assert res.returncode == 0, res.stderr
    rows = res.stdout.splitlines()
    assert len(rows) == 2
    assert rows[0].startswith("b ") and b.url in rows[0] and f"pid {fwd_b.pid}" in rows[0]
    assert rows[1].startswith("c ") and c.url in rows[1]

    others = {p: p.read_bytes() for p in (a.dir / "forwarders.d" / "c.yaml",
                                          a.dir / "fanout.yaml", a.dir / "secrets" /
                                          "tokens.yaml")}
    c_state = a.state_dir / "forwarder-c.json"
    res = cli("target", "remove", "--config", str(a.config), "--name", "b")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"pid {fwd_b.pid}" in res.stdout and "stopped" in res.stdout
    wait_until(lambda: not fwd_b.alive(), 30, what="forwarder b gone")
    assert not (a.dir / "forwarders.d" / "b.yaml").exists()
    assert not (a.dir / "data" / "targets" / "b").exists()
    assert not list(a.state_dir.glob("forwarder-b.*"))
    assert (a.dir / "data" / "targets" / "c").is_dir() and c_state.exists()
    assert all(p.read_bytes() == data for p, data in others.items())
    assert topo.forwarders[("a", "c")].alive() and topo.distributors["a"].alive()
    assert _metric_targets(a) == {"c"}
    # a state file left by a target removed by hand (its file deleted): not reported
    (a.state_dir / "forwarder-gone.json").write_text(
        '{"process": "forwarder-gone", "target": "gone", "running": false}')
    assert _metric_targets(a) == {"c"}
    res = cli("target", "list", "--config", str(a.config))
    assert [r.split()[0] for r in res.stdout.splitlines()] == ["c"]

    with a.client() as w:  # c still replicates; b's directory is not re-created
        w.update("10// after{} 1\n")
    topo.wait_converged(a, [c])
    assert not (a.dir / "data" / "targets" / "b").exists()
    res = cli("target", "remove", "--config", str(a.config), "--name", "b")
    assert res.returncode == 78 and "no target named 'b'" in res.stderr
    res = cli("target", "remove", "--config", str(a.config), "--name", "../forwarders.d/c")
    assert res.returncode == 78 and (a.dir / "forwarders.d" / "c.yaml").exists()


def test_second_forwarder_names_the_first(topo: Topology) -> None:
    a, b = topo.node("a"), topo.node("b")
    path = topo.link(a, b)
    topo.start()
    first = topo.forwarders[("a", "b")]
    wait_until(lambda: (a.state_dir / "forwarder-b.lock").exists(), 30, what="lock taken")
    res = subprocess.run(forwarder_cmd(path), capture_output=True, text=True, timeout=60)
    assert res.returncode == EXIT_LOCKED and f"pid {first.pid}" in res.stderr, res.stderr
    assert first.alive()


def test_list_into_a_closed_pipe_exits_without_a_traceback(tmp_path: Path) -> None:
    """`fanout target list --json | head -c1`: the reader is gone before the listing is
    written. The command stops quietly (exit 1), without Python's BrokenPipe traceback."""
    node = NodeProc.init(tmp_path / "n1", "n1")
    for i in range(3):
        subprocess.run(fanout_cmd("target", "add", "--config", str(node.config), "--name",
                                  f"t{i}", "--endpoint", f"http://127.0.0.1:{19100 + i}",
                                  f"--token={new_secret()}"), check=True, capture_output=True)
    p = subprocess.Popen(fanout_cmd("target", "list", "--json", "--config", str(node.config)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # long before the interpreter has started and written anything
    with p.stderr:
        err = p.stderr.read().decode()
    assert p.wait(60) == 1, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
