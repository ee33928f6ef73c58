"""``fanout target add --bootstrap`` on a node with history: the new target converges
byte-identical, with no 1414 and no step beyond the one command (issue 11)."""

from __future__ import annotations

import threading
import time

import psutil
import pytest

from fanout.statefile import read_json
from fanout.testing import Client, eventually, wait_until

from .conftest import Supervised

pytestmark = pytest.mark.slow

HISTORY = 10_000
THREADS = 4


def _history(url: str, token: str) -> None:
    def run(k: int) -> None:
        with Client(url, token) as c:
            for i in range(k, HISTORY, THREADS):
                c.update(f"{1000 + i}// h{{w={k}}} {i}\n")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_target_add_bootstrap_on_node_with_history(supervised: Supervised) -> None:
    s = supervised
    s.up()
    _history(s.node.url, s.node.tokens["ingest"])
    wait_until(lambda: s.status()[1]["node"]["lastLogTick"] == str(HISTORY), 30,
               interval=0.2, what="history logged")
    n3 = s.topo.node("n3").start_and_wait()

    stop = threading.Event()
    during: list[int] = []

    def writer() -> None:  # writes keep coming while the target is added
        with s.node.client() as c:
            i = 0
            while not stop.is_set():
                c.update(f"{i}// during{{}} {i}\n")
                during.append(i)
                i += 1

    w = threading.Thread(target=writer)
    w.start()
    try:
        wait_until(lambda: len(during) > 10, 30, what="writes during the add")
        res = s.cli("target", "add", "--name", "n3", "--endpoint", n3.url,
                    f"--token={n3.tokens['replicator']}", "--bootstrap", timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "n3: bootstrapped with" in res.stdout
        assert "forwarder-n3 started under supervisord" in res.stdout
    finally:
        stop.set()
        w.join(30)
    assert len(during) > 10
    with s.node.client() as c:
        c.update("1// after{} 1\n")

    def converged() -> None:
        with s.node.client("reader") as a, n3.client("reader") as b:
            ref = a.fetch("~.*{}", showattr=True)
            assert ref.count("\n") >= HISTORY + len(during)
            assert b.fetch("~.*{}", showattr=True) == ref

    eventually(converged, "n3 byte-identical with n1", timeout=180)
    st = read_json(s.state_dir / "forwarder-n3.json") or {}
    assert st.get("running") and not st.get("lastError"), st
    wait_until(lambda: s.status()[0] == 0, 30, interval=0.2, what="healthy")
    assert "1414" not in s.logs(100_000)
    assert s.cli("reload", check=True).stdout.strip() == "no change"


def test_target_add_without_bootstrap_warns_with_the_fix(supervised: Supervised) -> None:
    s = supervised
    s.up()
    with s.node.client() as c:
        c.update("1// x{} 1\n")
    wait_until(lambda: s.status()[1]["node"]["lastLogTick"] == "1", 30, interval=0.2,
               what="logged")
    res = s.cli("target", "add", "--name", "n4", "--endpoint", "http://127.0.0.1:9",
                "--token", "t", check=True)
    assert "has history (last tick 1)" in res.stderr
    assert f"Try: fanout bootstrap --config {s.config} --target n4" in res.stderr


def test_target_remove_under_supervisord(supervised: Supervised) -> None:
    s = supervised
    s.up()
    pid = s.pids()["forwarder-n2"]
    others = {k: v for k, v in s.pids().items() if k != "forwarder-n2"}
    res = s.cli("target", "remove", "--name", "n2", check=True)
    assert "forwarder-n2 stopped and removed from supervisord" in res.stdout, res.stdout
    wait_until(lambda: not psutil.pid_exists(pid) or
               psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 30, what="n2 gone")
    assert not (s.node.dir / "forwarders.d" / "n2.yaml").exists()
    assert not (s.node.dir / "data" / "targets" / "n2").exists()
    assert not list(s.state_dir.glob("forwarder-n2.*"))
    code, st = s.status()
    assert code == 0, st["reasons"]
    assert "forwarder-n2" not in {p["name"] for p in st["processes"]}
    assert st["targets"] == []
    assert s.pids() == others  # nothing else restarted
    assert s.cli("reload", check=True).stdout.strip() == "no change"
    with s.node.client() as c:  # the node goes on; nothing is linked for n2 any more
        c.update("1// after{} 1\n")
    written = time.time()
    state = s.state_dir / "distributor.json"
    wait_until(lambda: state.stat().st_mtime > written + 1, 30, what="distributor went on")
    assert not (s.node.dir / "data" / "targets" / "n2").exists()
    assert s.process("distributor")["pid"] == others["distributor"]
