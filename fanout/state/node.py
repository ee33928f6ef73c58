"""``state_dir/node.json``: the node's once-a-second state (``fanout status``, ``/metrics``,
the forwarders' ``lastAvailableTick``). Ticks and marks are decimal strings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout.state.common import ErrorInfo, error_json, read_doc, write_doc
from fanout.state.fields import (
    as_bool,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_opt_str,
    as_str,
)

NODE_STATE_FILE = "node.json"


def node_state_path(state_dir: Path) -> Path:
    return Path(state_dir) / NODE_STATE_FILE


@dataclass
class WriteFigures:
    """``writes``: whether client writes commit (read by status to call a node down)."""

    failing_in_row: int = 0
    total_failed: int = 0
    last_error: ErrorInfo | None = None
    datalog_writable: bool = True
    datalog_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "failingInRow": self.failing_in_row,
            "totalFailed": self.total_failed,
            "lastError": error_json(self.last_error),
            "datalogWritable": self.datalog_writable,
            "datalogError": self.datalog_error,
        }

    @classmethod
    def from_json(cls, data: Any) -> WriteFigures:
        d = as_dict(data)
        return cls(as_int(d.get("failingInRow")), as_int(d.get("totalFailed")),
                   ErrorInfo.from_json(d.get("lastError")),
                   as_bool(d.get("datalogWritable"), True), as_opt_str(d.get("datalogError")))


def _base_json(base: tuple[str, int] | None) -> list[str] | None:
    return None if base is None else [base[0], str(base[1])]


def _base(value: Any) -> tuple[str, int] | None:
    v = as_list(value)
    if len(v) == 2 and isinstance(v[0], str):
        return (v[0], as_int(v[1]))
    return None


@dataclass
class Divergence:
    """One origin that went back in time (restored from an older copy, or re-created)."""

    origin: str
    history: str
    base: tuple[str, int] | None
    ahead: int
    time: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "history": self.history, "base": _base_json(self.base),
                "ahead": self.ahead, "time": self.time, "message": self.message}

    @classmethod
    def from_json(cls, data: Any) -> Divergence:
        d = as_dict(data)
        return cls(as_str(d.get("origin")), as_str(d.get("history")), _base(d.get("base")),
                   as_int(d.get("ahead")), as_str(d.get("time")), as_str(d.get("message")))


@dataclass
class Collision:
    """A replicated write of this node's id from a history it never had (error 1420)."""

    origin: str
    history: str
    time: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "history": self.history, "time": self.time,
                "message": self.message}

    @classmethod
    def from_json(cls, data: Any) -> Collision | None:
        if not isinstance(data, Mapping):
            return None
        return cls(as_str(data.get("origin")), as_str(data.get("history")),
                   as_str(data.get("time")), as_str(data.get("message")))


@dataclass
class ReplicationFigures:
    """``replication``: what forwarders sent this node."""

    batches: int = 0
    records: int = 0
    loops: int = 0
    duplicates: int = 0
    gaps: int = 0
    collisions: int = 0
    last_collision: Collision | None = None
    divergence: list[Divergence] = field(default_factory=list)

    @property
    def divergent_origins(self) -> list[str]:
        return sorted({d.origin for d in self.divergence})

    def to_json(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "records": self.records,
            "loops": self.loops,
            "duplicates": self.duplicates,
            "gaps": self.gaps,
            "collisions": self.collisions,
            "lastCollision": None if self.last_collision is None
            else self.last_collision.to_json(),
            "divergence": [d.to_json() for d in self.divergence],
            "divergentOrigins": self.divergent_origins,
        }

    @classmethod
    def from_json(cls, data: Any) -> ReplicationFigures:
        d = as_dict(data)
        return cls(as_int(d.get("batches")), as_int(d.get("records")), as_int(d.get("loops")),
                   as_int(d.get("duplicates")), as_int(d.get("gaps")),
                   as_int(d.get("collisions")), Collision.from_json(d.get("lastCollision")),
                   [Divergence.from_json(x) for x in as_list(d.get("divergence"))
                    if isinstance(x, Mapping)])


@dataclass
class TLSFigures:
    """``tls``: the certificate being served and the last reload's outcome (SIGHUP or
    ``fanout reload``); ``lastError`` is set while a reload failed and the old certificate
    is still served."""

    cert_file: str = ""
    subject: str = ""
    not_before: str = ""
    not_after: str = ""
    mutual: bool = False
    reloads: int = 0
    last_reload: str | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"certFile": self.cert_file, "subject": self.subject,
                "notBefore": self.not_before, "notAfter": self.not_after,
                "mutual": self.mutual, "reloads": self.reloads,
                "lastReload": self.last_reload, "lastError": self.last_error}

    @classmethod
    def from_json(cls, data: Any) -> TLSFigures | None:
        if not isinstance(data, dict):
            return None
        return cls(as_str(data.get("certFile")), as_str(data.get("subject")),
                   as_str(data.get("notBefore")), as_str(data.get("notAfter")),
                   as_bool(data.get("mutual")), as_int(data.get("reloads")),
                   as_opt_str(data.get("lastReload")), as_opt_str(data.get("lastError")))


@dataclass
class NodeState:
    """The whole of ``node.json``. ``last_error`` is the committer's last failure, a plain
    message (the write-health error with its time is in ``writes``)."""

    phase: str = "starting"
    running: bool = False
    server_id: str = ""
    last_log_tick: int = 0
    total_events: int = 0
    time: str = ""
    started: float = 0.0
    total_requests: int = 0
    total_rejected: int = 0
    total_commits: int = 0
    total_files: int = 0
    total_points: int = 0
    total_duplicates: int = 0
    total_gaps: int = 0
    gap_origins: dict[str, int] = field(default_factory=dict)
    failed_commits: int = 0
    last_error: str | None = None
    writes: WriteFigures = field(default_factory=WriteFigures)
    marks: dict[str, int] = field(default_factory=dict)
    history: str | None = None
    history_base: tuple[str, int] | None = None
    replication: ReplicationFigures = field(default_factory=ReplicationFigures)
    pid: int = field(default_factory=os.getpid)
    process: str = "node"
    tls: TLSFigures | None = None  # None: plain HTTP

    def to_json(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "pid": self.pid,
            "phase": self.phase,
            "running": self.running,
            "serverId": self.server_id,
            "lastLogTick": str(self.last_log_tick),
            "totalEvents": self.total_events,
            "time": self.time,
            "started": self.started,
            "totalRequests": self.total_requests,
            "totalRejected": self.total_rejected,
            "totalCommits": self.total_commits,
            "totalFiles": self.total_files,
            "totalPoints": self.total_points,
            "totalDuplicates": self.total_duplicates,
            "totalGaps": self.total_gaps,
            "gapOrigins": dict(self.gap_origins),
            "failedCommits": self.failed_commits,
            "lastError": self.last_error,
            "writes": self.writes.to_json(),
            "marks": {k: str(v) for k, v in self.marks.items()},
            "history": self.history,
            "historyBase": _base_json(self.history_base),
            "replication": self.replication.to_json(),
            "tls": None if self.tls is None else self.tls.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any) -> NodeState:
        d = as_dict(data)
        return cls(
            phase=as_str(d.get("phase"), "unknown"),
            running=as_bool(d.get("running")),
            server_id=as_str(d.get("serverId")),
            last_log_tick=as_int(d.get("lastLogTick")),
            total_events=as_int(d.get("totalEvents")),
            time=as_str(d.get("time")),
            started=as_float(d.get("started")),
            total_requests=as_int(d.get("totalRequests")),
            total_rejected=as_int(d.get("totalRejected")),
            total_commits=as_int(d.get("totalCommits")),
            total_files=as_int(d.get("totalFiles")),
            total_points=as_int(d.get("totalPoints")),
            total_duplicates=as_int(d.get("totalDuplicates")),
            total_gaps=as_int(d.get("totalGaps")),
            gap_origins={str(k): as_int(v) for k, v in as_dict(d.get("gapOrigins")).items()},
            failed_commits=as_int(d.get("failedCommits")),
            last_error=as_opt_str(d.get("lastError")),
            writes=WriteFigures.from_json(d.get("writes")),
            marks={str(k): as_int(v) for k, v in as_dict(d.get("marks")).items()},
            history=as_opt_str(d.get("history")),
            history_base=_base(d.get("historyBase")),
            replication=ReplicationFigures.from_json(d.get("replication")),
            pid=as_int(d.get("pid")),
            process=as_str(d.get("process"), "node"),
            tls=TLSFigures.from_json(d.get("tls")),
        )

    def write(self, path: Path) -> None:
        write_doc(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> NodeState | None:
        """None when the file is missing or not a JSON object."""
        doc = read_doc(path)
        return None if doc is None else cls.from_json(doc)
