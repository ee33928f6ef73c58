"""Group commit: every write that arrives while the last commit runs shares the next one.

One commit = one datalog file prepared (fsynced under .tmp/), one store transaction that
records the new ``last_seq``, then the file published. The store transaction is the commit
point (see ``fanout.datalog.writer``). Writes are acknowledged only after publication.

All commits run on one dedicated thread, so seq and oseq stay dense and ordered without
locks; the asyncio side only queues units and awaits their futures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fanout.datalog.format import Record
from fanout.datalog.writer import DatalogWriter, Prepared
from fanout.node.changes import Pending
from fanout.store.base import Entry, Outcome, Store

log = logging.getLogger("fanout.node.commit")

MAX_GROUP_BYTES = 32 * 1024 * 1024


@dataclass
class Unit:
    """Writes that must commit together (one client request, or one replication batch),
    or an ``action`` that must run alone on the commit thread (a restore)."""

    items: list[Pending]
    future: asyncio.Future[Any]
    size: int = 0
    action: Callable[[], Any] | None = None


@dataclass
class CommitStats:
    commits: int = 0
    files: int = 0
    records_logged: int = 0
    points: int = 0
    duplicates: int = 0
    gaps: int = 0
    failed_commits: int = 0
    last_group_units: int = 0
    last_error: str | None = None
    gap_origins: dict[str, int] = field(default_factory=dict)


class Committer:
    def __init__(
        self, store: Store, writer: DatalogWriter, node_id: str, group_commit: bool = True
    ):
        self.store = store
        self.writer = writer
        self.node_id = node_id
        self.group_commit = group_commit
        self.last_seq = store.last_seq()
        self.marks = store.marks()
        self.stats = CommitStats()
        self.started = time.time()
        self._queue: asyncio.Queue[Unit | None] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="fanout-commit")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="committer")

    async def stop(self) -> None:
        """Finish queued work, then stop; nothing queued is dropped."""
        await self._queue.put(None)
        if self._task:
            await self._task
        self._executor.shutdown(wait=True)

    async def exclusive(self, action: Callable[[], Any]) -> Any:
        """Run ``action`` on the commit thread between two commits, alone."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put(Unit([], fut, 0, action))
        return await fut

    async def submit(self, items: list[Pending]) -> list[Outcome]:
        fut: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        size = sum(len(p.body) for p in items) + 256 * len(items)
        await self._queue.put(Unit(items, fut, size))
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        held: Unit | None = None
        while not stopping:
            first = held if held is not None else await self._queue.get()
            held = None
            if first is None:
                return
            if first.action is not None:
                await self._run_action(loop, first)
                continue
            group = [first]
            if self.group_commit:
                size = first.size
                while not self._queue.empty() and size < MAX_GROUP_BYTES:
                    unit = self._queue.get_nowait()
                    if unit is None:
                        stopping = True
                        break
                    if unit.action is not None:
                        held = unit  # runs alone, right after this group
                        break
                    group.append(unit)
                    size += unit.size
            try:
                results = await loop.run_in_executor(self._executor, self._commit, group)
            except Exception as exc:
                self.stats.failed_commits += 1
                self.stats.last_error = str(exc)
                for unit in group:
                    if not unit.future.done():
                        unit.future.set_exception(exc)
                continue
            for unit, res in zip(group, results, strict=True):
                if not unit.future.done():
                    unit.future.set_result(res)

    async def _run_action(self, loop: asyncio.AbstractEventLoop, unit: Unit) -> None:
        assert unit.action is not None
        try:
            result = await loop.run_in_executor(self._executor, unit.action)
        except Exception as exc:
            if not unit.future.done():
                unit.future.set_exception(exc)
            return
        if not unit.future.done():
            unit.future.set_result(result)

    # -- on the commit thread ------------------------------------------------------------

    def _commit(self, group: list[Unit]) -> list[list[Outcome]]:
        now_ms = int(time.time() * 1000)
        seq = self.last_seq
        moved: dict[str, int] = {}
        entries: list[Entry] = []
        records: list[Record] = []
        for unit in group:
            for p in unit.items:
                origin = p.origin or self.node_id
                mark = moved.get(origin, self.marks.get(origin, 0))
                if p.origin is None:
                    oseq, when, via = mark + 1, now_ms, ()
                else:
                    oseq, when, via = p.oseq, p.time, (*p.via, self.node_id)
                entries.append(Entry(origin, oseq, p.change))
                if oseq <= mark:
                    continue  # duplicate: the store skips it, and it is not logged again
                moved[origin] = oseq
                if p.origin is None:
                    p.oseq = oseq
                if p.log:
                    seq += 1
                    p.seq = seq
                    records.append(
                        Record(seq, origin, oseq, when, p.op, p.token_id, p.params, via, p.body)
                    )
        prep = self.writer.prepare(records) if records else None
        try:
            outcomes = self.store.apply(entries, seq)
        except BaseException:
            if prep is not None:
                self.writer.discard(prep)
            raise
        if prep is not None:
            self._publish(prep)
        self.last_seq = seq
        self.marks.update(moved)
        self._count(group, outcomes, len(records), prep)
        it = iter(outcomes)
        return [[next(it) for _ in unit.items] for unit in group]

    def _publish(self, prep: Prepared) -> None:
        """The store has committed: the file must be published before anyone is answered.

        A failure here (a full directory block, say) is retried until it works; giving up
        would leave the store ahead of the datalog. Restart recovery does the same.
        """
        failures = 0
        while True:
            try:
                self.writer.publish(prep)
                if failures:
                    log.warning("published %s after %d failed attempts", prep.name, failures)
                return
            except OSError as exc:
                failures += 1
                if failures == 1 or failures % 60 == 0:
                    log.error("cannot publish %s (%s); retrying", prep.name, exc)
                time.sleep(0.5)

    def _count(self, group: list[Unit], outcomes: list[Outcome], logged: int,
               prep: Prepared | None) -> None:
        s = self.stats
        s.commits += 1
        s.last_group_units = len(group)
        s.records_logged += logged
        if prep is not None:
            s.files += 1
        items = [p for unit in group for p in unit.items]
        for p, out in zip(items, outcomes, strict=True):
            if out.status == "duplicate":
                s.duplicates += 1
                continue
            s.points += p.points
            if out.status == "gap":
                s.gaps += 1
                origin = p.origin or self.node_id
                s.gap_origins[origin] = s.gap_origins.get(origin, 0) + 1
                log.error("GAP from origin %s at oseq %d: records are missing upstream",
                          origin, p.oseq)
