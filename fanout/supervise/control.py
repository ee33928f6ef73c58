"""``fanout up``, ``down`` and ``reload``: one supervisord per node, driven over XML-RPC.

- ``up`` loads and checks every configuration file first (a ConfigError stops it, exit
  78), renders the supervisord files, starts ``supervisord -c CONF`` (``-n`` in the
  foreground, replacing this process) and waits until its socket answers and every
  program has settled (RUNNING, or FATAL/EXITED).
- ``down`` asks supervisord to shut down (it stops every program with SIGTERM to its
  process group) and waits until supervisord and every program it ran are gone; whatever
  outlives the timeout is killed, so no process is left behind.
- ``reload`` re-renders ``programs.d/`` from ``forwarders.d/`` and applies only the
  difference: groups of added targets are added (and so started), groups of removed
  targets stopped and removed; every other process keeps running with its pid. A target
  file that does not load is still given its program (it goes FATAL and ``status`` names
  the error) and makes ``reload`` exit 78 after applying the rest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from fanout.config import NodeConfig, load_node_config
from fanout.errors import ConfigError, FanoutError
from fanout.node.tokens import load_tokens
from fanout.supervise import orphans, restarts
from fanout.supervise.paths import SupervisePaths
from fanout.supervise.programs import DISTRIBUTOR, FORWARDER_PREFIX, NODE
from fanout.supervise.rpc import RPCFault, Supervisor, Unreachable
from fanout.supervise.supervisord_conf import write_config, write_programs
from fanout.target_config import check_target_file, load_target_config, target_files

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
SETTLED = ("RUNNING", "FATAL", "EXITED")


class SupervisordFailed(FanoutError):
    """supervisord did not start, or did not stop in time."""


def load_checked(config: Path) -> NodeConfig:
    """The node config, its tokens and every target file, strictly (ConfigError)."""
    cfg = load_node_config(config)
    load_tokens(cfg.tokens_file)
    for path in target_files(cfg.targets_dir):
        load_target_config(path).sink.secret()
        check_target_file(path, cfg)
    return cfg


def check_targets(cfg: NodeConfig) -> list[ConfigError]:
    """Every target file's problem, without stopping at the first."""
    errors: list[ConfigError] = []
    for path in target_files(cfg.targets_dir):
        try:
            load_target_config(path).sink.secret()
        except ConfigError as exc:
            errors.append(exc)
    return errors


def supervisord_argv(paths: SupervisePaths, foreground: bool) -> list[str]:
    argv = [sys.executable, "-m", "supervisor.supervisord", "-c", str(paths.conf)]
    return [*argv, "-n"] if foreground else argv


def running_pid(paths: SupervisePaths) -> int | None:
    """supervisord's pid if it answers on the node's socket."""
    if not paths.socket.exists():
        return None
    with Supervisor(paths.socket, timeout=5.0) as sv:
        try:
            return sv.pid()
        except Unreachable:
            return None


@dataclass
class UpResult:
    pid: int
    already: bool
    states: dict[str, str] = field(default_factory=dict)

    @property
    def all_running(self) -> bool:
        return all(s == "RUNNING" for s in self.states.values())


def up(config: Path, foreground: bool = False, timeout: float = START_TIMEOUT) -> UpResult:
    cfg = load_checked(config)
    paths = SupervisePaths.of(cfg)
    pid = running_pid(paths)
    if pid is not None:
        return UpResult(pid, already=True)
    found = orphans.find(cfg.state_dir)  # supervisord is not running: every holder is one
    if found:
        raise orphans.OrphansRunning(found, cfg.source)
    write_config(cfg)
    restarts.reset(paths.restarts)
    argv = supervisord_argv(paths, foreground)
    if foreground:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)
    # A file, not a pipe, for its output: the daemon must not hold our pipe open.
    with tempfile.TemporaryFile() as out:
        rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            cwd=cfg.base_dir, check=False).returncode
        out.seek(0)
        text = out.read().decode(errors="replace").strip()
    if rc != 0:
        raise SupervisordFailed(f"supervisord -c {paths.conf} exited with {rc}: {text}")
    return UpResult(*_wait_started(paths, timeout))


def _wait_started(paths: SupervisePaths, timeout: float) -> tuple[int, bool, dict[str, str]]:
    deadline = time.monotonic() + timeout
    with Supervisor(paths.socket, timeout=5.0) as sv:
        while True:
            try:
                pid = sv.pid()
                states = {p.name: p.statename for p in sv.processes()}
                # Right after start, programs are STOPPED until supervisord's main loop
                # first spawns them; BACKOFF goes on to STARTING or FATAL.
                if states and all(s in SETTLED for s in states.values()):
                    return pid, False, states
            except Unreachable:
                pass
            if time.monotonic() > deadline:
                raise SupervisordFailed(
                    f"supervisord did not answer on {paths.socket} with every program "
                    f"settled within {timeout:.0f}s; see {paths.logs_dir}/supervisord.log")
            time.sleep(0.2)


@dataclass
class DownResult:
    was_running: bool
    killed: list[int] = field(default_factory=list)
    orphans: list[orphans.Orphan] = field(default_factory=list)  # stopped, without supervisord


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pidfile_pid(paths: SupervisePaths) -> int | None:
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmd = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return None
    return pid if "supervisord" in cmd and str(paths.conf) in cmd else None


def down(config: Path, timeout: float = STOP_TIMEOUT) -> DownResult:
    cfg = load_node_config(config)
    paths = SupervisePaths.of(cfg)
    with Supervisor(paths.socket, timeout=10.0) as sv:
        try:
            pid = sv.pid()
            children = [p.pid for p in sv.processes() if p.pid > 0]
            sv.shutdown()
        except Unreachable:
            from_file = _pidfile_pid(paths)
            if from_file is None:
                found = orphans.find(cfg.state_dir)
                killed = orphans.stop([o.pid for o in found])
                return DownResult(was_running=False, killed=killed, orphans=found)
            pid = from_file
            # alive but not answering: a hung supervisord; its children are its own
            children = [c.pid for c in psutil.Process(pid).children()]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (_alive(pid) or any(map(_alive, children))):
        time.sleep(0.1)
    killed = []
    # programs first (each leads its own process group), then supervisord itself
    for p in children:
        if _alive(p):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p, signal.SIGKILL)
            killed.append(p)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    # anything still holding a role lock was not supervisord's (started by hand, or left
    # by an earlier supervisord killed with -9)
    found = orphans.find(cfg.state_dir)
    killed += orphans.stop([o.pid for o in found])
    return DownResult(was_running=True, killed=killed, orphans=found)


@dataclass
class ReloadResult:
    added: list[str]
    removed: list[str]
    changed: list[str]
    errors: list[ConfigError]


def has_sink_tls(path: Path) -> bool:
    """Whether a target file sets ``sink.tls`` (its forwarder re-reads those files on
    SIGHUP); read leniently: a broken file is reported by the checks, not here."""
    import yaml

    try:
        return bool(yaml.safe_load(path.read_text())["sink"].get("tls"))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return False


def reload(config: Path) -> ReloadResult:
    cfg = load_node_config(config)
    paths = SupervisePaths.of(cfg)
    errors = check_targets(cfg)
    with Supervisor(paths.socket) as sv:
        sv.pid()  # Unreachable before anything is written
        write_programs(cfg)
        added, changed, removed = sv.reload_config()
        for name in removed:
            sv.stop_group(name)
            sv.remove_group(name)
        restarts.forget(paths.restarts, removed)
        for name in added:
            sv.add_group(name)
        if added or removed:
            # the distributor re-reads forwarders.d/ on SIGHUP instead of within seconds
            with contextlib.suppress(RPCFault):
                sv.signal(DISTRIBUTOR, "HUP")
        if cfg.tls is not None:
            # the node re-reads its certificate files (a renewal needs no restart)
            with contextlib.suppress(RPCFault):
                sv.signal(NODE, "HUP")
        for path in target_files(cfg.targets_dir):
            if FORWARDER_PREFIX + path.stem in added or not has_sink_tls(path):
                continue
            # forwarders re-read their sink.tls files (a renewed client certificate)
            with contextlib.suppress(RPCFault):
                sv.signal(FORWARDER_PREFIX + path.stem, "HUP")
    return ReloadResult(sorted(added), sorted(removed), sorted(changed), errors)

