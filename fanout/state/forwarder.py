"""``state_dir/forwarder-<target>.json`` (ArangoDB's applier state: ticks as strings) and
``state_dir/forwarder-<target>.cursor`` (where the forwarder resumes)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout.state.common import ErrorInfo, error_json, read_doc, write_doc
from fanout.state.fields import (
    as_bool,
    as_dict,
    as_float,
    as_int,
    as_opt_int,
    as_opt_str,
    as_str,
)

FORWARDER_PREFIX = "forwarder-"


def forwarder_state_path(state_dir: Path, target: str) -> Path:
    return Path(state_dir) / f"{FORWARDER_PREFIX}{target}.json"


def forwarder_state_files(state_dir: Path) -> list[Path]:
    """Every forwarder state file in ``state_dir``, sorted (configured or not)."""
    return sorted(Path(state_dir).glob(f"{FORWARDER_PREFIX}*.json"))


def cursor_path(state_dir: Path, target: str) -> Path:
    return Path(state_dir) / f"{FORWARDER_PREFIX}{target}.cursor"


@dataclass
class Pending:
    """Files waiting in the target's source directory."""

    files: int = 0
    bytes: int = 0
    oldest_age_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes,
                "oldestAgeSeconds": round(self.oldest_age_seconds, 3)}

    @classmethod
    def from_json(cls, data: Any) -> Pending:
        d = as_dict(data)
        return cls(as_int(d.get("files")), as_int(d.get("bytes")),
                   as_float(d.get("oldestAgeSeconds")))


@dataclass
class Progress:
    time: str = ""
    message: str = ""
    failed_connects: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "message": self.message,
                "failedConnects": self.failed_connects}

    @classmethod
    def from_json(cls, data: Any) -> Progress:
        d = as_dict(data)
        return cls(as_str(d.get("time")), as_str(d.get("message")),
                   as_int(d.get("failedConnects")))


@dataclass
class ForwarderState:
    """The whole of ``forwarder-<target>.json``. ``brief`` documents (a forwarder that
    stopped on a config error before it had any figures) hold only process, target,
    running, phase and lastError."""

    target: str
    phase: str = "starting"
    running: bool = False
    target_server_id: str | None = None
    started: float = 0.0
    last_applied_tick: int = 0
    last_processed_tick: int = 0
    last_available_tick: int = 0
    pending: Pending = field(default_factory=Pending)
    progress: Progress = field(default_factory=Progress)
    total_requests: int = 0
    total_failed_connects: int = 0
    total_events: int = 0
    total_operations_excluded: int = 0
    total_duplicates: int = 0
    total_loops: int = 0
    total_gaps: int = 0
    total_bytes: int = 0
    total_quarantined: int = 0
    last_error: ErrorInfo | None = None
    time: str = ""
    pid: int = field(default_factory=os.getpid)
    brief: bool = False
    # as read: the file's own ticksBehind (None: derive it from the ticks)
    ticks_behind_read: int | None = None

    @property
    def process(self) -> str:
        return f"{FORWARDER_PREFIX}{self.target}"

    @property
    def ticks_behind(self) -> int:
        if self.ticks_behind_read is not None:
            return self.ticks_behind_read
        return max(0, self.last_available_tick - self.last_processed_tick)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "process": self.process,
            "target": self.target,
            "running": self.running,
            "phase": self.phase,
            "lastError": error_json(self.last_error),
        }
        if self.brief:
            return doc
        doc.update({
            "targetServerId": self.target_server_id,
            "pid": self.pid,
            "started": self.started,
            "lastAppliedTick": str(self.last_applied_tick),
            "lastProcessedTick": str(self.last_processed_tick),
            "lastAvailableTick": str(self.last_available_tick),
            "ticksBehind": str(self.ticks_behind),
            "pending": self.pending.to_json(),
            "progress": self.progress.to_json(),
            "totalRequests": self.total_requests,
            "totalFailedConnects": self.total_failed_connects,
            "totalEvents": self.total_events,
            "totalOperationsExcluded": self.total_operations_excluded,
            "totalDuplicates": self.total_duplicates,
            "totalLoops": self.total_loops,
            "totalGaps": self.total_gaps,
            "totalBytes": self.total_bytes,
            "totalQuarantined": self.total_quarantined,
            "time": self.time,
        })
        return doc

    @classmethod
    def from_json(cls, data: Any) -> ForwarderState | None:
        """None when the document names no target (not a forwarder state)."""
        d = as_dict(data)
        target = as_opt_str(d.get("target"))
        if target is None:
            return None
        return cls(
            target=target,
            phase=as_str(d.get("phase"), "unknown"),
            running=as_bool(d.get("running")),
            target_server_id=as_opt_str(d.get("targetServerId")),
            started=as_float(d.get("started")),
            last_applied_tick=as_int(d.get("lastAppliedTick")),
            last_processed_tick=as_int(d.get("lastProcessedTick")),
            last_available_tick=as_int(d.get("lastAvailableTick")),
            pending=Pending.from_json(d.get("pending")),
            progress=Progress.from_json(d.get("progress")),
            total_requests=as_int(d.get("totalRequests")),
            total_failed_connects=as_int(d.get("totalFailedConnects")),
            total_events=as_int(d.get("totalEvents")),
            total_operations_excluded=as_int(d.get("totalOperationsExcluded")),
            total_duplicates=as_int(d.get("totalDuplicates")),
            total_loops=as_int(d.get("totalLoops")),
            total_gaps=as_int(d.get("totalGaps")),
            total_bytes=as_int(d.get("totalBytes")),
            total_quarantined=as_int(d.get("totalQuarantined")),
            last_error=ErrorInfo.from_json(d.get("lastError")),
            time=as_str(d.get("time")),
            pid=as_int(d.get("pid")),
            brief="lastAppliedTick" not in d,
            ticks_behind_read=as_opt_int(d.get("ticksBehind")),
        )

    def write(self, path: Path) -> None:
        write_doc(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> ForwarderState | None:
        doc = read_doc(path)
        return None if doc is None else cls.from_json(doc)


@dataclass
class Cursor:
    """Where the forwarder resumes: the last tick it processed (sent or skipped) and the
    last one the target acknowledged (None in files older than that field)."""

    last_processed_tick: int
    last_applied_tick: int | None = None
    time: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "lastProcessedTick": str(self.last_processed_tick),
            "lastAppliedTick": str(self.last_applied_tick if self.last_applied_tick
                                   is not None else self.last_processed_tick),
            "time": self.time,
        }

    @classmethod
    def from_json(cls, data: Any) -> Cursor | None:
        """None without a usable ``lastProcessedTick``: a cursor without it says nothing."""
        d = as_dict(data)
        processed = as_opt_int(d.get("lastProcessedTick"))
        if processed is None:
            return None
        return cls(processed, as_opt_int(d.get("lastAppliedTick")), as_str(d.get("time")))

    def write(self, path: Path) -> None:
        write_doc(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> Cursor | None:
        doc = read_doc(path)
        return None if doc is None else cls.from_json(doc)
