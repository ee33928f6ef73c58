"""Whether the node can still take writes: the truth behind ``fanout status`` and /metrics.

A node whose datalog turned read-only (a remount after I/O errors, a wrong mode, an
immutable flag) answers every write with an error while it keeps serving reads and its
state file: alive is not the same as working. Two signals make that visible:

- the writes themselves: how many failed in a row (0 after one that commits) and the
  last error, so the reply, the state file, status and metrics all say the same thing;
- a probe of ``datalog/`` and ``datalog/.tmp/`` each state tick (``os.access``: no file is created),
  so status turns unhealthy before the first write fails, and heals before the next one
  succeeds.

Logging follows the retry rule: the first failure in a row is logged, then at most one
line a minute with the count, then one "writes commit again" line.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from fanout.state import ErrorInfo, WriteFigures
from fanout.statefile import iso_now

log = logging.getLogger("fanout.node")

LOG_EVERY = 60.0  # seconds between repeated "still failing" lines


@dataclass
class WriteHealth:
    failing_in_row: int = 0
    total_failed: int = 0
    last_error: str | None = None
    last_error_time: str | None = None
    datalog_writable: bool = True
    datalog_error: str | None = None
    _logged_at: float = 0.0

    def failed(self, message: str) -> None:
        self.failing_in_row += 1
        self.total_failed += 1
        self.last_error, self.last_error_time = message, iso_now()
        now = time.monotonic()
        if self.failing_in_row == 1:
            log.error("a write failed, nothing acknowledged: %s", message)
            self._logged_at = now
        elif now - self._logged_at >= LOG_EVERY:
            log.error("%d writes failed in a row; the last: %s", self.failing_in_row, message)
            self._logged_at = now

    def committed(self) -> None:
        if self.failing_in_row:
            log.warning("writes commit again after %d failed in a row", self.failing_in_row)
            self.failing_in_row = 0

    def probe(self, *dirs: Path) -> None:
        """Can this process create and rename files in ``dirs`` (``datalog/.tmp`` and
        ``datalog``, where every commit writes)? ``os.access`` sees a read-only mount
        (EROFS) and an immutable flag even for root; no file is created."""
        why = None
        for d in dirs:
            try:
                if not (d.is_dir() and os.access(d, os.W_OK | os.X_OK)):
                    why = f"{d} is not writable (read-only mount, mode or immutable flag?)"
            except OSError as exc:
                why = f"{d}: {exc}"
            if why:
                break
        ok = why is None
        if ok != self.datalog_writable:
            if ok:
                log.warning("the datalog is writable again")
            else:
                log.error("datalog: %s; every write will fail", why)
        self.datalog_writable, self.datalog_error = ok, why

    def state(self) -> WriteFigures:
        """The node state file's ``writes`` section (read by status and /metrics)."""
        return WriteFigures(
            failing_in_row=self.failing_in_row,
            total_failed=self.total_failed,
            last_error=None if self.last_error is None else ErrorInfo(
                self.last_error, time=self.last_error_time),
            datalog_writable=self.datalog_writable,
            datalog_error=self.datalog_error,
        )
