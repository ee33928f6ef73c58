"""``manager: systemd``: ``fanout up|down|reload|status`` through ``systemctl``.

The units are the templates of ``fanout systemd-units`` (installed by the operator, usually
in ``/etc/systemd/system``); this module only starts, stops and reads their instances:

- ``up`` checks every config file (exit 78), checks that the installed units read this
  ``fanout.yaml``, makes each forwarder instance wanted by ``fanout@<id>.target``
  (``systemctl add-wants``), then starts the target and every instance and waits for them
  (a ``Type=notify`` start returns at READY, or when the process failed).
- ``down`` stops the target and every instance of the node (``KillMode=control-group``:
  nothing survives a stop), then stops whatever still holds a role lock.
- ``reload`` starts the forwarder instances of added target files and stops the ones of
  removed files (and removes them from the target); the others keep their pids. The
  distributor gets SIGHUP to re-read ``forwarders.d/`` at once.
- ``observe`` reads ``systemctl show`` (ActiveState, SubState, MainPID, NRestarts,
  ExecMainStatus, Result) and maps it to supervisord's state names.

Crash loops: systemd counts automatic restarts in ``NRestarts`` (reset by a manual start,
so by ``fanout up``). ``status`` keeps samples of it in ``state_dir/supervisor/
nrestarts.json`` and reports the restarts of the last five minutes; without a sample older
than that, every restart since the last manual start counts (it errs towards showing a loop).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from fanout.config import NodeConfig, load_node_config
from fanout.errors import ConfigError, FanoutError
from fanout.supervise import orphans, restarts
from fanout.supervise.control import (
    DownResult,
    ReloadResult,
    UpResult,
    check_targets,
    has_sink_tls,
    load_checked,
)
from fanout.supervise.manager import Observation
from fanout.supervise.paths import SupervisePaths
from fanout.supervise.programs import DISTRIBUTOR, FORWARDER_PREFIX, NODE
from fanout.supervise.rpc import ProcessInfo
from fanout.supervise.systemd_units import (
    distributor_unit,
    forwarder_unit,
    node_unit,
    target_unit,
)
from fanout.target_config import target_files

SYSTEMCTL_TIMEOUT = 150.0
STOP_TIMEOUT = 60.0
PROPS = ("Id", "LoadState", "ActiveState", "SubState", "MainPID", "NRestarts",
         "ExecMainStatus", "ExecMainCode", "Result", "Description",
         "ExecMainStartTimestampMonotonic")
# systemd's (ActiveState, SubState) in supervisord's words: one set of health rules
_ACTIVE = {"active": "RUNNING", "reloading": "RUNNING", "failed": "FATAL",
           "inactive": "STOPPED", "deactivating": "STOPPING", "maintenance": "STOPPING"}


class SystemdError(FanoutError):
    """systemctl failed, or the installed units do not serve this node."""


def systemctl(*args: str, check: bool = True,
              timeout: float = SYSTEMCTL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemctl")
    if exe is None:
        err = SystemdError("systemctl is not installed, but fanout.yaml says manager: systemd")
        err.hint = "install systemd, or set manager: supervisord"
        raise err
    res = subprocess.run([exe, "--no-pager", *args], capture_output=True, text=True,
                         timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise SystemdError(f"systemctl {' '.join(args)} exited {res.returncode}: "
                           f"{(res.stderr or res.stdout).strip()}")
    return res


def show(units: list[str]) -> dict[str, dict[str, str]]:
    """``systemctl show`` of several units: unit -> property -> value."""
    if not units:
        return {}
    res = systemctl("show", "-p", ",".join(PROPS), "--", *units)
    out: dict[str, dict[str, str]] = {}
    for block in res.stdout.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in props:
            out[props["Id"]] = props
    # systemd shows an alias's properties under the real Id: key by what was asked too
    return {u: out.get(u, {}) for u in units}


def state_name(props: dict[str, str]) -> str:
    active, sub = props.get("ActiveState", ""), props.get("SubState", "")
    if props.get("LoadState") in ("not-found", "error", "bad-setting", "masked"):
        return "UNKNOWN"
    if active == "activating":
        return "BACKOFF" if sub == "auto-restart" else "STARTING"
    return _ACTIVE.get(active, "UNKNOWN")


def unit_names(cfg: NodeConfig) -> dict[str, str]:
    """supervisord-style process name -> unit, for the target files and for every
    forwarder instance of this node systemd has loaded (a removed target's, say)."""
    units = {NODE: node_unit(cfg.id), DISTRIBUTOR: distributor_unit(cfg.id)}
    for f in target_files(cfg.targets_dir):
        units[FORWARDER_PREFIX + f.stem] = forwarder_unit(cfg.id, f.stem)
    for unit in loaded_forwarders(cfg.id):
        target = unit[len(f"fanout-forwarder@{cfg.id}:"):-len(".service")]
        units.setdefault(FORWARDER_PREFIX + target, unit)
    return units


def loaded_forwarders(node_id: str) -> list[str]:
    """Forwarder instances systemd knows that are not inactive (running, failed...)."""
    res = systemctl("list-units", "--all", "--plain", "--no-legend",
                    f"fanout-forwarder@{node_id}:*.service", check=False)
    units = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if parts and parts[0].endswith(".service") and parts[2:3] != ["inactive"]:
            units.append(parts[0])
    return units


def wanted(node_id: str) -> set[str]:
    res = systemctl("show", "-p", "Wants", "--value", target_unit(node_id), check=False)
    return set(res.stdout.split())


def check_installed(cfg: NodeConfig) -> None:
    """The installed units must read this very fanout.yaml (ROOT/<id>/fanout.yaml)."""
    res = systemctl("show", "-p", "LoadState,Environment", node_unit(cfg.id))
    props = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    want = f"FANOUT_CONFIG={cfg.source}"
    if props.get("LoadState") != "loaded" or want not in props.get("Environment", "").split():
        got = props.get("Environment") or f"LoadState={props.get('LoadState')}"
        err = SystemdError(f"{cfg.source}: manager: systemd, but the installed "
                           f"{node_unit(cfg.id)} does not read this file ({got})")
        err.hint = (f"fanout systemd-units --config {cfg.source} --out /etc/systemd/system "
                    "&& systemctl daemon-reload")
        raise err


def _main_pids(cfg: NodeConfig) -> set[int]:
    props = show(list(unit_names(cfg).values()))
    return {int(p.get("MainPID", "0") or 0) for p in props.values()} - {0}


def sync_wants(cfg: NodeConfig, names: list[str]) -> None:
    """Make ``fanout@<id>.target`` want the forwarder of every name (and of no other)."""
    have = {u for u in wanted(cfg.id) if u.startswith(f"fanout-forwarder@{cfg.id}:")}
    want = {forwarder_unit(cfg.id, n) for n in names}
    if want - have:
        systemctl("add-wants", target_unit(cfg.id), *sorted(want - have))
    for unit in sorted(have - want):
        unwant(cfg.id, unit)


def unwant(node_id: str, unit: str) -> None:
    """Remove the ``.wants/`` link ``add-wants`` made (systemd has no remove-wants)."""
    res = systemctl("show", "-p", "FragmentPath", "--value", target_unit(node_id),
                    check=False)
    frag = res.stdout.strip()
    dirs = [Path(frag).parent] if frag else []
    dirs.append(Path("/etc/systemd/system"))
    for d in dirs:
        with contextlib.suppress(FileNotFoundError):
            (d / f"{target_unit(node_id)}.wants" / unit).unlink()
    systemctl("daemon-reload", check=False)


class SystemdManager:
    name = "systemd"

    def up(self, config: Path, foreground: bool = False,
           timeout: float = SYSTEMCTL_TIMEOUT) -> UpResult:
        if foreground:
            raise SystemdError("fanout up --foreground runs supervisord in the foreground; "
                               "under manager: systemd, systemd is the foreground")
        cfg = load_checked(config)
        check_installed(cfg)
        (cfg.base_dir / "data").mkdir(exist_ok=True)  # ReadWritePaths= must exist
        units = unit_names(cfg)
        before = show(list(units.values()))
        if all(p.get("ActiveState") == "active" for p in before.values()):
            return UpResult(1, already=True)
        found = orphans.find(cfg.state_dir, _main_pids(cfg))
        if found:
            raise orphans.OrphansRunning(found, cfg.source)
        sync_wants(cfg, [f.stem for f in target_files(cfg.targets_dir)])
        with contextlib.suppress(FileNotFoundError):  # NRestarts restart from 0 too
            nrestarts_path(cfg).unlink()
        systemctl("reset-failed", *units.values(), check=False)
        # blocks until every start job is done: READY, or the process failed
        systemctl("start", target_unit(cfg.id), *units.values(), check=False,
                  timeout=timeout)
        after = show(list(units.values()))
        return UpResult(1, already=False,
                        states={n: state_name(after[u]) for n, u in units.items()})

    def down(self, config: Path, timeout: float = STOP_TIMEOUT) -> DownResult:
        cfg = load_node_config(config)
        units = unit_names(cfg)
        before = show(list(units.values()))
        was = any(p.get("ActiveState") not in ("inactive", "failed", None)
                  for p in before.values())
        systemctl("stop", target_unit(cfg.id), *units.values(),
                  f"fanout-forwarder@{cfg.id}:*.service", check=False, timeout=timeout + 30)
        found = orphans.find(cfg.state_dir)  # systemd stopped its own: these are not its
        killed = orphans.stop([o.pid for o in found])
        return DownResult(was_running=was, killed=killed, orphans=found)

    def reload(self, config: Path) -> ReloadResult:
        cfg = load_node_config(config)
        errors = check_targets(cfg)
        files = [f.stem for f in target_files(cfg.targets_dir)]
        prefix = f"fanout-forwarder@{cfg.id}:"
        have = {u for u in wanted(cfg.id) | set(loaded_forwarders(cfg.id))
                if u.startswith(prefix)}
        have_names = {u[len(prefix):-len(".service")] for u in have}
        added = sorted(set(files) - have_names)
        removed = sorted(have_names - set(files))
        sync_wants(cfg, files)
        if removed:
            units = [forwarder_unit(cfg.id, n) for n in removed]
            systemctl("stop", *units, check=False)
            systemctl("reset-failed", *units, check=False)
            restarts.forget(nrestarts_path(cfg), [FORWARDER_PREFIX + n for n in removed])
        if added:
            systemctl("start", *[forwarder_unit(cfg.id, n) for n in added], check=False)
        if added or removed:
            # the distributor re-reads forwarders.d/ on SIGHUP instead of within seconds
            systemctl("kill", "--kill-whom=main", "-s", "HUP", distributor_unit(cfg.id),
                      check=False)
        hup = [node_unit(cfg.id)] if cfg.tls is not None else []
        # forwarders re-read their sink.tls files, the node its certificate (renewals)
        hup += [forwarder_unit(cfg.id, p.stem) for p in target_files(cfg.targets_dir)
                if p.stem not in added and has_sink_tls(p)]
        if hup:
            systemctl("kill", "--kill-whom=main", "-s", "HUP", *hup, check=False)
        return ReloadResult([FORWARDER_PREFIX + n for n in added],
                            [FORWARDER_PREFIX + n for n in removed], [], errors)

    def observe(self, cfg: NodeConfig, now: float) -> Observation:
        obs = Observation(self.name, "systemd", reachable=False)
        try:
            state = systemctl("show", "-p", "SystemState", "--value", timeout=30)
            units = unit_names(cfg)
            props = show(list(units.values()))
        except (SystemdError, subprocess.TimeoutExpired) as exc:
            obs.error = str(exc)
            return obs
        obs.reachable, obs.pid, obs.state = True, 1, state.stdout.strip() or "?"
        mono = time.monotonic()
        counts: dict[str, int] = {}
        for name, unit in units.items():
            p = props[unit]
            statename = state_name(p)
            pid = int(p.get("MainPID") or 0)
            started = int(p.get("ExecMainStartTimestampMonotonic") or 0) / 1e6
            start = int(now - (mono - started)) if started else 0
            exit_status = int(p.get("ExecMainStatus") or 0)
            obs.processes.append(ProcessInfo(
                name=name, group=name, statename=statename, pid=pid, start=start, stop=0,
                now=int(now), exitstatus=exit_status, spawnerr="", description=unit))
            counts[name] = int(p.get("NRestarts") or 0)
            if statename in ("FATAL", "BACKOFF", "STOPPED"):
                obs.exit_status[name] = exit_status if p.get("ExecMainCode") == "1" else None
                line = journal_error(unit)
                if line:
                    obs.details[name] = line
        with contextlib.suppress(OSError):
            obs.restarts_5m = recent_restarts(nrestarts_path(cfg), counts, now)
        return obs


def nrestarts_path(cfg: NodeConfig) -> Path:
    return SupervisePaths.of(cfg).dir / "nrestarts.json"


def recent_restarts(path: Path, counts: dict[str, int], now: float) -> dict[str, int]:
    """Restarts per process in the last ``restarts.WINDOW`` seconds, from ``NRestarts``
    samples: now minus the newest sample older than the window (0 without one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text())
            samples = data["samples"] if isinstance(data, dict) else {}
        except (FileNotFoundError, ValueError, KeyError):
            samples = {}
        out: dict[str, int] = {}
        for name, n in counts.items():
            seq = [s for s in samples.get(name, []) if s[1] <= n]  # a reset drops the rest
            old = [s for s in seq if now - s[0] > restarts.WINDOW]
            base = old[-1][1] if old else 0
            out[name] = n - base
            seq = (old[-1:] + [s for s in seq if now - s[0] <= restarts.WINDOW]
                   + [[now, n]])[-50:]
            samples[name] = seq
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"samples": samples}) + "\n")
        os.replace(tmp, path)
        return out
    finally:
        os.close(fd)


def journal_error(unit: str) -> str | None:
    """The last ``Error:`` line the unit's process printed, from the journal if any."""
    exe = shutil.which("journalctl")
    if exe is None:
        return None
    try:
        res = subprocess.run([exe, "--no-pager", "-o", "cat", "-n", "200", "-u", unit],
                             capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = [ln.strip() for ln in res.stdout.splitlines() if ln.startswith("Error: ")]
    return found[-1][len("Error: "):] if found else None


def parse_unit(unit: str) -> tuple[str, str]:
    """``fanout-forwarder@n1:london.service`` -> (``n1``, ``forwarder-london``)."""
    prefix, sep, rest = unit.partition("@")
    instance = rest.rsplit(".", 1)[0]
    if not sep or not instance:
        raise ConfigError(unit, None, "not an instance of a fanout template unit")
    if prefix == "fanout-forwarder":
        node, _, target = instance.partition(":")
        return node, FORWARDER_PREFIX + target
    if prefix == "fanout-node":
        return instance, NODE
    if prefix == "fanout-distributor":
        return instance, DISTRIBUTOR
    raise ConfigError(unit, None, "not an instance of a fanout template unit")
