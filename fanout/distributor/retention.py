"""Per-target retention (``max_files``, ``max_bytes``; 0 = unlimited), ArangoDB's
``maxEvents``/``maxEventsSize``: past a limit, that target's oldest files are removed and
counted as dropped for that target only.

Counting a large directory at every batch would cost O(backlog) per file, so the guard
keeps its own counters (raised by the distributor's links, lowered by its drops) and an
exact count is taken only when needed. Forwarders delete files behind its back, which can
only make the counters too high, never too low; they delete in name order, oldest first,
so the guard notices: the oldest name it was about to drop is already gone. It then
recounts exactly before dropping anything, and never drops a file the limit does not
require.
"""

from __future__ import annotations

import heapq
import os
from collections import deque
from collections.abc import Iterator

from fanout.fileio import iter_datalog

REFILL = 1024  # oldest names remembered per exact count: bounded memory, amortized scans


class RetentionGuard:
    """Keeps one target directory within its limits."""

    def __init__(self, directory: str, max_files: int, max_bytes: int):
        self.dir = directory.rstrip("/") + "/"
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.files = 0
        self.bytes = 0
        self._oldest: deque[str] = deque()
        self._exact = False

    def added(self, size: int) -> None:
        self.files += 1
        self.bytes += size

    def over(self) -> bool:
        return bool((self.max_files and self.files > self.max_files)
                    or (self.max_bytes and self.bytes > self.max_bytes))

    def recount(self) -> None:
        """Exact count of the directory and its REFILL oldest names: O(backlog) once."""
        files = size = 0
        need_bytes = bool(self.max_bytes)

        def names() -> Iterator[str]:
            nonlocal files, size
            for entry in iter_datalog(self.dir):
                if need_bytes:
                    try:
                        size += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue
                files += 1
                yield entry.name

        try:
            oldest = heapq.nsmallest(REFILL, names())
        except FileNotFoundError:
            oldest = []
        self.files, self.bytes = files, size
        self._oldest = deque(oldest)
        self._exact = True

    def enforce(self) -> tuple[int, int]:
        """Drop oldest files until within limits; returns (files, bytes) dropped."""
        dropped = dropped_bytes = 0
        if not self.over():
            return 0, 0
        if not self._exact:
            self.recount()
        while self.over():
            if not self._oldest:
                self.recount()
                if not self.over() or not self._oldest:
                    break
            name = self._oldest.popleft()
            path = self.dir + name
            try:
                size = os.lstat(path).st_size
            except FileNotFoundError:
                # Consumed by the forwarder, which goes oldest first: our counters are
                # stale (too high). Count again before dropping anything.
                self.recount()
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # the forwarder finished it between the lstat and the unlink
            else:
                dropped += 1
                dropped_bytes += size
            self.files -= 1
            self.bytes -= size
        # Until the next recount the counters only go up with links: exact enough for a
        # directory nobody else touches, and corrected by the check above otherwise.
        return dropped, dropped_bytes
