"""Names taken from inotify events instead of listing datalog/ at every wake-up: nothing
is lost or removed early. Every process here runs with the periodic rescan an hour away,
so a file the event path missed would never be distributed within the test's deadline."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from fanout.distributor.watcher import Watcher
from fanout.testing import wait_until

from .util import (
    NodeDir,
    assert_exactly_once,
    datalog_names,
    restart_completes,
    wait_distributed,
    wait_running,
)

NO_RESCAN = {"FANOUT_DISTRIBUTOR_RESCAN": "3600", "FANOUT_DISTRIBUTOR_RELOAD": "3600"}


def test_watcher_names_files_moved_in_and_notices_a_lost_directory(tmp_path: Path) -> None:
    d = tmp_path / "datalog"
    (d / ".tmp").mkdir(parents=True)
    w = Watcher(d)
    try:
        names = [f"{i:020d}-n1.dlog" for i in range(1, 3001)]  # more than one read holds
        for n in names:
            (d / ".tmp" / n).write_bytes(b"x")
            os.rename(d / ".tmp" / n, d / n)
        (d / "sub").mkdir()
        got = w.drain()
        assert got.seen and not got.full
        assert got.names == names  # in order, complete, no directory
        assert w.drain().names == []
        shutil.rmtree(d)
        gone = w.drain()
        assert gone.lost_watch and gone.full and not w.watching
    finally:
        w.close()


def test_a_burst_of_events_is_linked_from_the_names(node: NodeDir, procs: list) -> None:
    node.add_target("a")
    node.add_target("b")
    dirs = [node.target_dir("a"), node.target_dir("b")]
    p = node.distributor(env=NO_RESCAN)
    procs.append(p.start())
    wait_running(node, p)
    p.signal(signal.SIGSTOP)  # the events pile up (below max_queued_events): one drain
    try:
        node.publish(3000, size=64)
    finally:
        p.signal(signal.SIGCONT)
    for _ in range(20):  # then a trickle: one wake-up per file or so
        node.publish(1, size=64)
        time.sleep(0.005)
    wait_distributed(node, node.published, dirs, timeout=60)
    assert_exactly_once(node, node.published, dirs)
    assert p.stop() == 0
    assert node.state()["overflows"] == 0  # the names did it, not an overflow's scan


def test_a_file_left_behind_is_retried_at_the_next_event(node: NodeDir,
                                                        procs: list) -> None:
    """Its own event is gone once handled: the next wake-up must scan the directory."""
    node.add_target("a")
    node.add_target("b")
    dirs = [node.target_dir("a"), node.target_dir("b")]
    dirs[1].mkdir(parents=True)
    clash = "00000000000000000001-n1.dlog"
    (dirs[1] / clash).write_bytes(b"not the same file")
    p = node.distributor(env=NO_RESCAN)
    procs.append(p.start())
    wait_running(node, p)
    first = node.publish(1)
    assert first == [clash]
    wait_until(lambda: (dirs[0] / clash).exists(), 20, what="linked into a")
    wait_until(lambda: node.state().get("lastError"), 20, what="conflict reported")
    assert (node.datalog / clash).exists()
    (dirs[1] / clash).unlink()  # the operator moves it away; no event in datalog/
    node.publish(1)
    wait_distributed(node, node.published, dirs, timeout=30)
    assert_exactly_once(node, node.published, dirs)
    assert p.stop() == 0


def test_killed_between_link_and_fsync_keeps_originals_then_completes(node: NodeDir,
                                                                      procs: list) -> None:
    """With the committer's next round an hour away, links exist and nothing is durable:
    no original may be gone. A restart links nothing twice and removes them all."""
    node.add_target("a")
    node.add_target("b")
    dirs = [node.target_dir("a"), node.target_dir("b")]
    p = node.distributor(env={**NO_RESCAN, "FANOUT_DISTRIBUTOR_COALESCE": "3600"})
    procs.append(p.start())
    wait_running(node, p)
    early = node.publish(1)  # the first round runs at once
    wait_distributed(node, early, dirs, timeout=20)
    held = node.publish(50)

    def linked() -> bool:
        return all(set(held) <= datalog_names(d) for d in dirs)

    wait_until(linked, 20, what="later files linked into every target")
    p.kill()
    assert set(held) <= datalog_names(node.datalog)  # not fsynced, so not removed
    restart_completes(node, dirs, procs, "distributor-2.log", env=NO_RESCAN, timeout=30)
