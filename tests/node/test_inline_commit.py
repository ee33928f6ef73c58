"""Where a commit runs: a lone small unit on the event loop (the hand-off to a thread
costs more than such a commit); a group of several, a big unit, a delete, and any commit
after a slow one on the commit thread; publication retries never wait on the loop. A real
datalog writer and memory store."""

from __future__ import annotations

import asyncio
import errno
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import fanout.node.committer as committer_mod
from fanout.datalog import DatalogWriter, iter_dir
from fanout.datalog.writer import Prepared
from fanout.node.changes import Pending, delete_pending, update_pending
from fanout.node.committer import Committer
from fanout.store import Outcome, open_store
from fanout.testing import RecordingStore


@pytest.fixture(autouse=True)
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit counts as slow only past 1 s here, not 50 ms: on a loaded test machine an
    fsync may take longer than 50 ms, which would move the next commit to the thread and
    fail a placement check for the wrong reason."""
    monkeypatch.setattr(committer_mod, "INLINE_SLOW_SECONDS", 1.0)


def write(i: int, points: int = 1) -> list[Pending]:
    body = "".join(f"{i * 1000 + j}// w{{i={i}}} {j}\n" for j in range(points))
    return [update_pending(body, 0, "ingest")]


class Where:
    """Records the thread of every store apply, optionally sleeping in the first ones."""

    def __init__(self, slow: int = 0, seconds: float = 0.0):
        self.threads: list[int] = []
        self.slow, self.seconds = slow, seconds

    def __call__(self, entries: Any) -> None:
        self.threads.append(threading.get_ident())
        if len(self.threads) <= self.slow:
            time.sleep(self.seconds)


def run(tmp: Path, units: list[list[Pending]], where: Where,
        writer: DatalogWriter | None = None,
        together: bool = False) -> tuple[list[Any], int, DatalogWriter]:
    """Submit ``units`` one after the other (each awaited), or ``together`` (all queued
    before the committer runs, so they form one group); the loop thread's id."""
    (tmp / "state").mkdir(exist_ok=True)
    store = RecordingStore(open_store("memory", None, tmp / "state"), refuse=where)
    writer = writer or DatalogWriter(tmp / "datalog", "n1")

    async def main() -> tuple[list[Any], int]:
        c = Committer(store, writer, "n1")
        c.start()
        try:
            if together:
                results = await asyncio.gather(*(c.submit(u) for u in units))
                return list(results), threading.get_ident()
            return [await c.submit(u) for u in units], threading.get_ident()
        finally:
            await c.stop()

    results, loop_thread = asyncio.run(main())
    return results, loop_thread, writer


def test_small_commits_run_on_the_loop_and_big_ones_on_the_commit_thread(
        tmp_path: Path) -> None:
    where = Where()
    big = write(2, points=committer_mod.INLINE_COMMIT_BYTES // 10)  # > 64 KiB of body
    results, loop_thread, writer = run(tmp_path, [write(1), big, write(3)], where)
    assert all(r == [Outcome("applied")] for r in results)
    assert where.threads[0] == loop_thread and where.threads[2] == loop_thread
    assert where.threads[1] != loop_thread
    assert [[r.seq for r in rs] for _, rs in iter_dir(writer.dir)] == [[1], [2], [3]]


def test_a_group_of_several_commits_on_the_commit_thread(tmp_path: Path) -> None:
    """Several units queued together mean concurrent writers: the loop keeps reading and
    parsing theirs while this commit's fsyncs run."""
    where = Where()
    results, loop_thread, writer = run(tmp_path, [write(i) for i in range(1, 4)], where,
                                       together=True)
    assert all(r == [Outcome("applied")] for r in results)
    assert len(where.threads) == 1 and where.threads[0] != loop_thread
    assert [[r.seq for r in rs] for _, rs in iter_dir(writer.dir)] == [[1, 2, 3]]


def test_a_delete_commits_on_the_commit_thread(tmp_path: Path) -> None:
    """A delete's cost is the store's size (its selector against every series, the points
    it removes), not its request's: it never runs on the loop, however small."""
    where = Where()
    units = [write(1), [delete_pending("~w.*{}", None, None, "ingest")], write(2)]
    results, loop_thread, _ = run(tmp_path, units, where)
    assert results[1][0].status == "applied"
    assert [t == loop_thread for t in where.threads] == [True, False, True]


def test_a_slow_commit_sends_the_next_one_to_the_commit_thread(tmp_path: Path) -> None:
    """A disk that stalls a commit must not stall the loop again at the next one; once a
    commit is quick again, small ones return to the loop."""
    where = Where(slow=1, seconds=committer_mod.INLINE_SLOW_SECONDS * 1.2)
    results, loop_thread, _ = run(tmp_path, [write(i) for i in range(1, 4)], where)
    assert all(r == [Outcome("applied")] for r in results)
    assert [t == loop_thread for t in where.threads] == [True, False, True]


def test_publication_retries_wait_on_the_commit_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit begun on the loop whose file cannot be published yet (a full disk) is
    finished on the commit thread: the loop keeps running while it retries, and the write
    is acknowledged once the file is out, exactly once."""
    monkeypatch.setattr(committer_mod, "PUBLISH_RETRY_INTERVAL", 0.1)
    attempts: list[int] = []

    class Full(DatalogWriter):
        def publish(self, prep: Prepared) -> None:
            attempts.append(threading.get_ident())
            if len(attempts) <= 4:
                raise OSError(errno.ENOSPC, "No space left on device")
            super().publish(prep)

    (tmp_path / "state").mkdir()
    store = open_store("memory", None, tmp_path / "state")
    writer = Full(tmp_path / "datalog", "n1")
    ticks = 0

    async def main() -> tuple[Any, int]:
        nonlocal ticks
        c = Committer(store, writer, "n1")
        c.start()
        try:
            done = asyncio.ensure_future(c.submit(write(1)))
            while not done.done():
                ticks += 1
                await asyncio.sleep(0.01)
            return done.result(), threading.get_ident()
        finally:
            await c.stop()

    result, loop_thread = asyncio.run(main())
    assert result == [Outcome("applied")]
    assert attempts[0] == loop_thread
    assert len(attempts) == 5 and all(t != loop_thread for t in attempts[1:])
    assert ticks >= 5, "the loop waited for the publication retries"  # 3 waits, 0.3 s
    assert [[r.seq for r in rs] for _, rs in iter_dir(writer.dir)] == [[1]]
