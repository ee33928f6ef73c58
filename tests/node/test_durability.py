"""Group commit and crash safety, tested by writing concurrently and by SIGKILL."""

from __future__ import annotations

import random
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

from fanout.datalog import iter_dir
from fanout.node.changes import change_of
from fanout.store import Entry, MemoryStore
from fanout.testing import HTTPError, NodeProc, wait_until

ALL = "~.*{}"


def replay_fetch(datalog_dir: Path) -> tuple[str, list]:
    """Replay every published record into a fresh memory store: what the datalog says."""
    recs = [r for _, rs in iter_dir(datalog_dir) for r in rs]
    with tempfile.TemporaryDirectory() as tmp:
        store = MemoryStore(Path(tmp) / "seq")
        for r in recs:
            store.apply([Entry(r.origin, r.oseq, change_of(r))], r.seq)
        from fanout.gts import parse_selector

        text = "".join(line + "\n" for line in store.fetch(parse_selector(ALL), -(1 << 63),
                                                             (1 << 63) - 1, showattr=True))
    return text, recs


def assert_store_and_datalog_agree(node: NodeProc) -> list:
    reader = node.client("reader")
    served = reader.fetch(ALL, showattr=True)
    replayed, recs = replay_fetch(node.datalog_dir)
    assert served == replayed
    # dense, each seq and each oseq exactly once, and the store's tick covers them
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
    assert [r.oseq for r in recs] == list(range(1, len(recs) + 1))
    assert reader.logger_state()["state"]["lastLogTick"] == str(len(recs))
    return recs


class Writers:
    """Threads writing unique points; remembers exactly which requests were acknowledged."""

    def __init__(self, node: NodeProc, n: int, points: int = 5):
        self.node, self.n, self.points = node, n, points
        self.acked: list[str] = []
        self.sent = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(n)]

    def _run(self, i: int) -> None:
        c = self.node.client("ingest")
        c.timeout = 10
        k = 0
        while not self.stop.is_set():
            k += 1
            body = "".join(f"{k * 100 + j}// w{{t={i}}} {k}\n" for j in range(self.points))
            try:
                c.update(body)
            except (OSError, HTTPError):
                c.close()
                time.sleep(0.01)
                continue
            with self.lock:
                self.acked.append(body)
        c.close()

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_concurrent_writers_group_commit(make_node) -> None:
    node = make_node("n1").start_and_wait()
    with Writers(node, 16) as w:
        # enough acknowledged requests that sharing files is observable
        wait_until(lambda: len(w.acked) >= 400, 120, what="400 acknowledged requests")
    served = node.client("reader").fetch(ALL)
    for body in w.acked:
        for line in body.splitlines():
            assert line in served
    recs = assert_store_and_datalog_agree(node)
    # each acknowledged request is exactly one record
    assert len(recs) == len(w.acked)
    assert sorted(r.body.decode() for r in recs) == sorted(w.acked)
    files = list(node.datalog_dir.glob("*.dlog"))
    assert len(files) < len(w.acked) / 2, "group commit should share files between requests"


@pytest.mark.slow
def test_sigkill_during_writes_loses_nothing_acknowledged(make_node) -> None:
    node = make_node("n1")
    rnd = random.Random(7)
    acked: list[str] = []
    for _ in range(22):
        node.start_and_wait()
        with Writers(node, 8) as w:
            time.sleep(rnd.uniform(0.05, 0.6))
            node.signal(signal.SIGKILL)
            node.popen.wait()
        acked += w.acked
        node.start_and_wait()
        served = node.client("reader").fetch(ALL)
        missing = [ln for body in acked for ln in body.splitlines() if ln not in served]
        assert missing == [], f"{len(missing)} acknowledged points lost"
        assert_store_and_datalog_agree(node)
        node.kill()
    assert len(acked) > 100
