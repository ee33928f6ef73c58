"""Group commit, in process: what arrives while a commit runs shares the next commit (one
datalog file, one store transaction); a unit that fails is refused alone.

tests/node/test_committer.py queues every unit before the committer first runs; here the
first commit is held open (``fanout.testing.RecordingStore`` with a gate) so the others
arrive while it runs, as they do under load. Holding it open needs it on the commit thread,
where groups too big to commit on the event loop go (``inline_bytes=0`` sends them all);
tests/node/test_inline_commit.py covers which commits run where.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fanout.datalog import DatalogWriter, iter_dir
from fanout.node.changes import Pending, update_pending
from fanout.node.committer import Committer
from fanout.store import Outcome, open_store
from fanout.testing import RecordingStore

DEADLINE = 60.0


def write(i: int, name: str = "w") -> list[Pending]:
    return [update_pending(f"{i}// {name}{{i={i}}} {i}\n", 0, "ingest")]


def files(writer: DatalogWriter) -> list[list[int]]:
    """The seqs of each published datalog file, in order."""
    return [[r.seq for r in recs] for _, recs in iter_dir(writer.dir)]


async def until(cond: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def scenario(tmp: Path, later: list[list[Pending]], group_commit: bool = True,
             refuse: Callable[[Any], Exception | None] | None = None,
             ) -> tuple[list[Any], RecordingStore, DatalogWriter, Committer]:
    """Commit ``write(0)`` and hold it in the store; queue ``later`` meanwhile; release."""
    gate = threading.Event()
    (tmp / "state").mkdir(exist_ok=True)
    store = RecordingStore(open_store("memory", None, tmp / "state"), gate, refuse)
    writer = DatalogWriter(tmp / "datalog", "n1")
    box: list[Committer] = []

    async def main() -> list[Any]:
        c = Committer(store, writer, "n1", group_commit=group_commit, inline_bytes=0)
        box.append(c)
        c.start()
        try:
            first = asyncio.ensure_future(c.submit(write(0, "first")))
            await until(store.entered.is_set, "the first commit to reach the store")
            rest = [asyncio.ensure_future(c.submit(u)) for u in later]
            # every later unit is queued while the first commit is still running
            await until(lambda: c._queue.qsize() == len(later), "the units to be queued")
            assert len(store.calls) == 1 and not first.done()
            gate.set()
            return list(await asyncio.gather(first, *rest, return_exceptions=True))
        finally:
            gate.set()
            await c.stop()

    return asyncio.run(main()), store, writer, box[0]


def test_units_queued_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    results, store, writer, c = scenario(tmp_path, [write(i) for i in range(1, 6)])
    assert all(r == [Outcome("applied")] for r in results), results
    # two transactions and two files: the held one, then everything that waited for it
    assert [len(entries) for entries in store.calls] == [1, 5]
    assert files(writer) == [[1], [2, 3, 4, 5, 6]]
    assert c.stats.last_group_units == 5
    assert store.last_seq() == 6 and store.marks() == {"n1": 6}


def test_without_group_commit_each_unit_has_its_own(tmp_path: Path) -> None:
    results, store, writer, _ = scenario(tmp_path, [write(i) for i in range(1, 4)],
                                         group_commit=False)
    assert all(r == [Outcome("applied")] for r in results), results
    assert [len(entries) for entries in store.calls] == [1, 1, 1, 1]
    assert files(writer) == [[1], [2], [3], [4]]


def test_a_failing_unit_of_a_group_is_refused_alone(tmp_path: Path) -> None:
    def refuse(entries: Any) -> Exception | None:
        if any("evil" in repr(e.change) for e in entries):  # the class name of its points
            return RuntimeError("the store refuses this change")
        return None

    later = [write(1), write(2), write(3, "evil"), write(4), write(5)]
    results, store, writer, c = scenario(tmp_path, later, refuse=refuse)
    assert isinstance(results[3], RuntimeError), results
    ok = results[:3] + results[4:]
    assert all(r == [Outcome("applied")] for r in ok), results
    # the group of five failed whole (rolled back), then each unit went alone
    assert [len(entries) for entries in store.calls] == [1, 5, 1, 1, 1, 1, 1]
    # acknowledged as if the refused write had never been there: dense seqs and oseqs
    assert files(writer) == [[1], [2], [3], [4], [5]]
    assert store.last_seq() == 5 and store.marks() == {"n1": 5}
    assert later[2][0].seq == 0
    assert c.stats.failed_commits == 2  # the group, then the unit alone
    assert list((writer.dir / ".tmp").iterdir()) == [], "a failed attempt left a file"


def test_an_exclusive_action_runs_alone_between_groups(tmp_path: Path) -> None:
    gate = threading.Event()
    (tmp_path / "state").mkdir()
    store = RecordingStore(open_store("memory", None, tmp_path / "state"), gate)
    writer = DatalogWriter(tmp_path / "datalog", "n1")
    seen: list[int] = []

    async def main() -> list[Any]:
        c = Committer(store, writer, "n1", inline_bytes=0)
        c.start()
        try:
            first = asyncio.ensure_future(c.submit(write(0)))
            await until(store.entered.is_set, "the first commit to reach the store")
            before = [asyncio.ensure_future(c.submit(write(i))) for i in (1, 2)]
            action = asyncio.ensure_future(c.exclusive(lambda: seen.append(len(store.calls))))
            after = [asyncio.ensure_future(c.submit(write(i))) for i in (3, 4)]
            await until(lambda: c._queue.qsize() == 5, "the units to be queued")
            gate.set()
            return list(await asyncio.gather(first, *before, action, *after))
        finally:
            gate.set()
            await c.stop()

    asyncio.run(main())
    # the units before the action committed together, the action ran alone after them,
    # and the units after it formed the next group
    assert [len(entries) for entries in store.calls] == [1, 2, 2]
    assert seen == [2]
    assert files(writer) == [[1], [2, 3], [4, 5]]
