"""``fanout distribute`` as a real process with real inotify: fan-out, restarts, signals,
targets coming and going, refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from fanout.datalog import read_file
from fanout.testing import fanout_cmd, wait_until

from .util import (
    NodeDir,
    assert_exactly_once,
    datalog_names,
    wait_distributed,
    wait_running,
    write_target,
)

FAST = {"FANOUT_DISTRIBUTOR_RESCAN": "0.5", "FANOUT_DISTRIBUTOR_RELOAD": "0.3"}


def fan_out(node: NodeDir, procs: list, n_targets: int, before: int, during: int) -> None:
    names = [f"t{i:02d}" for i in range(n_targets)]
    for name in names:
        node.add_target(name)
    dirs = [node.target_dir(n) for n in names]
    node.publish(before)  # waiting when it starts: the startup scan
    (node.datalog / ".tmp" / "00000000000000999999-n1.dlog").write_bytes(b"half written")
    p = node.distributor()
    procs.append(p.start())
    wait_running(node, p)
    for _ in range(10):  # in bursts, with pauses: events, not only scans
        node.publish(during // 10)
        time.sleep(0.02)
    wait_distributed(node, node.published, dirs)
    assert_exactly_once(node, node.published, dirs)
    assert (node.datalog / ".tmp" / "00000000000000999999-n1.dlog").read_bytes() == b"half written"

    def counted() -> dict | None:
        st = node.state()
        return st if st.get("filesRemoved") == len(node.published) else None

    st = wait_until(counted, 10, what="state file counts")
    assert st["process"] == "distributor" and st["phase"] == "running" and st["running"]
    assert st["filesLinked"] == len(node.published)
    assert st["bytesLinked"] == sum(os.stat(dirs[0] / n).st_size for n in node.published)
    assert st["lastError"] is None and st["targetCount"] == n_targets
    assert set(st["targets"]) == set(names)
    t0 = st["targets"]["t00"]
    assert t0["source_dir"] == str(dirs[0]) and t0["filesLinked"] == len(node.published)
    assert t0["dropped"] == 0
    assert p.stop() == 0
    st = node.state()
    assert st["phase"] == "stopped" and st["running"] is False


@pytest.mark.parametrize("n_targets", [1, 3])
def test_every_file_exactly_once_in_every_target(node, procs, n_targets) -> None:
    fan_out(node, procs, n_targets, before=200, during=500)


@pytest.mark.slow
def test_every_file_exactly_once_in_16_targets(node, procs) -> None:
    fan_out(node, procs, 16, before=300, during=1000)


def test_files_written_by_a_real_node(make_node, procs) -> None:
    """The node's own publication (.tmp, rename, fsync) and the replayable content."""
    n = make_node("n1", "memory")
    for t in ("a", "b"):
        write_target(n.dir, t, n.dir / "data" / "targets" / t)
    n.start_and_wait()
    procs.append(n)
    dist = NodeDirLike(n)
    p = dist.distributor()
    procs.append(p.start())
    wait_running(dist, p)
    c = n.client()
    for i in range(30):
        c.update(f"{1000 + i}// temp{{room=r{i % 3}}} {i}")
    c.close()
    dirs = [n.dir / "data" / "targets" / t for t in ("a", "b")]
    wait_until(lambda: all(len(datalog_names(x)) == 30 for x in dirs) and
               not datalog_names(n.datalog_dir), 20, what="30 node files in both targets")
    seqs = sorted(r.seq for name in datalog_names(dirs[0]) for r in read_file(dirs[0] / name))
    assert seqs == list(range(1, 31))
    for name in datalog_names(dirs[0]):
        assert os.path.samefile(dirs[0] / name, dirs[1] / name)
    assert p.stop() == 0


class NodeDirLike(NodeDir):
    """A NodeDir view of a node made by the shared ``make_node`` fixture."""

    def __init__(self, nodeproc) -> None:  # no init_node: the node directory exists
        self.root = nodeproc.dir
        self.config = nodeproc.config
        self.datalog = nodeproc.datalog_dir
        self.state_dir = nodeproc.state_dir
        self.targets_dir = nodeproc.dir / "forwarders.d"


def test_sigterm_finishes_and_restart_completes(node, procs) -> None:
    node.add_target("a")
    node.add_target("b")
    node.publish(10000)
    p = node.distributor()
    procs.append(p.start())
    wait_running(node, p)
    assert p.stop() == 0  # mid-backlog: finishes the batch in hand, exits 0
    st = node.state()
    assert st["phase"] == "stopped" and st["running"] is False
    p2 = node.distributor()
    procs.append(p2.start())
    wait_running(node, p2)
    dirs = [node.target_dir("a"), node.target_dir("b")]
    wait_distributed(node, node.published, dirs)
    assert_exactly_once(node, node.published, dirs)
    assert p2.stop() == 0


def test_no_targets_then_sighup_adds_one(node, procs) -> None:
    node.publish(20)
    p = node.distributor(env={"FANOUT_DISTRIBUTOR_RESCAN": "0.3",
                              "FANOUT_DISTRIBUTOR_RELOAD": "3600"})
    procs.append(p.start())
    st = wait_until(lambda: node.state().get("running") and node.state().get(
        "datalogBacklogFiles") == 20 and node.state(), 20, what="backlog counted")
    assert st["targetCount"] == 0 and "no targets" in st["note"]
    assert len(datalog_names(node.datalog)) == 20  # nothing to link to: files wait
    r = subprocess.run(fanout_cmd("target", "add", "--config", str(node.config), "--name", "a",
                                  "--endpoint", "http://127.0.0.1:9", "--token", "s3cret"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # the distributor went round its loop since (full rescans every 0.3 s, counted in its
    # state): it saw the directory again but not the new target
    rescans = node.state()["rescans"]
    wait_until(lambda: node.state().get("rescans", 0) >= rescans + 3, 30,
               what="three more rescans")
    assert node.state()["targetCount"] == 0
    assert len(datalog_names(node.datalog)) == 20  # no periodic re-read: waits for SIGHUP
    p.signal(signal.SIGHUP)
    wait_distributed(node, node.published, [node.target_dir("a")])
    assert p.alive()
    assert p.stop() == 0


def test_targets_come_and_go_with_periodic_reread(node, procs) -> None:
    node.add_target("a")
    p = node.distributor(env=FAST)
    procs.append(p.start())
    wait_running(node, p)
    first = node.publish(10)
    wait_distributed(node, first, [node.target_dir("a")])

    b = node.add_target("b")  # no signal: the periodic re-read finds it
    wait_until(lambda: "b" in node.state().get("targets", {}), 10, what="target b picked up")
    second = node.publish(10)
    wait_distributed(node, second, [node.target_dir("a"), node.target_dir("b")])
    assert datalog_names(node.target_dir("b")) == set(second)  # from that moment on

    # a broken edit is reported and the previous config of b is kept
    b.write_text(b.read_text() + "retention: {max_files: -5}\n")
    err = wait_until(lambda: (node.state().get("lastError") or {}).get("errorNum") == 1410
                     and node.state()["lastError"], 10, what="reload error recorded")
    assert "b.yaml" in err["errorMessage"] and "max_files" in err["errorMessage"]
    assert "keeping its previous configuration" in err["errorMessage"]
    third = node.publish(10)
    wait_distributed(node, third, [node.target_dir("a"), node.target_dir("b")])

    (node.targets_dir / "a.yaml").unlink()  # removed: no longer linked into
    wait_until(lambda: "a" not in node.state().get("targets", {"a": 1}), 10,
               what="target a dropped")
    fourth = node.publish(10)
    wait_distributed(node, fourth, [node.target_dir("b")])
    assert not datalog_names(node.target_dir("a")) & set(fourth)
    assert p.alive() and p.stop() == 0


def test_name_conflict_keeps_the_original_until_resolved(node, procs) -> None:
    node.add_target("a")
    node.add_target("b")
    node.target_dir("b").mkdir(parents=True)
    clash = "00000000000000000002-n1.dlog"
    (node.target_dir("b") / clash).write_bytes(b"not the same file")
    p = node.distributor(env=FAST)
    procs.append(p.start())
    wait_running(node, p)
    names = node.publish(3)
    assert names[1] == clash
    others = [names[0], names[2]]
    wait_distributed(node, others, [node.target_dir("a"), node.target_dir("b")])
    err = wait_until(lambda: node.state().get("lastError"), 10, what="conflict reported")
    assert err["errorNum"] == 27 and clash in err["errorMessage"]
    assert (node.datalog / clash).exists()
    assert os.path.samefile(node.datalog / clash, node.target_dir("a") / clash)
    (node.target_dir("b") / clash).unlink()  # the operator moves it away
    wait_distributed(node, names, [node.target_dir("a"), node.target_dir("b")])
    assert_exactly_once(node, names, [node.target_dir("a"), node.target_dir("b")])
    assert p.stop() == 0


def refused(node: NodeDir) -> subprocess.CompletedProcess:
    return subprocess.run(fanout_cmd("distribute", "--config", str(node.config)),
                          capture_output=True, text=True, timeout=60)


def test_refuses_datalog_dir_as_target(node) -> None:
    node.add_target("a", node.datalog)
    node.publish(3)
    r = refused(node)
    assert r.returncode == 78, r.stderr
    assert "is the datalog_dir" in r.stderr and str(node.datalog) in r.stderr
    assert "st_dev" in r.stderr and "Try:" in r.stderr
    assert len(datalog_names(node.datalog)) == 3
    st = node.state()
    assert st["phase"] == "stopped" and st["lastError"]["errorNum"] == 1410


def test_refuses_target_on_a_tmpfs(node, mount) -> None:
    mnt = mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", target=node.root / "tmpfs")
    node.add_target("a")
    node.add_target("b", mnt / "b")
    r = refused(node)
    assert r.returncode == 78, r.stderr
    assert str(mnt / "b") in r.stderr and str(node.datalog) in r.stderr
    assert r.stderr.count("st_dev") == 2 and f"mount {mnt} " in r.stderr
    assert "another filesystem" in r.stderr


def test_refuses_target_behind_a_bind_mount(node, mount) -> None:
    (node.root / "elsewhere").mkdir()
    mnt = mount("--bind", str(node.root / "elsewhere"), target=node.root / "data" / "targets")
    node.add_target("a", mnt / "a")
    r = refused(node)
    assert r.returncode == 78, r.stderr
    assert "EXDEV" in r.stderr and f"mount {mnt} " in r.stderr and str(node.datalog) in r.stderr


def test_invalid_target_file_at_start_exits_78(node) -> None:
    node.add_target("a")
    (node.targets_dir / "b.yaml").write_text("target: b\nsource_dir: x\nsink: {}\n")
    r = refused(node)
    assert r.returncode == 78 and "b.yaml" in r.stderr and "sink" in r.stderr


def test_one_distributor_per_node(node, procs) -> None:
    node.add_target("a")
    p = node.distributor()
    procs.append(p.start())
    wait_running(node, p)
    r = refused(node)
    assert r.returncode == 75 and f"pid {p.pid}" in r.stderr  # EX_TEMPFAIL: the instance lock
    assert p.stop() == 0
