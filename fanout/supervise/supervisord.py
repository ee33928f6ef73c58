"""``manager: supervisord`` (the default): ``fanout.supervise.control`` and its XML-RPC view."""

from __future__ import annotations

import contextlib
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
        from fanout.supervise.status import last_exit_status

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
