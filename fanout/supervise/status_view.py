"""``fanout status`` output: a table for people, JSON for machines (ticks as strings).

Both print the same model (``fanout.supervise.status.Status``).
"""

from __future__ import annotations

from typing import Any

from fanout.state.common import error_json
from fanout.supervise.status import ProcessRow, Status, TargetRow

ERROR_WIDTH = 60


def _tick(value: int | None) -> str | None:
    return None if value is None else str(value)


def process_json(p: ProcessRow) -> dict[str, Any]:
    return {
        "name": p.name,
        "kind": p.kind,
        "state": p.state,
        "pid": p.pid,
        "uptimeSeconds": None if p.uptime is None else round(p.uptime, 1),
        "cpuPercent": p.cpu_percent,
        "rssBytes": p.rss_bytes,
        "restarts5m": p.restarts_5m,
        "exitStatus": p.exit_status,
        "description": p.description,
        "detail": p.detail,
    }


def target_json(t: TargetRow) -> dict[str, Any]:
    return {
        "name": t.name,
        "process": t.process,
        "state": t.state,
        "phase": t.phase,
        "running": t.running,
        "lastAppliedTick": _tick(t.applied_tick),
        "lastProcessedTick": _tick(t.processed_tick),
        "ticksBehind": _tick(t.ticks_behind),
        "pending": {"files": t.pending_files, "bytes": t.pending_bytes,
                    "oldestAgeSeconds": t.pending_oldest_age},
        "lastError": t.last_error,
        "stateAgeSeconds": None if t.state_age is None else round(t.state_age, 1),
        "endpoint": t.endpoint,
        "insecure": t.insecure,  # why its token crosses the network in clear, or None
    }


def as_json(st: Status) -> dict[str, Any]:
    ns, ds = st.node, st.distributor
    return {
        "time": st.time,
        "health": st.health.name.lower(),
        "exitCode": int(st.health),
        "reasons": st.reasons,
        "node": {
            "id": st.node_id,
            "config": st.config,
            "stateDir": st.state_dir,
            "running": ns.running if ns else None,
            "phase": ns.phase if ns else None,
            "lastLogTick": _tick(ns.last_log_tick) if ns else None,
            "totalEvents": ns.total_events if ns else None,
            "lastError": ns.last_error if ns else None,
        },
        "distributor": {
            "running": ds.running if ds else None,
            "phase": ds.phase if ds else None,
            "datalogBacklogFiles": ds.datalog_backlog_files if ds else None,
            "filesLinked": ds.files_linked if ds else None,
            "lastError": error_json(ds.last_error) if ds else None,
        },
        "supervisor": {
            "manager": st.supervisor.manager,
            "reachable": st.supervisor.reachable,
            "pid": st.supervisor.pid,
            "state": st.supervisor.state,
            "socket": st.supervisor.socket,
            "error": st.supervisor.error,
        },
        "processes": [process_json(p) for p in st.processes],
        "targets": [target_json(t) for t in st.targets],
        "orphans": [{"role": o.role, "pid": o.pid, "cmdline": o.cmdline} for o in st.orphans],
    }


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _grid(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
    return out


def _truncate(text: str, width: int = ERROR_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def table(st: Status) -> str:
    lines = [f"fanout node {st.node_id}: {st.health.name} (exit {int(st.health)})"]
    lines += [f"  - {r}" for r in st.reasons]
    sv = st.supervisor
    lines.append(f"{sv.manager}: pid {sv.pid}, {sv.state}" if sv.reachable
                 else f"{sv.manager}: not running ({sv.socket})")
    node = st.node
    if node is not None:
        lines.append(f"node last log tick: {node.last_log_tick}")
    lines.append("")
    rows = [[p.name, p.state, _cell(p.pid), duration(p.uptime),
             "-" if p.cpu_percent is None else f"{p.cpu_percent:.1f}",
             "-" if p.rss_bytes is None else f"{p.rss_bytes / 1e6:.1f}",
             str(p.restarts_5m)] for p in st.processes]
    if rows:
        lines += _grid(["PROCESS", "STATE", "PID", "UPTIME", "CPU%", "RSS MB", "RESTARTS/5M"],
                       rows, right={2, 3, 4, 5, 6})
    else:
        lines.append(f"no process information: {sv.manager} is not running")
    if st.orphans:
        lines.append("")
        lines += _grid(["ORPHAN", "PID", "COMMAND"],
                       [[o.role, str(o.pid), _truncate(o.cmdline, 100)] for o in st.orphans],
                       right={1})
    if st.targets:
        lines.append("")
        trows = []
        for t in st.targets:
            err = t.error_message
            name = f"{t.name} (INSECURE)" if t.insecure else t.name
            trows.append([name, t.phase or "-", _cell(t.applied_tick), _cell(t.ticks_behind),
                          _cell(t.pending_files), size(t.pending_bytes),
                          duration(t.pending_oldest_age) if t.pending_files else "-",
                          _truncate(str(err)) if err else "-"])
        lines += _grid(["TARGET", "PHASE", "APPLIED", "BEHIND", "FILES", "BYTES", "OLDEST",
                        "LAST ERROR"], trows, right={2, 3, 4, 5, 6})
    return "\n".join(lines) + "\n"
