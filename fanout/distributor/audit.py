"""Exact per-target backlog figures (files, bytes, oldest file's age), counted in a thread.

Counting a target directory costs a stat per file; with a dead forwarder that is a large
number every few seconds. Done on the main thread it would stall linking (and latency)
for as long, so a background thread counts and the state file adds the links and drops
made since each count started. The figures are for operators; retention keeps its own
exact-when-needed counts (``retention.py``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from fanout.datalog.reader import is_datalog_name
from fanout.distributor.state import Audit, TargetStats

log = logging.getLogger("fanout.distributor")

Snapshot = Callable[[], list[tuple[str, TargetStats]]]  # (directory, stats) per target


def count_dir(directory: str) -> tuple[int, int, str | None]:
    """(datalog files, their bytes, oldest name) of one directory; O(1) memory."""
    files = size = 0
    oldest: str | None = None
    try:
        with os.scandir(directory) as it:
            for entry in it:
                n = entry.name
                if not is_datalog_name(n):
                    continue
                try:
                    size += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                files += 1
                if oldest is None or n < oldest:
                    oldest = n
    except FileNotFoundError:
        pass
    return files, size, oldest


def audit_target(directory: str, stats: TargetStats) -> None:
    """Count ``directory`` and store the result with the counters it started from."""
    a = Audit(linked_at=stats.linked, linked_bytes_at=stats.linked_bytes,
              dropped_at=stats.dropped, dropped_bytes_at=stats.dropped_bytes)
    stats.first_link_wall = None
    for _ in range(3):  # the oldest file may be consumed between the count and its stat
        a.files, a.bytes, oldest = count_dir(directory)
        if oldest is None:
            break
        try:
            a.oldest_mtime = os.stat(os.path.join(directory, oldest)).st_mtime
            break
        except FileNotFoundError:
            continue
    stats.audit = a


class Auditor:
    """Counts every target directory every ``interval`` seconds, and on ``kick``."""

    def __init__(self, snapshot: Snapshot, interval: float):
        self.snapshot = snapshot
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auditor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for directory, stats in self.snapshot():
                if self._stop.is_set():
                    return
                try:
                    audit_target(directory, stats)
                except OSError as exc:
                    log.warning("cannot count %s: %s", directory, exc)
            self._wake.wait(self.interval)
            self._wake.clear()
