"""Retention counting, in process: drops only what the limits require."""

from __future__ import annotations

import os
from pathlib import Path

from fanout.distributor.retention import RetentionGuard

from .util import NodeDir


def fill(node: NodeDir, tdir: Path, n: int, guard: RetentionGuard | None = None) -> list[str]:
    tdir.mkdir(parents=True, exist_ok=True)
    names = node.publish(n, size=200)
    for name in names:
        os.rename(node.datalog / name, tdir / name)
        if guard is not None:
            guard.added(os.stat(tdir / name).st_size)
    return names


def test_max_files_drops_oldest(node: NodeDir) -> None:
    tdir = node.target_dir("a")
    names = fill(node, tdir, 30)
    sizes = {n: os.stat(tdir / n).st_size for n in names}
    g = RetentionGuard(str(tdir), 10, 0)
    g.recount()
    files, size = g.enforce()
    assert files == 20 and size == sum(sizes[n] for n in names[:20])
    assert sorted(os.listdir(tdir)) == names[20:]
    more = fill(node, tdir, 5, g)
    assert g.enforce()[0] == 5
    assert sorted(os.listdir(tdir)) == (names[20:] + more)[5:]


def test_max_bytes_drops_oldest_and_counts_bytes(node: NodeDir) -> None:
    tdir = node.target_dir("a")
    names = fill(node, tdir, 20)
    sizes = {n: os.stat(tdir / n).st_size for n in names}
    limit = sum(sizes[n] for n in names[-5:]) + 10  # room for the 5 newest, not 6
    g = RetentionGuard(str(tdir), 0, limit)
    g.recount()
    files, size = g.enforce()
    assert sorted(os.listdir(tdir)) == names[-5:]
    assert files == 15 and size == sum(sizes[n] for n in names[:15])


def test_files_consumed_by_the_forwarder_are_not_drops(node: NodeDir) -> None:
    """The counters only see our links; a forwarder deleting oldest-first must not turn
    them into drops."""
    tdir = node.target_dir("a")
    g = RetentionGuard(str(tdir), 10, 0)
    first = fill(node, tdir, 8, g)
    g.recount()
    for name in first[:6]:  # the forwarder ships and deletes the 6 oldest
        os.unlink(tdir / name)
    second = fill(node, tdir, 6, g)  # counters say 14 > 10; really 8
    assert g.over()
    assert g.enforce() == (0, 0)
    assert sorted(os.listdir(tdir)) == first[6:] + second
    fill(node, tdir, 3, g)  # really 11 now: exactly one drop, the oldest
    assert g.enforce()[0] == 1
    assert first[6] not in os.listdir(tdir)
