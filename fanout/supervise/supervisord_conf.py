"""``supervisord.conf`` for one node, and one include file per target.

The main file holds the daemon's own settings (socket and pid file under ``state_dir``),
the node, the distributor and the alert listener; ``[include] files = programs.d/*.conf``
pulls in ``programs.d/forwarder-T.conf``, one per ``forwarders.d/T.yaml``, so adding a
target adds a file and ``fanout reload`` touches nothing else.

Values are checked so that supervisord reads back exactly what was meant: its parser
expands ``%(...)s`` (so ``%`` is doubled), treats `` ;`` and `` #`` as the start of a
comment, and splits ``command=`` with POSIX shell rules (so arguments are quoted).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

from fanout.config import NodeConfig
from fanout.errors import FanoutError
from fanout.fileio import write_atomic
from fanout.supervise.paths import SupervisePaths
from fanout.supervise.programs import (
    ALERTS,
    Program,
    alerts_argv,
    distributor_program,
    forwarder_programs,
    node_program,
)

LOG_MAXBYTES = "10MB"
LOG_BACKUPS = 5
STARTRETRIES = 3

_COMMENT_RE = re.compile(r"\s[;#]")


class UnsafeValue(FanoutError):
    """A value cannot be written into supervisord.conf so that it reads back unchanged."""


@dataclass(frozen=True)
class AlertSettings:
    """What ``fanout alert-listener`` does beyond appending to ``alerts.jsonl``."""

    command: str | None = None
    webhook: str | None = None

    def check(self) -> None:
        if self.webhook is not None:
            url = urllib.parse.urlsplit(self.webhook)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise UnsafeValue(f"--alert-webhook must be an http(s) URL "
                                  f"(got {self.webhook!r})")
        for what, value in (("--alert-command", self.command),
                            ("--alert-webhook", self.webhook)):
            if value is not None:
                _check_value(what, value)


def _check_value(what: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise UnsafeValue(f"{what}: a line break cannot be written into supervisord.conf")
    if _COMMENT_RE.search(value):
        err = UnsafeValue(f"{what}: {value!r} holds ';' or '#' after a space, which "
                          "supervisord reads as the start of a comment")
        err.hint = "put the command in a script and give its path"
        raise err
    return value


def sv(value: object, what: str = "value") -> str:
    """One value for supervisord.conf: checked, with ``%`` doubled."""
    return _check_value(what, str(value)).replace("%", "%%")


def sv_command(argv: tuple[str, ...]) -> str:
    return sv(" ".join(shlex.quote(a) for a in argv), "command")


def load_settings(paths: SupervisePaths) -> AlertSettings:
    try:
        data = json.loads(paths.settings.read_text())
    except (FileNotFoundError, ValueError):
        return AlertSettings()
    return AlertSettings(data.get("command"), data.get("webhook"))


def render_program(cfg: NodeConfig, prog: Program) -> str:
    logs = SupervisePaths.of(cfg).logs_dir
    lines = [
        f"[program:{prog.name}]",
        f"command={sv_command(prog.argv)}",
        f"directory={sv(cfg.base_dir)}",
        'environment=PYTHONUNBUFFERED="1"',
        f"priority={prog.priority}",
        "autostart=true",
        # expected exits (0; 3 for forwarders: stopped by policy) are not restarted
        "autorestart=unexpected",
        f"exitcodes={','.join(map(str, prog.exitcodes))}",
        # exiting sooner (exit 78: bad config) startretries times in a row is FATAL
        f"startsecs={prog.startsecs}",
        f"startretries={STARTRETRIES}",
        "stopsignal=TERM",
        f"stopwaitsecs={prog.stopwaitsecs}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={sv(logs / (prog.name + '.log'))}",
        f"stdout_logfile_maxbytes={LOG_MAXBYTES}",
        f"stdout_logfile_backups={LOG_BACKUPS}",
    ]
    return "\n".join(lines) + "\n"


def render_main(cfg: NodeConfig, alerts: AlertSettings) -> str:
    paths = SupervisePaths.of(cfg)
    paths.check_socket()
    alerts.check()
    logs = paths.logs_dir
    head = f"""\
; supervisord configuration of fanout node {cfg.id} ({cfg.source}).
; Written by `fanout supervisord-config` and again by `fanout up`; `fanout reload`
; rewrites programs.d/. Change fanout.yaml and forwarders.d/ rather than this file.

[supervisord]
logfile={sv(logs / "supervisord.log")}
logfile_maxbytes={LOG_MAXBYTES}
logfile_backups={LOG_BACKUPS}
loglevel=info
pidfile={sv(paths.pidfile)}
childlogdir={sv(logs)}
identifier={sv("fanout-" + cfg.id)}
directory={sv(cfg.base_dir)}
nodaemon=false
minfds=4096

[unix_http_server]
file={sv(paths.socket)}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl={sv(paths.server_url)}

"""
    listener = f"""\
; alerts on FATAL, BACKOFF and EXITED; its stdout is the event protocol, so only stderr
; is logged. It also records RUNNING transitions for `fanout status` (crash loops).
[eventlistener:{ALERTS}]
command={sv_command(alerts_argv(cfg, alerts.command, alerts.webhook))}
directory={sv(cfg.base_dir)}
environment=PYTHONUNBUFFERED="1"
events=PROCESS_STATE
buffer_size=100
priority=10
autostart=true
autorestart=true
startsecs=1
startretries={STARTRETRIES}
stopsignal=TERM
stopasgroup=true
killasgroup=true
stdout_logfile=NONE
stderr_logfile={sv(logs / (ALERTS + ".log"))}
stderr_logfile_maxbytes={LOG_MAXBYTES}
stderr_logfile_backups={LOG_BACKUPS}

"""
    body = "\n".join(render_program(cfg, p) for p in (node_program(cfg),
                                                      distributor_program(cfg)))
    include = """
; one file per target: forwarders.d/T.yaml -> programs.d/forwarder-T.conf
[include]
files = programs.d/*.conf
"""
    return head + body + "\n" + listener + include


@dataclass
class Written:
    """What a render changed on disk (paths), for messages and for ``reload``."""

    written: list[Path]
    removed: list[Path]


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)
    return True


def write_programs(cfg: NodeConfig) -> Written:
    """``programs.d/forwarder-T.conf`` for every target file; stale ones are removed."""
    pdir = SupervisePaths.of(cfg).programs_dir
    pdir.mkdir(parents=True, exist_ok=True)
    wanted = {f"{p.name}.conf": render_program(cfg, p) for p in forwarder_programs(cfg)}
    out = Written([], [])
    for name, text in wanted.items():
        if _write_if_changed(pdir / name, text):
            out.written.append(pdir / name)
    for old in sorted(pdir.glob("*.conf")):
        if old.name not in wanted:
            old.unlink()
            out.removed.append(old)
    return out


def write_config(cfg: NodeConfig, alerts: AlertSettings | None = None) -> Written:
    """Write every file. ``alerts`` None keeps the settings of the previous render."""
    paths = SupervisePaths.of(cfg)
    if alerts is None:
        alerts = load_settings(paths)
    main = render_main(cfg, alerts)  # checks first: nothing is written if it refuses
    paths.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.dir, 0o700)
    paths.logs_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(paths.settings, json.dumps(asdict(alerts), indent=1) + "\n")
    out = write_programs(cfg)
    if _write_if_changed(paths.conf, main):
        out.written.insert(0, paths.conf)
    return out
