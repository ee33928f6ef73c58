"""``fanout systemd-units``: systemd units for one node, rendered from string templates.

- ``fanout-node.service``, ``fanout-distributor.service``;
- ``fanout-forwarder@.service``: the instance is the target name and reads
  ``forwarders.d/%i.yaml``, so adding a target is ``systemctl enable --now
  fanout-forwarder@NAME``;
- ``fanout.target``: wants the node, the distributor and every forwarder of the targets
  present at render time.

``Type=notify``: the processes send READY, STATUS, WATCHDOG and STOPPING themselves
(``fanout.sdnotify``), and ``WatchdogSec`` restarts one whose main loop hangs.
``Restart=on-failure`` with ``RestartPreventExitStatus`` for a configuration error (78)
and, for forwarders, a stop by policy (3). Hardening with ``ProtectSystem=strict`` and a
single ``ReadWritePaths=``: the common parent of the datalog, every source directory and
the state directories. One path means one bind mount, so hard links from the datalog into
the source directories stay on one mount (separate ``ReadWritePaths=`` entries would be
separate mounts, and link(2) between them fails with EXDEV).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from fanout.config import NodeConfig
from fanout.errors import FanoutError
from fanout.exitcodes import EXIT_CONFIG, EXIT_POLICY_STOP
from fanout.supervise.programs import (
    distributor_program,
    forwarder_argv,
    node_program,
)
from fanout.target_config import load_target_config, target_files

WATCHDOG_SEC = 30
NODE_UNIT = "fanout-node.service"
DISTRIBUTOR_UNIT = "fanout-distributor.service"
FORWARDER_UNIT = "fanout-forwarder@.service"
TARGET_UNIT = "fanout.target"
_PLAIN = re.compile(r"^[A-Za-z0-9_./:=@+,-]+$")


class NoCommonParent(FanoutError):
    """The writable paths share no directory but ``/``: one ReadWritePaths= is impossible."""


def sd_word(text: str) -> str:
    """One word of an ``ExecStart=`` line: ``%`` and ``$`` escaped, quoted if needed."""
    text = text.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sd_path(path: Path | str) -> str:
    """A path for a directive such as ``WorkingDirectory=`` (``%`` escaped, no quoting)."""
    text = str(path)
    if any(c.isspace() for c in text):
        raise FanoutError(f"{text}: systemd directives here cannot hold a path with spaces")
    return text.replace("%", "%%")


def writable_paths(cfg: NodeConfig) -> list[Path]:
    """Every directory the node's processes write to (target files are loaded strictly)."""
    paths = [cfg.datalog_dir, cfg.state_dir]
    if cfg.store.kind == "sqlite" and cfg.store.path is not None:
        paths.append(cfg.store.path.parent)
    for f in target_files(cfg.targets_dir):
        t = load_target_config(f)
        paths += [t.source_dir, t.state_dir]
    return paths


def common_parent(cfg: NodeConfig) -> Path:
    paths = writable_paths(cfg)
    parent = Path(os.path.commonpath([str(p) for p in paths]))
    if parent == Path(parent.anchor):
        err = NoCommonParent(
            "the datalog, state and source directories have no common parent but "
            f"{parent}: {', '.join(sorted({str(p) for p in paths}))}")
        err.hint = ("put datalog_dir, state_dir, the store and every source_dir under one "
                    "directory (the layout of fanout init does)")
        raise err
    return parent


@dataclass(frozen=True)
class UnitOptions:
    user: str | None = None
    group: str | None = None


def exec_line(argv: tuple[str, ...] | list[str]) -> str:
    return " ".join(sd_word(a) for a in argv)


def _service(description: str, exec_start: str, cfg: NodeConfig, parent: Path,
             prevent: str, opts: UnitOptions, after: str = "", extra_unit: str = "") -> str:
    user = "".join(f"{k}={v}\n" for k, v in (("User", opts.user), ("Group", opts.group)) if v)
    tmp = str(parent).startswith(("/tmp/", "/var/tmp/")) or str(parent) in ("/tmp", "/var/tmp")
    private_tmp = ("# PrivateTmp= would hide the data under /tmp from the service\n" if tmp
                   else "PrivateTmp=yes\n")
    prevent_why = f"{EXIT_CONFIG} invalid configuration" + (
        f"; {EXIT_POLICY_STOP} stopped itself by policy, the reason in its state file's "
        "lastError"
        if " " in prevent else "")
    return f"""\
# Rendered by `fanout systemd-units` for node {cfg.id} ({cfg.source}).
[Unit]
Description={description}
PartOf={TARGET_UNIT}
{after}StartLimitIntervalSec=300
StartLimitBurst=5
{extra_unit}
[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
WorkingDirectory={sd_path(cfg.base_dir)}
Environment=PYTHONUNBUFFERED=1
{user}Restart=on-failure
RestartSec=2
# {prevent_why}: restarting cannot fix it
RestartPreventExitStatus={prevent}
WatchdogSec={WATCHDOG_SEC}
TimeoutStartSec=90
TimeoutStopSec=30
KillMode=control-group
UMask=0027
LimitNOFILE=65536

# Hardening. One writable parent for the datalog, source and state directories: hard
# links must not cross a mount, and each ReadWritePaths= entry is a mount of its own.
ProtectSystem=strict
ReadWritePaths={sd_path(parent)}
ProtectHome=read-only
{private_tmp}PrivateDevices=yes
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6

[Install]
WantedBy={TARGET_UNIT}
"""


def render_units(cfg: NodeConfig, opts: UnitOptions | None = None) -> dict[str, str]:
    """Unit file name -> text."""
    opts = opts or UnitOptions()
    parent = common_parent(cfg)
    node = _service(f"fanout node {cfg.id}", exec_line(node_program(cfg).argv), cfg, parent,
                    str(EXIT_CONFIG), opts,
                    after="Wants=network-online.target\nAfter=network-online.target\n")
    dist = _service(f"fanout distributor of node {cfg.id}",
                    exec_line(distributor_program(cfg).argv), cfg, parent, str(EXIT_CONFIG), opts,
                    after=f"After={NODE_UNIT}\n")
    # the config path ends in the %i specifier, so that part is appended unescaped
    config_word = sd_word(str(cfg.targets_dir) + "/")
    config_word = (config_word[:-1] + '%i.yaml"' if config_word.endswith('"')
                   else config_word + "%i.yaml")
    fwd_exec = exec_line(forwarder_argv("X")[:-1]) + " " + config_word
    fwd = _service(f"fanout forwarder of node {cfg.id} to target %i", fwd_exec, cfg, parent,
                   f"{EXIT_CONFIG} {EXIT_POLICY_STOP}", opts,
                   after=f"After={DISTRIBUTOR_UNIT} {NODE_UNIT}\n")
    instances = [f"fanout-forwarder@{p.stem}.service" for p in target_files(cfg.targets_dir)]
    wants = " ".join([NODE_UNIT, DISTRIBUTOR_UNIT, *instances])
    target = f"""\
# Rendered by `fanout systemd-units` for node {cfg.id} ({cfg.source}).
# A target added later: systemctl enable --now fanout-forwarder@NAME.service
[Unit]
Description=fanout node {cfg.id}: node, distributor and one forwarder per target
Wants={wants}

[Install]
WantedBy=multi-user.target
"""
    return {NODE_UNIT: node, DISTRIBUTOR_UNIT: dist, FORWARDER_UNIT: fwd, TARGET_UNIT: target}


def write_units(cfg: NodeConfig, out: Path, opts: UnitOptions | None = None) -> list[Path]:
    units = render_units(cfg, opts)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in units.items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written
