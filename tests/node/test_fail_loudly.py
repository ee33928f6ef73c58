"""A broken commit path makes the node exit non-zero at once, never wedge (issue 11).

Another process takes the node's prepared datalog files from ``datalog/.tmp/`` while
clients write (what a second node's start-up recovery on the same directory did). The node
must exit within seconds, answer or drop every in-flight request instead of leaving it
hanging, and after a restart hold every acknowledged write in its store and its datalog.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from fanout.testing import HTTPError, NodeProc, fanout_cmd, wait_until
from tests.node.test_durability import assert_store_and_datalog_agree


class TimedWriters:
    """Writer threads that remember acknowledged bodies and the slowest request."""

    def __init__(self, node: NodeProc, n: int):
        self.node = node
        self.acked: list[str] = []
        self.slowest = 0.0
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, i: int) -> None:
        c = self.node.client("ingest")
        c.timeout = 30  # a hang shows as a slow request, not as a silent retry
        k = 0
        while not self.stop.is_set():
            k += 1
            body = f"{k}// v{{w={i}}} {k}\n{k}// v{{copy=1,w={i}}} {k}\n"
            t0 = time.monotonic()
            try:
                c.update(body)
                ok = True
            except (OSError, HTTPError):
                c.close()
                ok = False
            took = time.monotonic() - t0
            with self.lock:
                if self.node.alive() or ok:
                    self.slowest = max(self.slowest, took)
                if ok:
                    self.acked.append(body)
                else:
                    self.errors += 1
            if not ok:
                time.sleep(0.02)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def take_prepared_files(tmp: Path, stop: threading.Event, taken: list[float]) -> None:
    """What a second node's start-up recovery did: take whatever is under .tmp/."""
    while not stop.is_set():
        try:
            for entry in os.scandir(tmp):
                try:
                    os.unlink(entry.path)
                    taken.append(time.monotonic())
                except FileNotFoundError:
                    pass
        except FileNotFoundError:
            pass


def test_vanishing_prepared_file_exits_the_node_and_loses_no_acknowledged_write(
        make_node) -> None:
    node = make_node("n1").start_and_wait()
    writers = TimedWriters(node, 8)
    stop = threading.Event()
    taken: list[float] = []
    try:
        wait_until(lambda: len(writers.acked) >= 50, 60, what="writes before the fault")
        thief = threading.Thread(target=take_prepared_files,
                                 args=(node.datalog_dir / ".tmp", stop, taken), daemon=True)
        thief.start()
        wait_until(lambda: not node.alive(), 90, what="the node to exit")
        exited_after = time.monotonic() - taken[0]
        stop.set()
        thief.join(10)
        time.sleep(0.5)  # let in-flight requests see the closed socket
    finally:
        stop.set()
        writers.close()
    code = node.popen.returncode
    log = node.log_text()
    sys.stderr.write(f"\nexit {code} {exited_after:.2f}s after the fault; slowest request "
                     f"{writers.slowest:.2f}s; {len(writers.acked)} acknowledged, "
                     f"{writers.errors} failed; {len(taken)} files taken\n")
    assert code not in (0, None) and code > 0, (code, log[-3000:])
    assert taken, "the fault was never injected"
    assert "vanished" in log, log[-3000:]
    assert exited_after < 10, f"the node took {exited_after:.1f}s to exit"
    assert writers.slowest < 15, f"a request hung for {writers.slowest:.1f}s"

    node.start_and_wait()
    served = node.client("reader").fetch("~.*{}")
    missing = [ln for body in writers.acked for ln in body.splitlines() if ln not in served]
    assert missing == [], f"{len(missing)} acknowledged points lost"
    assert_store_and_datalog_agree(node)
    verify = subprocess.run(fanout_cmd("datalog", "verify", str(node.datalog_dir)),
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # and it serves writes again
    with node.client("ingest") as c:
        assert c.update("1// after{} 1\n") == 200
