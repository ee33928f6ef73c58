"""More events than inotify queues while the distributor is frozen: nothing is lost."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from fanout.testing import wait_until

from .util import NodeDir, assert_exactly_once, wait_distributed, wait_running

MAX_QUEUED = Path("/proc/sys/fs/inotify/max_queued_events")


def test_queue_overflow_while_stopped_loses_nothing(node: NodeDir, procs: list) -> None:
    limit = int(MAX_QUEUED.read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to publish in a test")
    node.add_target("a")
    node.add_target("b")
    dirs = [node.target_dir("a"), node.target_dir("b")]
    # Periodic rescan far away: only the overflow can bring the files in quickly.
    p = node.distributor(env={"FANOUT_DISTRIBUTOR_RESCAN": "3600"})
    procs.append(p.start())
    wait_running(node, p)
    p.signal(signal.SIGSTOP)
    try:
        node.publish(limit + 1000, size=64)
    finally:
        p.signal(signal.SIGCONT)
    wait_distributed(node, node.published, dirs, timeout=120)
    assert_exactly_once(node, node.published, dirs)
    st = wait_until(lambda: node.state().get("overflows", 0) >= 1 and node.state(), 10,
                    what="overflow counted in the state file")
    assert st["rescans"] >= 2  # startup + overflow
    assert p.stop() == 0
