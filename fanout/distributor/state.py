"""Counters, the last error, and ``state_dir/distributor.json``.

The state file is the operator's view (``fanout status``, ``/metrics``): rebuilt from
scratch at every start, written atomically at least every second while running and at
every phase change. Per-target backlog figures are approximate between two audits of the
target directories (forwarders delete files behind the distributor's back).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout.state import DistributorState, ErrorInfo, Retention, TargetBacklog
from fanout.statefile import iso_now

log = logging.getLogger("fanout.distributor")

LOG_EVERY = 30.0  # seconds between two log lines for the same recurring problem


class Phase(enum.Enum):
    """starting -> running -> stopped; starting -> stopped when the config is refused."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"


class ErrorTracker:
    """Keeps ``lastError`` and rate-limits the log: a problem that recurs at every scan
    (a name conflict, a full disk) is logged at once, then at most every LOG_EVERY s with
    how often it happened, and once more when it stops ("recovered after N"). Called from
    several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: ErrorInfo | None = None
        self._seen: dict[str, _Recurring] = {}

    def record(self, num: int, message: str) -> None:
        """Set ``lastError`` without logging (the caller reports it another way)."""
        self.last = ErrorInfo(message, num, iso_now())

    def report(self, num: int, message: str, key: str | None = None) -> None:
        key = key or message
        now = time.monotonic()
        with self._lock:
            self.record(num, message)
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = _Recurring(message, now)
                log.error("%s", message)
                return
            seen.count += 1
            seen.unlogged += 1
            if now - seen.logged_at >= LOG_EVERY:
                log.error("%s (%d times since last logged)", message, seen.unlogged)
                seen.logged_at, seen.unlogged = now, 0

    def resolved(self, key: str) -> None:
        """The problem ``key`` did not happen this time: log once that it recovered."""
        if key not in self._seen:  # the common case, without taking the lock
            return
        with self._lock:
            seen = self._seen.pop(key, None)
        if seen is not None:
            log.info("recovered after %d failure(s): %s", seen.count, seen.message)


@dataclass
class _Recurring:
    message: str
    logged_at: float
    count: int = 1
    unlogged: int = 0


@dataclass
class Audit:
    """One exact count of a target directory, with the distributor's own counters as they
    were when it started, so links and drops made since can be added on top."""

    files: int = 0
    bytes: int = 0
    oldest_mtime: float | None = None
    linked_at: int = 0
    linked_bytes_at: int = 0
    dropped_at: int = 0
    dropped_bytes_at: int = 0


@dataclass
class TargetStats:
    """Per-target counters. Written by the main thread, read by the auditor thread and the
    state writer (plain ints: a torn read is impossible under the GIL)."""

    linked: int = 0
    linked_bytes: int = 0
    dropped: int = 0
    dropped_bytes: int = 0
    first_link_wall: float | None = None  # wall time of the first link since the last audit
    audit: Audit | None = None

    def backlog(self) -> tuple[int, int, float | None]:
        """(files, bytes, oldest file's mtime) now, estimated from the last audit."""
        a = self.audit or Audit()
        files = a.files + (self.linked - a.linked_at) - (self.dropped - a.dropped_at)
        size = (a.bytes + (self.linked_bytes - a.linked_bytes_at)
                - (self.dropped_bytes - a.dropped_bytes_at))
        oldest = a.oldest_mtime if a.files else self.first_link_wall
        return max(files, 0), max(size, 0), oldest if files > 0 else None


@dataclass
class Counters:
    files_linked: int = 0
    bytes_linked: int = 0
    files_removed: int = 0
    rescans: int = 0
    overflows: int = 0
    datalog_backlog: int = 0  # datalog files waiting, as of the last scan's first pass
    started: str = field(default_factory=iso_now)


def build_state(phase: Phase, counters: Counters, errors: ErrorTracker, datalog_dir: Path,
                targets: dict[str, Any], inflight: int) -> DistributorState:
    """The state file's model. ``targets`` maps a name to (Target, TargetStats)."""
    now = time.time()
    per_target: dict[str, TargetBacklog] = {}
    for name, (target, stats) in targets.items():
        files, size, oldest = stats.backlog()
        per_target[name] = TargetBacklog(
            source_dir=str(target.source_dir),
            config=str(target.config_file),
            retention=Retention(target.max_files, target.max_bytes),
            files_linked=stats.linked,
            bytes_linked=stats.linked_bytes,
            backlog_files=files,
            backlog_bytes=size,
            oldest_age_seconds=round(max(now - oldest, 0.0), 3) if oldest else None,
            dropped=stats.dropped,
            dropped_bytes=stats.dropped_bytes,
        )
    state = DistributorState(
        phase=phase.value,
        running=phase is Phase.RUNNING,
        time=iso_now(),
        start_time=counters.started,
        datalog_dir=str(datalog_dir),
        files_linked=counters.files_linked,
        bytes_linked=counters.bytes_linked,
        files_removed=counters.files_removed,
        files_in_flight=inflight,
        datalog_backlog_files=counters.datalog_backlog,
        rescans=counters.rescans,
        overflows=counters.overflows,
        last_error=errors.last,
        targets=per_target,
    )
    if not targets and phase is Phase.RUNNING:
        state.note = ("no targets in the targets directory: datalog files wait in "
                      "datalog_dir until one is added")
    return state


def write_state(path: Path, state: DistributorState) -> None:
    try:
        state.write(path)
    except OSError as exc:  # a state file is a view: never stop distributing for it
        log.warning("cannot write state file %s: %s", path, exc)
