"""``manager: supervisord`` (the default): ``fanout.supervise.control`` and its XML-RPC view."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from fanout.config import NodeConfig
from fanout.supervise import control, restarts
from fanout.supervise.manager import Observation
from fanout.supervise.paths import SupervisePaths
from fanout.supervise.rpc import ProcessInfo, Supervisor, Unreachable


class SupervisordManager:
    name = "supervisord"

    def up(self, config: Path, foreground: bool = False) -> control.UpResult:
        return control.up(config, foreground=foreground)

    def down(self, config: Path) -> control.DownResult:
        return control.down(config)

    def reload(self, config: Path) -> control.ReloadResult:
        return control.reload(config)

    def observe(self, cfg: NodeConfig, now: float) -> Observation:

        paths = SupervisePaths.of(cfg)
        obs = Observation(self.name, str(paths.socket), reachable=False)
        infos: list[ProcessInfo] = []
        with Supervisor(paths.socket, timeout=5.0) as sv:
            try:
                obs.pid = sv.pid()
                obs.state = sv.state()
                infos = sv.processes()
                obs.reachable = True
            except Unreachable as exc:
                obs.error = str(exc)
        obs.processes = infos
        running = [(i.name, i.pid, float(i.start)) for i in infos
                   if i.pid > 0 and i.statename == "RUNNING"]
        if running:  # only starts that reached RUNNING, as the listener records them
            with contextlib.suppress(OSError):  # a read-only user still gets a status
                restarts.record(paths.restarts, running, now)
        obs.restarts_5m = restarts.counts(paths.restarts, now)
        for i in infos:
            if i.statename in ("FATAL", "BACKOFF"):
                # supervisord reports 0 for an exit before startsecs: its log has the truth
                obs.exit_status[i.name] = last_exit_status(
                    paths.logs_dir / "supervisord.log", i.name)
        return obs

_EXITED = re.compile(r"exited: (\S+) \(exit status (\d+);")


def last_exit_status(log_path: Path, name: str, limit: int = 65536) -> int | None:
    """The exit status of ``name``'s last exit as supervisord logged it ("exited: node
    (exit status 1; not expected)"); None if the log does not say (a signal, say)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    found = [int(m.group(2)) for m in _EXITED.finditer(text) if m.group(1) == name]
    return found[-1] if found else None
