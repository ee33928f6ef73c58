"""SIGKILL at random moments while files are published: the end state is as without."""

from __future__ import annotations

import random
import threading
import time

import pytest

from .util import NodeDir, pace, restart_completes

FILES = 10_000
KILLS = 20


@pytest.mark.slow
def test_sigkill_at_random_moments_then_restart(node: NodeDir, procs: list) -> None:
    targets = ["a", "b", "c"]
    for t in targets:
        node.add_target(t)
    dirs = [node.target_dir(t) for t in targets]
    rng = random.Random(20240611)
    done = threading.Event()
    failed: list[BaseException] = []

    def publish() -> None:  # ~1,500 files/s: spans the 20 kill cycles below
        try:
            start = time.monotonic()
            for i in range(0, FILES, 10):
                pace(1500, start, i)
                node.publish(10)
        except BaseException as exc:
            failed.append(exc)
        finally:
            done.set()

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    kills = 0
    try:
        while kills < KILLS or not done.is_set():
            p = node.distributor(log=f"distributor-{kills}.log")
            procs.append(p.start())
            # from "still importing" to "well into its work", so kills land in the
            # startup scan, in linking, between link and unlink, in the committer...
            time.sleep(rng.uniform(0.05, 0.6))
            p.kill()
            kills += 1
    finally:
        done.wait(60)
    assert not failed, failed
    assert kills >= KILLS and len(node.published) == FILES

    restart_completes(node, dirs, procs, "distributor-final.log", timeout=120)
