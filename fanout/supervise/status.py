"""``fanout status``: gather supervisord's view, psutil figures and every state file into
one typed model, then judge the node's health.

Health, and the exit code of ``fanout status``:

- down (2): a process of this node holds its instance lock without supervisord knowing
  its pid (an orphan, e.g. after supervisord was killed with -9); supervisord does not
  answer; the node or the distributor is not RUNNING; any program is FATAL, BACKOFF,
  EXITED, STOPPED or UNKNOWN; a forwarder's state (written by its current process) says
  ``running: false``; the node's datalog is not writable, or its last
  ``WRITES_DOWN_AFTER`` writes or more all failed (every write fails).
- degraded (1): the node's last write failed (fewer in a row); a forwarder retries
  (phase ``backoff`` with a ``lastError``); a process restarted more than 3 times in 5
  minutes (a crash loop supervisord hides behind RUNNING); a program is STARTING; a
  RUNNING process has not written its state file for ``STALE_AFTER`` seconds (alive is
  not the same as working); a target file has no program or a program no target file
  (``fanout reload`` applies them); the alert listener is not RUNNING.
- healthy (0) otherwise.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from fanout.config import NodeConfig
from fanout.state import (
    DistributorState,
    ErrorInfo,
    ForwarderState,
    NodeState,
    distributor_state_path,
    forwarder_state_path,
    node_state_path,
)
from fanout.statefile import iso_now, read_json
from fanout.supervise import restarts
from fanout.supervise.alerts import last_error_line
from fanout.supervise.orphans import Orphan
from fanout.supervise.orphans import find as find_orphans
from fanout.supervise.paths import SupervisePaths
from fanout.supervise.programs import ALERTS, DISTRIBUTOR, FORWARDER_PREFIX, NODE, target_of
from fanout.target_config import target_files

STALE_AFTER = 15.0  # seconds without a state file write from a RUNNING process
WRITES_DOWN_AFTER = 5  # failed writes in a row that make the node count as down
DOWN_STATES = ("FATAL", "BACKOFF", "EXITED", "STOPPED", "UNKNOWN")


class Health(enum.IntEnum):
    """Values are the exit codes of ``fanout status``."""

    HEALTHY = 0
    DEGRADED = 1
    DOWN = 2


@dataclass
class SupervisorView:
    socket: str
    reachable: bool
    pid: int | None = None
    state: str | None = None
    error: str | None = None
    manager: str = "supervisord"  # or systemd: who runs the processes


@dataclass
class ProcessRow:
    name: str
    kind: str  # node | distributor | forwarder | listener | other
    state: str  # supervisord's state name, or MISSING (no program for a target file)
    pid: int | None = None
    uptime: float | None = None
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    restarts_5m: int = 0
    exit_status: int | None = None
    description: str = ""
    detail: str | None = None  # why it is down, when known (a config error, lastError)


@dataclass
class TargetRow:
    name: str
    process: str
    state: str
    phase: str | None = None
    running: bool | None = None
    applied_tick: int | None = None
    processed_tick: int | None = None
    ticks_behind: int | None = None
    pending_files: int | None = None
    pending_bytes: int | None = None
    pending_oldest_age: float | None = None
    last_error: dict[str, Any] | None = None  # the state file's lastError, as written
    state_age: float | None = None
    endpoint: str | None = None
    insecure: str | None = None  # plain http:// to a host that is not loopback: why


    @property
    def error_message(self) -> str | None:
        err = ErrorInfo.from_json(self.last_error)
        return err.message if err else None


@dataclass
class Status:
    node_id: str
    config: str
    state_dir: str
    supervisor: SupervisorView
    processes: list[ProcessRow] = field(default_factory=list)
    targets: list[TargetRow] = field(default_factory=list)
    node_state: dict[str, Any] = field(default_factory=dict)
    distributor_state: dict[str, Any] = field(default_factory=dict)
    node_state_age: float | None = None  # seconds since the state file was written
    distributor_state_age: float | None = None
    health: Health = Health.HEALTHY
    reasons: list[str] = field(default_factory=list)
    time: str = field(default_factory=iso_now)
    # live holders of a role lock supervisord does not know (fanout.supervise.orphans)
    orphans: list[Orphan] = field(default_factory=list)

    def process(self, name: str) -> ProcessRow | None:
        return next((p for p in self.processes if p.name == name), None)

    @property
    def node(self) -> NodeState | None:
        """``node_state`` read through its schema; None without a state file."""
        return NodeState.from_json(self.node_state) if self.node_state else None

    @property
    def distributor(self) -> DistributorState | None:
        return DistributorState.from_json(self.distributor_state) \
            if self.distributor_state else None


class CpuSampler:
    """CPU percent since the previous sample of the same pid (psutil needs two reads)."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def prime(self, pids: list[int]) -> None:
        for pid in pids:
            self._get(pid)

    def _get(self, pid: int) -> psutil.Process | None:
        p = self._procs.get(pid)
        if p is None:
            try:
                p = psutil.Process(pid)
                p.cpu_percent(None)
            except psutil.Error:
                return None
            self._procs[pid] = p
        return p

    def figures(self, pid: int) -> tuple[float | None, float | None, int | None]:
        """(cpu percent, uptime seconds, rss bytes), None where unknown."""
        p = self._get(pid)
        if p is None:
            return None, None, None
        try:
            with p.oneshot():
                return (round(p.cpu_percent(None), 1), max(0.0, time.time() - p.create_time()),
                        p.memory_info().rss)
        except psutil.Error:
            self._procs.pop(pid, None)
            return None, None, None

    def forget_except(self, pids: set[int]) -> None:
        for pid in list(self._procs):
            if pid not in pids:
                del self._procs[pid]


def kind_of(name: str) -> str:
    if name == NODE:
        return "node"
    if name == DISTRIBUTOR:
        return "distributor"
    if name == ALERTS:
        return "listener"
    if name.startswith(FORWARDER_PREFIX):
        return "forwarder"
    return "other"


def _state_age(path: Path, now: float) -> float | None:
    try:
        return max(0.0, now - os.stat(path).st_mtime)
    except OSError:
        return None


def gather(cfg: NodeConfig, sampler: CpuSampler | None = None,
           cpu_interval: float = 0.3) -> Status:
    """Everything ``fanout status`` shows, judged. A new sampler (a one-shot status)
    measures CPU over ``cpu_interval``; a kept one (``--watch``) since its last call."""
    from fanout.supervise.managers import manager_for

    paths = SupervisePaths.of(cfg)
    now = time.time()
    obs = manager_for(cfg).observe(cfg, now)
    sv_view = SupervisorView(obs.address, obs.reachable, obs.pid, obs.state, obs.error,
                             manager=obs.manager)
    infos = obs.processes
    live = [i for i in infos if i.pid > 0]
    counts = obs.restarts_5m
    if sampler is None:
        sampler = CpuSampler()
        sampler.prime([i.pid for i in live])
        if live:
            time.sleep(cpu_interval)
    sampler.forget_except({i.pid for i in live})

    st = Status(cfg.id, str(cfg.source), str(cfg.state_dir), sv_view)
    st.orphans = find_orphans(cfg.state_dir, {i.pid for i in live})
    node_path, dist_path = node_state_path(cfg.state_dir), distributor_state_path(cfg.state_dir)
    st.node_state = read_json(node_path) or {}
    st.distributor_state = read_json(dist_path) or {}
    st.node_state_age = _state_age(node_path, now)
    st.distributor_state_age = _state_age(dist_path, now)
    for info in infos:
        row = ProcessRow(info.name, kind_of(info.name), info.statename,
                         restarts_5m=counts.get(info.name, 0), description=info.description)
        if info.pid > 0:
            row.pid = info.pid
            row.cpu_percent, row.uptime, row.rss_bytes = sampler.figures(info.pid)
            if row.uptime is None:
                row.uptime = float(max(0, info.now - info.start))
        if info.statename == "EXITED":
            row.exit_status = info.exitstatus
        elif info.statename in ("FATAL", "BACKOFF"):
            row.exit_status = obs.exit_status.get(info.name, info.exitstatus)
        st.processes.append(row)

    names = [p.stem for p in target_files(cfg.targets_dir)]
    names += [t for i in infos if (t := target_of(i.name)) is not None and t not in names]
    for name in sorted(names):
        st.targets.append(_target_row(cfg, name, st, now))
        if sv_view.reachable and st.process(FORWARDER_PREFIX + name) is None:
            st.processes.append(ProcessRow(FORWARDER_PREFIX + name, "forwarder", "MISSING"))
    order = {"node": 0, "distributor": 1, "forwarder": 2, "other": 3, "listener": 4}
    st.processes.sort(key=lambda r: (order[r.kind], r.name))
    for row in st.processes:
        if row.state in DOWN_STATES or (row.state == "RUNNING" and row.kind == "forwarder"):
            row.detail = obs.details.get(row.name) if row.state != "RUNNING" else None
            row.detail = row.detail or _detail(paths, row, st)
    judge(st, now)
    return st




def _endpoint_of(cfg: NodeConfig, name: str) -> str | None:
    """The target file's sink endpoint, read leniently (status shows broken files too)."""
    import yaml

    try:
        data = yaml.safe_load((cfg.targets_dir / f"{name}.yaml").read_text())
        endpoint = data["sink"]["endpoint"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return endpoint if isinstance(endpoint, str) else None


def _target_row(cfg: NodeConfig, name: str, st: Status, now: float) -> TargetRow:
    proc = FORWARDER_PREFIX + name
    info = st.process(proc)
    row = TargetRow(name, proc, info.state if info else "MISSING")
    row.endpoint = _endpoint_of(cfg, name)
    if row.endpoint:
        from fanout.tlsconfig import insecure_reason

        row.insecure = insecure_reason(row.endpoint)
    path = forwarder_state_path(cfg.state_dir, name)
    data = ForwarderState.read(path)
    if data is None:
        return row
    row.state_age = _state_age(path, now)
    row.phase = data.phase
    row.running = data.running
    row.last_error = None if data.last_error is None else data.last_error.to_json()
    if data.brief:  # stopped before it had figures (a config error)
        return row
    row.applied_tick = data.last_applied_tick
    row.processed_tick = data.last_processed_tick
    row.ticks_behind = data.ticks_behind
    node = st.node
    if node is not None:
        row.ticks_behind = max(0, node.last_log_tick - data.last_processed_tick)
    row.pending_files = data.pending.files
    row.pending_bytes = data.pending.bytes
    row.pending_oldest_age = data.pending.oldest_age_seconds
    return row


def _detail(paths: SupervisePaths, row: ProcessRow, st: Status) -> str | None:
    """Why a process is down: the last ``Error:`` it printed (a config error names the
    file and key), else the lastError of its state file."""
    if row.state != "RUNNING":
        line = last_error_line(paths.logs_dir / f"{row.name}.log")
        if line:
            return line
    target = target_of(row.name)
    if target is not None:
        t = next((t for t in st.targets if t.name == target), None)
        if t is not None and t.last_error and (row.state != "RUNNING" or t.phase == "backoff"):
            return t.error_message
        return None
    # the node's lastError is a bare message about a commit, not why it is down
    dist = st.distributor if row.kind == "distributor" else None
    if row.state != "RUNNING" and dist is not None and dist.last_error is not None:
        return dist.last_error.message
    return None


def judge(st: Status, now: float | None = None) -> None:
    """Set ``st.health`` and ``st.reasons`` (down reasons first)."""
    now = time.time() if now is None else now
    down: list[str] = []
    degraded: list[str] = []
    for o in st.orphans:
        down.append(f"orphan: {o} runs without {st.supervisor.manager} knowing it; "
                    "stop it with fanout down")
    if not st.supervisor.reachable:
        down.append(f"{st.supervisor.manager} is not running "
                    f"({st.supervisor.error or 'no answer'})")
    else:
        for required in (NODE, DISTRIBUTOR):
            row = st.process(required)
            if row is None:
                down.append(f"{required}: no such program in {st.supervisor.manager}")
            elif row.state != "RUNNING":
                down.append(f"{required} is {row.state}" + (f": {row.detail}" if row.detail
                                                             else ""))
    for row in st.processes:
        if row.name in (NODE, DISTRIBUTOR):
            pass
        elif row.kind == "listener" and row.state != "RUNNING":
            degraded.append(f"alert listener is {row.state}: no alerts are sent")
        elif row.state in DOWN_STATES:
            why = f"{row.name} is {row.state}"
            if row.state == "EXITED" and row.exit_status is not None:
                why += f" (exit {row.exit_status})"
            down.append(why + (f": {row.detail}" if row.detail else ""))
        elif row.state == "MISSING":
            degraded.append(f"{row.name}: target file has no program; run fanout reload")
        elif row.state == "STARTING":
            degraded.append(f"{row.name} is STARTING")
        if row.restarts_5m > restarts.LOOP_THRESHOLD:
            degraded.append(f"{row.name} restarted {row.restarts_5m} times in "
                            f"{restarts.WINDOW / 60:.0f} minutes (crash loop)")
    if st.supervisor.reachable:
        _judge_writes(st, down, degraded)
        _judge_targets(st, down, degraded)
        _judge_stale(st, degraded)
    _judge_histories(st, degraded)
    st.reasons = down + degraded
    st.health = Health.DOWN if down else Health.DEGRADED if degraded else Health.HEALTHY


def _judge_writes(st: Status, down: list[str], degraded: list[str]) -> None:
    """A node that serves reads and its state file while every write fails is not
    healthy: its state file's ``writes`` says so (failures in a row, datalog probe)."""
    row = st.process(NODE)
    if row is None or row.state != "RUNNING" or row.uptime is None:
        return
    age = st.node_state_age
    if age is None or age > row.uptime:
        return  # written by an earlier process: says nothing about this one
    node = st.node
    if node is None:
        return
    w = node.writes
    n = w.failing_in_row
    last = w.last_error.message if w.last_error else None
    failing = f"the last {n} write(s) failed: {last}" if n else None
    if not w.datalog_writable:
        down.append(f"node: every write fails: {w.datalog_error}"
                    + (f" ({failing})" if failing else ""))
    elif failing:
        (down if n >= WRITES_DOWN_AFTER else degraded).append(f"node: {failing}")


def _judge_histories(st: Status, degraded: list[str]) -> None:
    """A divergence (this node holds writes an origin no longer has) or an id collision
    (another live node uses this node's id) is degraded until the node restarts: the
    operator must look, even though replication goes on."""
    node = st.node
    if node is None:
        return
    rep = node.replication
    latest = {d.origin: d.message for d in rep.divergence}
    for origin, message in sorted(latest.items()):
        degraded.append(f"node: divergence from origin {origin}: {message}")
    if rep.last_collision is not None:
        degraded.append(f"node: refused replicated writes: {rep.last_collision.message}")


def _judge_targets(st: Status, down: list[str], degraded: list[str]) -> None:
    files = {t.name for t in st.targets}
    for t in st.targets:
        proc = st.process(t.process)
        if proc is None or proc.state != "RUNNING":
            continue  # judged as a process
        fresh = (t.state_age is not None and proc.uptime is not None
                 and t.state_age <= proc.uptime)  # written by the current process
        err = t.error_message
        if fresh and t.running is False:
            down.append(f"{t.process} stopped replicating ({t.phase})"
                        + (f": {err}" if err else ""))
        elif fresh and t.phase == "backoff" and err:
            degraded.append(f"{t.process} is retrying: {err}")
    for row in st.processes:
        target = target_of(row.name)
        if target is not None and target not in files:
            degraded.append(f"{row.name}: its target file is gone; run fanout reload")


def _judge_stale(st: Status, degraded: list[str]) -> None:
    ages = {NODE: st.node_state_age, DISTRIBUTOR: st.distributor_state_age}
    for t in st.targets:
        ages[t.process] = t.state_age
    for name, age in ages.items():
        row = st.process(name)
        if row is None or row.state != "RUNNING" or row.uptime is None:
            continue
        if row.uptime > STALE_AFTER and (age is None or age > STALE_AFTER):
            what = "no state file" if age is None else f"state file not updated for {age:.0f}s"
            degraded.append(f"{name}: {what} (hung?)")

