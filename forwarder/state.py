"""The applier state a forwarder publishes (ArangoDB's applier-state fields).

Ticks are strings (64-bit values leave the process as strings). Written to
``state_dir/forwarder-<target>.json`` at least every second while busy and on every phase
change; ``fanout status`` and ``/metrics`` read it.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout.statefile import iso_now, write_json_atomic


class Phase(enum.Enum):
    """Allowed transitions, in one place:

    starting -> connecting -> running <-> idle
    running/connecting -> backoff -> running/connecting      (retryable failure)
    any -> paused -> (previous)                              (operator)
    any -> stopped                                           (SIGTERM: clean exit 0)
    any -> failed                                            (gave up: exit non-zero)
    """

    STARTING = "starting"
    CONNECTING = "connecting"
    RUNNING = "running"
    IDLE = "idle"
    BACKOFF = "backoff"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"


# Under a steady trickle of writes a forwarder goes running -> idle -> running for every
# datalog file (100 times a second at 100 requests/s), and each state file write (a
# create and a rename over the old file) costs ~0.4 ms of kernel time: written at every
# flip, the state file cost a forwarder more CPU than forwarding did. These two changes
# are written at most once a second (the heartbeat writes the current phase within a
# second); every other change of phase is written at once.
_FLIPS = frozenset({(Phase.RUNNING, Phase.IDLE), (Phase.IDLE, Phase.RUNNING)})


@dataclass
class LastError:
    error_num: int
    message: str
    time: str = field(default_factory=iso_now)

    def as_json(self) -> dict[str, Any]:
        return {"errorNum": self.error_num, "errorMessage": self.message, "time": self.time}


@dataclass
class ApplierState:
    target: str
    path: Path
    phase: Phase = Phase.STARTING
    target_id: str | None = None
    last_applied: int = 0
    last_processed: int = 0
    last_available: int = 0
    pending_files: int = 0
    pending_bytes: int = 0
    pending_oldest_age: float = 0.0
    progress_message: str = "starting"
    progress_time: str = field(default_factory=iso_now)
    failed_connects: int = 0
    total_requests: int = 0
    total_failed_connects: int = 0
    total_events: int = 0
    total_excluded: int = 0
    total_duplicates: int = 0
    total_loops: int = 0
    total_gaps: int = 0
    total_bytes: int = 0
    quarantined: int = 0
    last_error: LastError | None = None
    started: float = field(default_factory=time.time)
    _written: float = 0.0

    def progress(self, message: str) -> None:
        self.progress_message = message
        self.progress_time = iso_now()

    def set_phase(self, phase: Phase, message: str | None = None) -> None:
        previous = self.phase
        self.phase = phase
        if message:
            self.progress(message)
        if phase is previous:
            return
        if (previous, phase) in _FLIPS:
            self.write_if_due()
        else:
            self.write()

    def as_json(self) -> dict[str, Any]:
        running = self.phase not in (Phase.STOPPED, Phase.FAILED)
        return {
            "process": f"forwarder-{self.target}",
            "target": self.target,
            "targetServerId": self.target_id,
            "pid": os.getpid(),
            "started": self.started,
            "running": running,
            "phase": self.phase.value,
            "lastAppliedTick": str(self.last_applied),
            "lastProcessedTick": str(self.last_processed),
            "lastAvailableTick": str(self.last_available),
            "ticksBehind": str(max(0, self.last_available - self.last_processed)),
            "pending": {
                "files": self.pending_files,
                "bytes": self.pending_bytes,
                "oldestAgeSeconds": round(self.pending_oldest_age, 3),
            },
            "progress": {
                "time": self.progress_time,
                "message": self.progress_message,
                "failedConnects": self.failed_connects,
            },
            "totalRequests": self.total_requests,
            "totalFailedConnects": self.total_failed_connects,
            "totalEvents": self.total_events,
            "totalOperationsExcluded": self.total_excluded,
            "totalDuplicates": self.total_duplicates,
            "totalLoops": self.total_loops,
            "totalGaps": self.total_gaps,
            "totalBytes": self.total_bytes,
            "totalQuarantined": self.quarantined,
            "lastError": self.last_error.as_json() if self.last_error else None,
            "time": iso_now(),
        }

    def write(self) -> None:
        write_json_atomic(self.path, self.as_json())
        self._written = time.monotonic()

    def write_if_due(self, interval: float = 1.0) -> None:
        if time.monotonic() - self._written >= interval:
            self.write()
