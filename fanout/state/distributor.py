"""``state_dir/distributor.json``: the distributor's counters and per-target backlog."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout.state.common import ErrorInfo, error_json, read_doc, write_doc
from fanout.state.fields import (
    as_bool,
    as_dict,
    as_int,
    as_opt_float,
    as_opt_int,
    as_opt_str,
    as_str,
)

DISTRIBUTOR_STATE_FILE = "distributor.json"


def distributor_state_path(state_dir: Path) -> Path:
    return Path(state_dir) / DISTRIBUTOR_STATE_FILE


@dataclass
class Retention:
    max_files: int | None = None
    max_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"max_files": self.max_files, "max_bytes": self.max_bytes}

    @classmethod
    def from_json(cls, data: Any) -> Retention:
        d = as_dict(data)
        return cls(as_opt_int(d.get("max_files")), as_opt_int(d.get("max_bytes")))


@dataclass
class TargetBacklog:
    """One target directory as the distributor sees it (backlog approximate between two
    audits)."""

    source_dir: str = ""
    config: str = ""
    retention: Retention = field(default_factory=Retention)
    files_linked: int = 0
    bytes_linked: int = 0
    backlog_files: int = 0
    backlog_bytes: int = 0
    oldest_age_seconds: float | None = None
    dropped: int = 0
    dropped_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "source_dir": self.source_dir,
            "config": self.config,
            "retention": self.retention.to_json(),
            "filesLinked": self.files_linked,
            "bytesLinked": self.bytes_linked,
            "backlogFiles": self.backlog_files,
            "backlogBytes": self.backlog_bytes,
            "oldestAgeSeconds": self.oldest_age_seconds,
            "dropped": self.dropped,
            "droppedBytes": self.dropped_bytes,
        }

    @classmethod
    def from_json(cls, data: Any) -> TargetBacklog:
        d = as_dict(data)
        return cls(as_str(d.get("source_dir")), as_str(d.get("config")),
                   Retention.from_json(d.get("retention")), as_int(d.get("filesLinked")),
                   as_int(d.get("bytesLinked")), as_int(d.get("backlogFiles")),
                   as_int(d.get("backlogBytes")), as_opt_float(d.get("oldestAgeSeconds")),
                   as_int(d.get("dropped")), as_int(d.get("droppedBytes")))


@dataclass
class DistributorState:
    """The whole of ``distributor.json``; ``note`` is written only when set."""

    phase: str = "starting"
    running: bool = False
    time: str = ""
    start_time: str = ""
    datalog_dir: str = ""
    files_linked: int = 0
    bytes_linked: int = 0
    files_removed: int = 0
    files_in_flight: int = 0
    datalog_backlog_files: int = 0
    rescans: int = 0
    overflows: int = 0
    last_error: ErrorInfo | None = None
    targets: dict[str, TargetBacklog] = field(default_factory=dict)
    note: str | None = None
    pid: int = field(default_factory=os.getpid)
    process: str = "distributor"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "process": self.process,
            "pid": self.pid,
            "phase": self.phase,
            "running": self.running,
            "time": self.time,
            "startTime": self.start_time,
            "datalogDir": self.datalog_dir,
            "filesLinked": self.files_linked,
            "bytesLinked": self.bytes_linked,
            "filesRemoved": self.files_removed,
            "filesInFlight": self.files_in_flight,
            "datalogBacklogFiles": self.datalog_backlog_files,
            "rescans": self.rescans,
            "overflows": self.overflows,
            "lastError": error_json(self.last_error),
            "targetCount": len(self.targets),
            "targets": {name: t.to_json() for name, t in self.targets.items()},
        }
        if self.note is not None:
            doc["note"] = self.note
        return doc

    @classmethod
    def from_json(cls, data: Any) -> DistributorState:
        d = as_dict(data)
        return cls(
            phase=as_str(d.get("phase"), "unknown"),
            running=as_bool(d.get("running")),
            time=as_str(d.get("time")),
            start_time=as_str(d.get("startTime")),
            datalog_dir=as_str(d.get("datalogDir")),
            files_linked=as_int(d.get("filesLinked")),
            bytes_linked=as_int(d.get("bytesLinked")),
            files_removed=as_int(d.get("filesRemoved")),
            files_in_flight=as_int(d.get("filesInFlight")),
            datalog_backlog_files=as_int(d.get("datalogBacklogFiles")),
            rescans=as_int(d.get("rescans")),
            overflows=as_int(d.get("overflows")),
            last_error=ErrorInfo.from_json(d.get("lastError")),
            targets={str(k): TargetBacklog.from_json(v)
                     for k, v in as_dict(d.get("targets")).items()},
            note=as_opt_str(d.get("note")),
            pid=as_int(d.get("pid")),
            process=as_str(d.get("process"), "distributor"),
        )

    def write(self, path: Path) -> None:
        write_doc(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> DistributorState | None:
        doc = read_doc(path)
        return None if doc is None else cls.from_json(doc)
