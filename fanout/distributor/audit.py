"""Exact per-target backlog figures (files, bytes, oldest file's age), counted in slices.

Counting a target directory costs a stat per file; with a dead forwarder that is a large
number every few seconds. Counted in one go it would stall linking; counted in a thread
it would too, differently: every system call the main thread makes must win the GIL back
from the counting thread, which can take CPython's whole switch interval (5 ms), so a
16-target link costs tens of milliseconds (measured: p99 latency 10 ms -> 25 ms). So the
main loop advances an ``AuditJob`` by a fraction of a millisecond whenever no event is
waiting, and the state file adds the links and drops made since each count started. The
figures are for operators; retention keeps its own exact-when-needed counts
(``retention.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator

from fanout.distributor.state import Audit, TargetStats
from fanout.fileio import iter_datalog

_CHECK_EVERY = 64  # datalog entries between two looks at the clock
DatalogEntries = Generator[os.DirEntry[str], None, None]


class AuditJob:
    """Counts a list of target directories, one slice at a time."""

    def __init__(self, targets: list[tuple[str, TargetStats]]):
        self._todo = list(targets)
        self._current: tuple[str, TargetStats, Audit, DatalogEntries] | None = None
        self._oldest: str | None = None
        self.work = 0.0  # seconds spent counting so far

    @property
    def done(self) -> bool:
        return self._current is None and not self._todo

    def step(self, budget: float) -> bool:
        """Work for about ``budget`` seconds; True once every directory is counted."""
        started = time.monotonic()
        deadline = started + budget
        while not self.done:
            if self._current is None:
                self._open()
                continue
            audit, it = self._current[2], self._current[3]
            finished = True
            n = 0
            for entry in it:
                name = entry.name
                try:
                    audit.bytes += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                audit.files += 1
                if self._oldest is None or name < self._oldest:
                    self._oldest = name
                n += 1
                if n % _CHECK_EVERY == 0 and time.monotonic() >= deadline:
                    finished = False
                    break
            if finished:
                self._finish()
            if time.monotonic() >= deadline:
                break
        self.work += time.monotonic() - started
        return self.done

    def _open(self) -> None:
        directory, stats = self._todo.pop(0)
        # The counters as the count starts: what is linked or dropped from now on is
        # added on top of the count (a file linked while being counted may be counted
        # twice until the next audit: the figures are estimates between audits).
        audit = Audit(linked_at=stats.linked, linked_bytes_at=stats.linked_bytes,
                      dropped_at=stats.dropped, dropped_bytes_at=stats.dropped_bytes)
        stats.first_link_wall = None
        self._oldest = None
        try:
            it = iter_datalog(directory)
        except OSError:
            stats.audit = audit  # a missing directory holds nothing
            return
        self._current = (directory, stats, audit, it)

    def _finish(self) -> None:
        assert self._current is not None
        directory, stats, audit, it = self._current
        it.close()
        self._current = None
        if self._oldest is not None:
            try:
                audit.oldest_mtime = os.stat(os.path.join(directory, self._oldest)).st_mtime
            except FileNotFoundError:  # consumed meanwhile: the next count will say
                audit.oldest_mtime = time.time()
        stats.audit = audit

    def close(self) -> None:
        if self._current is not None:
            self._current[3].close()
            self._current = None
        self._todo.clear()
