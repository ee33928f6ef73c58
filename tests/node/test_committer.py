"""The committer in process, with a real datalog writer and a real SQLite store.

A store wrapper refuses the entries of one marked origin, the way a store refuses a change
it cannot apply; everything else is the production code path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fanout.datalog import DatalogWriter, iter_dir
from fanout.datalog.writer import Prepared
from fanout.errors import DiskFullError
from fanout.gts import parse_selector, parse_update
from fanout.node.changes import Pending, update_pending
from fanout.node.committer import CommitFatal, Committer
from fanout.store import Entry, Outcome, Store, open_store
from fanout.store.base import Update

ALL = parse_selector("~.*{}")


class RefusingStore:
    """A real store that raises ``error`` for any apply holding an entry of ``bad``."""

    def __init__(self, inner: Store, bad: str, error: Exception):
        self.inner, self.bad, self.error = inner, bad, error
        self.calls: list[int] = []  # entries per apply call, to see the grouping

    def apply(self, entries: Sequence[Entry], last_seq: int) -> list[Outcome]:
        self.calls.append(len(entries))
        if any(e.origin == self.bad for e in entries):
            raise self.error
        return self.inner.apply(entries, last_seq)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def remote(origin: str, oseq: int, line: str) -> Pending:
    readings = parse_update(line, 0)
    return Pending("update", "replicator", {}, line.encode(), Update(readings), len(readings),
                   origin=origin, oseq=oseq, time=1, via=(), log=True)


def fetch(store: Any) -> list[str]:
    return list(store.fetch(ALL, -(1 << 63), (1 << 63) - 1))


def setup(tmp: Path, error: Exception) -> tuple[RefusingStore, DatalogWriter]:
    inner = open_store("sqlite", tmp / "store.sqlite", tmp / "state")
    return RefusingStore(inner, "bad", error), DatalogWriter(tmp / "datalog", "n1")


async def submit_together(c: Committer, units: list[list[Pending]]) -> list[Any]:
    """Queue every unit before the committer runs once, so they share one commit."""
    return await asyncio.gather(*(c.submit(u) for u in units), return_exceptions=True)


def test_failing_unit_is_refused_alone_and_the_others_are_committed(tmp_path: Path) -> None:
    store, writer = setup(tmp_path, RuntimeError("store refuses this change"))
    good = [[update_pending(f"{i}// good{{w={i}}} {i}\n", 0, "ingest")] for i in range(6)]
    bad = [remote("bad", 1, "1// evil{} 1\n")]
    also = [remote("peer", 1, "7// relayed{} 7\n")]

    async def run() -> list[Any]:
        c = Committer(store, writer, "n1")
        c.start()
        try:
            return await submit_together(c, [*good[:3], bad, *good[3:], also])
        finally:
            await c.stop()

    results = asyncio.run(run())
    assert store.calls[0] == 8, "the units were not grouped into one commit"
    assert isinstance(results[3], RuntimeError)
    ok = results[:3] + results[4:]
    assert all(r == [Outcome("applied")] for r in ok), results

    # acknowledged as if the bad batch had not been there: dense seqs and oseqs
    recs = [r for _, rs in iter_dir(writer.dir) for r in rs]
    assert [r.seq for r in recs] == list(range(1, 8))
    assert [(r.origin, r.oseq) for r in recs] == [("n1", i) for i in range(1, 7)] + [("peer", 1)]
    assert [p.seq for [p] in good] == list(range(1, 7))
    assert [p.oseq for [p] in good] == list(range(1, 7))
    assert bad[0].seq == 0
    assert store.last_seq() == 7 and store.marks() == {"n1": 6, "peer": 1}
    served = fetch(store)
    assert len(served) == 7 and not any("evil" in line for line in served)
    assert list((writer.dir / ".tmp").iterdir()) == [], "a failed attempt left a file"
    # what the datalog says is what the store holds
    assert sorted(r.body.decode().strip() for r in recs) == sorted(
        [p.body.decode().strip() for [p] in good] + ["7// relayed{} 7"])
    store.close()


def test_disk_full_still_fails_every_unit_of_the_commit(tmp_path: Path) -> None:
    store, writer = setup(tmp_path, DiskFullError("no space left"))
    units = [[update_pending("1// a{} 1\n", 0, "ingest")], [remote("bad", 1, "1// b{} 1\n")],
             [update_pending("2// a{} 2\n", 0, "ingest")]]

    async def run() -> list[Any]:
        c = Committer(store, writer, "n1")
        c.start()
        try:
            return await submit_together(c, units)
        finally:
            await c.stop()

    results = asyncio.run(run())
    assert all(isinstance(r, DiskFullError) for r in results), results
    assert store.calls == [3], "a full disk is not retried unit by unit"
    assert store.last_seq() == 0 and list(iter_dir(writer.dir)) == []
    store.close()


class VanishingWriter(DatalogWriter):
    """Another process takes the prepared file from .tmp/ before publication."""

    def publish(self, prep: Prepared) -> None:
        prep.tmp_path.unlink()
        super().publish(prep)


def test_vanished_prepared_file_is_fatal_and_written_again(tmp_path: Path) -> None:
    inner = open_store("sqlite", tmp_path / "store.sqlite", tmp_path / "state")
    writer = VanishingWriter(tmp_path / "datalog", "n1")
    fatal: list[CommitFatal] = []

    async def run() -> tuple[list[Any], Any]:
        c = Committer(inner, writer, "n1")
        c.on_fatal = fatal.append
        c.start()
        try:
            first = await submit_together(
                c, [[update_pending(f"{i}// a{{}} {i}\n", 0, "ingest")] for i in range(3)])
            try:
                await c.submit([update_pending("9// a{} 9\n", 0, "ingest")])
                later: Any = None
            except CommitFatal as exc:
                later = exc
            return first, later
        finally:
            await asyncio.wait_for(c.stop(), 10)

    results, later = asyncio.run(run())
    assert all(isinstance(r, CommitFatal) for r in results), results
    assert "vanished" in str(results[0])
    assert len(fatal) == 1 and later is fatal[0], "later writes fail at once, never hang"
    # the store committed the group, so the datalog has it again: they still agree
    recs = [r for _, rs in iter_dir(writer.dir) for r in rs]
    assert [r.seq for r in recs] == [1, 2, 3] and inner.last_seq() == 3
    assert len(fetch(inner)) == 3
    inner.close()


@pytest.mark.parametrize("errno_", ["EACCES", "EIO"])
def test_other_publish_errors_are_fatal_at_once(tmp_path: Path, errno_: str) -> None:
    import errno as errnos

    code = getattr(errnos, errno_)

    class Failing(DatalogWriter):
        def publish(self, prep: Prepared) -> None:
            raise OSError(code, "injected")

    inner = open_store("sqlite", tmp_path / "store.sqlite", tmp_path / "state")
    writer = Failing(tmp_path / "datalog", "n1")

    async def run() -> list[Any]:
        c = Committer(inner, writer, "n1")
        c.start()
        try:
            return await asyncio.wait_for(
                c.submit([update_pending("1// a{} 1\n", 0, "ingest")]), 5)
        finally:
            await c.stop()

    with pytest.raises(CommitFatal, match="cannot publish"):
        asyncio.run(run())
    # the prepared file stays for restart recovery, which publishes it: nothing lost
    assert inner.last_seq() == 1
    inner.close()
    assert DatalogWriter(tmp_path / "datalog", "n1").recover(1) == (1, 0)


class CommitsThenRaises(RefusingStore):
    """The store commits, then something after the commit point raises."""

    def apply(self, entries: Sequence[Entry], last_seq: int) -> list[Outcome]:
        self.calls.append(len(entries))
        out = self.inner.apply(entries, last_seq)
        if any(e.origin == self.bad for e in entries):
            raise self.error
        return out


def test_failure_after_the_store_committed_is_fatal_not_retried(tmp_path: Path) -> None:
    """Committing the units again would apply them twice: the node must stop instead."""
    inner = open_store("sqlite", tmp_path / "store.sqlite", tmp_path / "state")
    store = CommitsThenRaises(inner, "bad", RuntimeError("after the commit point"))
    writer = DatalogWriter(tmp_path / "datalog", "n1")
    fatal: list[CommitFatal] = []

    async def run() -> list[Any]:
        c = Committer(store, writer, "n1")
        c.on_fatal = fatal.append
        c.start()
        try:
            return await submit_together(c, [[update_pending("1// a{} 1\n", 0, "ingest")],
                                              [remote("bad", 1, "1// b{} 1\n")]])
        finally:
            await c.stop()

    results = asyncio.run(run())
    assert all(isinstance(r, CommitFatal) for r in results), results
    assert len(fatal) == 1 and "after the store committed" in str(fatal[0])
    assert store.calls == [2], "nothing may be committed again"
    inner.close()


def test_transient_publish_errors_are_retried_then_fatal(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import fanout.node.committer as committer_mod

    monkeypatch.setattr(committer_mod, "PUBLISH_RETRY_SECONDS", 1.0)
    monkeypatch.setattr(committer_mod, "PUBLISH_RETRY_INTERVAL", 0.05)
    failures = {"left": 3}

    class Full(DatalogWriter):
        def publish(self, prep: Prepared) -> None:
            if failures["left"]:
                failures["left"] -= 1
                raise OSError(errno.ENOSPC, "No space left on device")
            super().publish(prep)

    inner = open_store("sqlite", tmp_path / "store.sqlite", tmp_path / "state")
    writer = Full(tmp_path / "datalog", "n1")

    async def run(n: int) -> Any:
        c = Committer(inner, writer, "n1")
        c.start()
        try:
            return await asyncio.wait_for(
                c.submit([update_pending(f"{n}// a{{}} {n}\n", 0, "ingest")]), 10)
        finally:
            await c.stop()

    assert asyncio.run(run(1)) == [Outcome("applied")]  # healed within the budget
    assert [r.seq for _, rs in iter_dir(writer.dir) for r in rs] == [1]
    failures["left"] = 10**6
    with pytest.raises(CommitFatal, match="for 1s"):
        asyncio.run(run(2))
    inner.close()
