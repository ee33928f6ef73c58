"""The applier state a forwarder publishes (ArangoDB's applier-state fields).

Ticks are strings (64-bit values leave the process as strings). Written to
``state_dir/forwarder-<target>.json`` at least every second while busy and on every phase
change; ``fanout status`` and ``/metrics`` read it.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout.state import ErrorInfo, ForwarderState, Pending, Progress
from fanout.statefile import iso_now, iso_time


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

    def info(self) -> ErrorInfo:
        return ErrorInfo(self.message, self.error_num, self.time)

    def as_json(self) -> dict[str, Any]:
        return self.info().to_json()


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
    # epoch seconds, formatted only when the state is written: a forwarder notes progress
    # for every batch, and formatting a time each time cost more than the note
    progress_at: float = field(default_factory=time.time)
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
        self.progress_at = time.time()

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

    def model(self) -> ForwarderState:
        """The state file's model (``fanout.state.ForwarderState``)."""
        return ForwarderState(
            target=self.target,
            target_server_id=self.target_id,
            started=self.started,
            running=self.phase not in (Phase.STOPPED, Phase.FAILED),
            phase=self.phase.value,
            last_applied_tick=self.last_applied,
            last_processed_tick=self.last_processed,
            last_available_tick=self.last_available,
            pending=Pending(self.pending_files, self.pending_bytes, self.pending_oldest_age),
            progress=Progress(iso_time(self.progress_at), self.progress_message,
                              self.failed_connects),
            total_requests=self.total_requests,
            total_failed_connects=self.total_failed_connects,
            total_events=self.total_events,
            total_operations_excluded=self.total_excluded,
            total_duplicates=self.total_duplicates,
            total_loops=self.total_loops,
            total_gaps=self.total_gaps,
            total_bytes=self.total_bytes,
            total_quarantined=self.quarantined,
            last_error=self.last_error.info() if self.last_error else None,
            time=iso_now(),
        )

    def as_json(self) -> dict[str, Any]:
        return self.model().to_json()

    def write(self) -> None:
        self.model().write(self.path)
        self._written = time.monotonic()

    def write_if_due(self, interval: float = 1.0) -> None:
        if time.monotonic() - self._written >= interval:
            self.write()
