"""Memory stays bounded whatever the backlog: 200,000 waiting files at start."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from fanout.datalog.format import file_name

from .util import NodeDir, datalog_empty, wait_running

FILES = 200_000
LIMIT_MB = 60


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_200k_waiting_files_under_60mb(node: NodeDir, procs: list) -> None:
    node.add_target("a")
    prefix = str(node.datalog) + "/"
    for seq in range(1, FILES + 1):  # empty files: only names matter to the distributor
        os.close(os.open(prefix + file_name(seq, "n1"), os.O_WRONLY | os.O_CREAT, 0o644))
    try:
        p = node.distributor()
        procs.append(p.start())
        wait_running(node, p)
        start = time.monotonic()
        peak = 0.0
        while not datalog_empty(node.datalog):
            assert p.alive(), p.log_text()
            peak = max(peak, peak_rss_mb(p.pid))
            assert time.monotonic() - start < 180, "too slow"
            time.sleep(0.5)
        peak = max(peak, peak_rss_mb(p.pid))
        elapsed = time.monotonic() - start
        assert len(os.listdir(node.target_dir("a"))) == FILES
        print(f"200,000 files in {elapsed:.1f} s; peak RSS {peak:.1f} MB")
        assert peak < LIMIT_MB, f"peak RSS {peak:.1f} MB"
        assert p.stop() == 0
    finally:  # do not leave 200,000 files to pytest's kept temp directories
        shutil.rmtree(node.target_dir("a"), ignore_errors=True)
        shutil.rmtree(node.datalog, ignore_errors=True)
