"""Per-target retention with a real distributor: a target nobody consumes stays within its
limits and reports its drops; the other targets lose nothing."""

from __future__ import annotations

import os
import time

from fanout.testing import wait_until

from .util import NodeDir, datalog_names, wait_distributed, wait_running

MAX_FILES = 50


def test_dead_targets_stay_within_limits_others_lose_nothing(node: NodeDir,
                                                             procs: list) -> None:
    node.publish(100, size=300)  # a backlog at start
    size = os.stat(node.datalog / node.published[-1]).st_size
    max_bytes = 40 * size + size // 2  # room for 40 files of the largest size, not 41
    node.add_target("files", max_files=MAX_FILES)
    node.add_target("bytes", max_bytes=max_bytes)
    node.add_target("all")
    dirs = {t: node.target_dir(t) for t in ("files", "bytes", "all")}
    p = node.distributor(env={"FANOUT_DISTRIBUTOR_RESCAN": "0.5"})
    procs.append(p.start())
    wait_running(node, p)
    for _ in range(30):  # many small batches: retention runs after each
        node.publish(10, size=300)
        time.sleep(0.01)
    total = len(node.published)  # 400
    wait_distributed(node, node.published, [dirs["all"]])
    assert datalog_names(dirs["all"]) == set(node.published)  # unlimited: every file

    # max_files: exactly the newest MAX_FILES remain (name order is age order)
    assert sorted(datalog_names(dirs["files"])) == node.published[-MAX_FILES:]
    # max_bytes: within the limit, the newest files, as many as fit
    kept = sorted(datalog_names(dirs["bytes"]))
    kept_bytes = sum(os.stat(dirs["bytes"] / n).st_size for n in kept)
    assert kept == node.published[-len(kept):]
    assert kept_bytes <= max_bytes
    assert kept_bytes + os.stat(node.target_dir("all") / node.published[-len(kept) - 1]
                                ).st_size > max_bytes
    sizes = {n: os.stat(dirs["all"] / n).st_size for n in node.published}

    def reported() -> dict | None:
        st = node.state()
        t = st.get("targets", {})
        ok = (t.get("files", {}).get("dropped") == total - MAX_FILES
              and t.get("bytes", {}).get("dropped") == total - len(kept)
              and t.get("files", {}).get("backlogFiles") == MAX_FILES
              # backlog figures are exact once an audit ran with nothing moving
              and t.get("bytes", {}).get("backlogBytes") == kept_bytes)
        return st if ok else None

    st = wait_until(reported, 15, what="drops and backlog in the state file")
    t = st["targets"]
    assert t["files"]["droppedBytes"] == sum(sizes[n] for n in node.published[:-MAX_FILES])
    assert t["bytes"]["droppedBytes"] == sum(sizes[n] for n in node.published[:-len(kept)])
    assert t["all"]["dropped"] == 0 and t["all"]["backlogFiles"] == total
    assert t["all"]["oldestAgeSeconds"] is not None
    assert t["files"]["retention"] == {"max_files": MAX_FILES, "max_bytes": 0}
    assert st["lastError"] is None
    assert p.stop() == 0
