"""Backlog counting in slices: exact once finished, whatever the slice size."""

from __future__ import annotations

import os

from fanout.distributor.audit import AuditJob
from fanout.distributor.state import TargetStats

from .util import NodeDir


def test_sliced_count_is_exact(node: NodeDir) -> None:
    dirs = [node.target_dir(t) for t in ("a", "b")]
    for d in dirs:
        d.mkdir(parents=True)
    names = node.publish(300, size=150)
    for name in names:
        for d in dirs[:1]:
            os.link(node.datalog / name, d / name)
    (dirs[0] / "notes.txt").write_text("ignored")
    size = sum(os.stat(dirs[0] / n).st_size for n in names)
    stats = [TargetStats(linked=7), TargetStats()]
    job = AuditJob([(str(d), s) for d, s in zip(dirs, stats, strict=True)]
                   + [(str(node.root / "missing"), TargetStats())])
    steps = 0
    while not job.step(0.0):  # the smallest slices: one clock check's worth each
        steps += 1
    assert steps > 1
    a = stats[0].audit
    assert a is not None and (a.files, a.bytes) == (300, size)
    assert a.oldest_mtime == os.stat(dirs[0] / names[0]).st_mtime
    assert stats[0].backlog()[:2] == (300, size)
    stats[0].linked += 2  # links made after the count started are added on top
    stats[0].linked_bytes += 10
    assert stats[0].backlog()[:2] == (302, size + 10)
    assert stats[1].audit is not None and stats[1].backlog() == (0, 0, None)
