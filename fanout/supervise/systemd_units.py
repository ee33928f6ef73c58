"""``fanout systemd-units``: template units, one instance per node id (several nodes per host).

The convention, as ``postgresql@``/``wg-quick@`` have theirs: every node of a host lives in
``ROOT/<id>/`` (``fanout init ROOT/<id> --id <id>``), so the instance name alone finds
everything:

- ``fanout-node@<id>.service`` and ``fanout-distributor@<id>.service`` read
  ``ROOT/<id>/fanout.yaml``; their one writable path is the node's data tree
  ``ROOT/<id>/data`` (``ReadWritePaths=``): one path is one bind mount, so hard links from
  the datalog into the source directories stay on one mount (separate entries would be
  separate mounts, and link(2) between them fails with EXDEV).
- ``fanout-forwarder@<id>:<target>.service`` reads the node's ``targets_dir``/<target>.yaml
  (``forwarder.main --instance``). systemd has no specifier for a part of an instance
  name, so its ``ReadWritePaths=`` is ``ROOT`` (the data trees of this host's nodes, all
  owned by the same ``User=``); it links nothing, so mounts do not matter to it.
- ``fanout@<id>.target`` wants the node and the distributor; each forwarder instance is
  added to it with ``systemctl add-wants`` by ``fanout up`` and ``fanout reload``.
- ``fanout-alert@.service``: ``OnFailure=`` of every service; runs the alert hook of the
  supervisord event listener (``fanout alert-unit``).

``Type=notify``: the processes send READY, STATUS, WATCHDOG and STOPPING themselves
(``fanout.sdnotify``), and ``WatchdogSec`` restarts one whose main loop hangs.
``Restart=on-failure`` except for a configuration error (78), another instance holding the
role's lock (75: restarting cannot take it, and ``fanout status`` names the holder) and,
for forwarders, a stop by policy (3).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

from fanout.config import NodeConfig
from fanout.errors import FanoutError
from fanout.exitcodes import EXIT_CONFIG, EXIT_LOCKED, EXIT_POLICY_STOP
from fanout.supervise.programs import python
from fanout.target_config import load_target_config, target_files

WATCHDOG_SEC = 30
NODE_UNIT = "fanout-node@.service"
DISTRIBUTOR_UNIT = "fanout-distributor@.service"
FORWARDER_UNIT = "fanout-forwarder@.service"
TARGET_UNIT = "fanout@.target"
ALERT_UNIT = "fanout-alert@.service"
TEMPLATES = (NODE_UNIT, DISTRIBUTOR_UNIT, FORWARDER_UNIT, TARGET_UNIT, ALERT_UNIT)
_PLAIN = re.compile(r"^[A-Za-z0-9_./:=@+,-]+$")


class LayoutError(FanoutError):
    """The node's files do not follow the ``ROOT/<id>/`` layout the template units assume."""


def node_unit(node_id: str) -> str:
    return f"fanout-node@{node_id}.service"


def distributor_unit(node_id: str) -> str:
    return f"fanout-distributor@{node_id}.service"


def forwarder_unit(node_id: str, target: str) -> str:
    return f"fanout-forwarder@{node_id}:{target}.service"


def target_unit(node_id: str) -> str:
    return f"fanout@{node_id}.target"


def sd_word(text: str) -> str:
    """One word of an ``ExecStart=`` line: ``%`` and ``$`` escaped, quoted if needed."""
    text = text.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sd_path(path: Path | str) -> str:
    """A path for a directive such as ``ReadWritePaths=`` (``%`` escaped, no quoting)."""
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


def data_tree(cfg: NodeConfig) -> Path:
    return cfg.base_dir / "data"


def check_layout(cfg: NodeConfig) -> Path:
    """``ROOT`` of the node; LayoutError when the instance name cannot find its files."""
    if cfg.base_dir.name != cfg.id:
        err = LayoutError(f"{cfg.source}: the node directory must be named after the node "
                          f"id {cfg.id!r} (the units find it as ROOT/<id>/fanout.yaml)")
        err.hint = f"move {cfg.base_dir} to {cfg.base_dir.parent / cfg.id}"
        raise err
    tree = data_tree(cfg)
    outside = sorted({str(p) for p in writable_paths(cfg)
                      if p != tree and tree not in p.parents})
    if outside:
        err = LayoutError(f"{cfg.source}: every writable directory must be inside {tree} "
                          f"(its one ReadWritePaths=), but these are not: {', '.join(outside)}")
        err.hint = ("keep datalog_dir, state_dir, the store and every source_dir under data/ "
                    "(the layout of fanout init)")
        raise err
    return cfg.base_dir.parent


@dataclass(frozen=True)
class UnitOptions:
    user: str | None = None  # default: the owner of ROOT
    group: str | None = None
    alert_command: str | None = None
    alert_webhook: str | None = None
    watchdog_sec: float = WATCHDOG_SEC
    restart_sec: float = 2.0


def exec_line(argv: tuple[str, ...] | list[str]) -> str:
    return " ".join(sd_word(a) for a in argv)


def _owner(root: Path) -> tuple[str, str]:
    st = os.stat(root)
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user, group


def _service(description: str, exec_start: str, root: Path, rw: str, prevent: tuple[str, str],
             opts: UnitOptions, unit_extra: str = "", env: str = "") -> str:
    default_user, default_group = _owner(root)
    user, group = opts.user or default_user, opts.group or default_group
    tmp = str(root).startswith(("/tmp/", "/var/tmp/")) or str(root) in ("/tmp", "/var/tmp")
    private_tmp = ("# PrivateTmp= would hide the data under /tmp from the service\n" if tmp
                   else "PrivateTmp=yes\n")
    return f"""\
# Rendered by `fanout systemd-units` for the nodes under {root} (ROOT/<id>/fanout.yaml).
[Unit]
Description={description}
{unit_extra}StartLimitIntervalSec=300
StartLimitBurst=5
OnFailure=fanout-alert@%n.service

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
WorkingDirectory={sd_path(root)}
Environment=PYTHONUNBUFFERED=1
{env}User={user}
Group={group}
Restart=on-failure
RestartSec={opts.restart_sec:g}
# {EXIT_CONFIG} invalid configuration, {EXIT_LOCKED} another instance holds the lock\
{prevent[1]}:
# restarting cannot fix it
RestartPreventExitStatus={prevent[0]}
WatchdogSec={opts.watchdog_sec:g}
TimeoutStartSec=90
TimeoutStopSec=30
KillMode=control-group
UMask=0027
LimitNOFILE=65536

# Hardening. One writable tree: hard links must not cross a mount, and each
# ReadWritePaths= entry is a mount of its own.
ProtectSystem=strict
ReadWritePaths={rw}
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
"""


def render_units(cfg: NodeConfig, opts: UnitOptions | None = None) -> dict[str, str]:
    """Unit file name -> text: the templates for every node under this node's ROOT."""
    opts = opts or UnitOptions()
    root = check_layout(cfg)
    r = sd_path(root)
    config = f"{r}/%i/fanout.yaml"
    fanout = exec_line([python(), "-m", "fanout.cli.main"])
    env = f"Environment=FANOUT_CONFIG={config}\n"
    prevent = (f"{EXIT_CONFIG} {EXIT_LOCKED}", "")
    node = _service("fanout node %i", f"{fanout} node --config {config}", root,
                    f"{r}/%i/data", prevent, opts, env=env,
                    unit_extra="PartOf=fanout@%i.target\nWants=network-online.target\n"
                               "After=network-online.target\n")
    dist = _service("fanout distributor of node %i", f"{fanout} distribute --config {config}",
                    root, f"{r}/%i/data", prevent, opts, env=env,
                    unit_extra="PartOf=fanout@%i.target\nAfter=fanout-node@%i.service\n")
    fwd_exec = exec_line([python(), "-m", "forwarder.main", "--root", str(root)]) \
        + " --instance %i"
    fwd = _service("fanout forwarder %i (node:target)", fwd_exec, root, r,
                   (f"{EXIT_CONFIG} {EXIT_LOCKED} {EXIT_POLICY_STOP}",
                    f", {EXIT_POLICY_STOP} stopped itself by policy (the reason in its state "
                    "file's lastError)"),
                   opts, unit_extra="After=network-online.target\n")
    alert_argv = ["alert-unit", "--root", str(root)]
    if opts.alert_command:
        alert_argv += ["--command", opts.alert_command]
    if opts.alert_webhook:
        alert_argv += ["--webhook", opts.alert_webhook]
    user, group = opts.user or _owner(root)[0], opts.group or _owner(root)[1]
    alert = f"""\
# Rendered by `fanout systemd-units`: OnFailure= of every fanout service. The instance is
# the failed unit's name; the alert goes where the supervisord event listener sends it
# (state_dir/alerts.jsonl, the alert command, the webhook).
[Unit]
Description=fanout alert for %i
DefaultDependencies=no

[Service]
Type=oneshot
ExecStart={fanout} {exec_line(alert_argv)} --unit %i
User={user}
Group={group}
Environment=PYTHONUNBUFFERED=1
TimeoutStartSec=90
"""
    target = f"""\
# Rendered by `fanout systemd-units`: one node, ROOT/%i/ under {root}.
# Its forwarders join it through `fanout up` / `fanout reload`
# (systemctl add-wants fanout@ID.target fanout-forwarder@ID:TARGET.service).
[Unit]
Description=fanout node %i: node, distributor and one forwarder per target
Wants=fanout-node@%i.service fanout-distributor@%i.service

[Install]
WantedBy=multi-user.target
"""
    return {NODE_UNIT: node, DISTRIBUTOR_UNIT: dist, FORWARDER_UNIT: fwd,
            TARGET_UNIT: target, ALERT_UNIT: alert}


class OtherRoot(FanoutError):
    """``--out`` already holds templates rendered for another ROOT."""


def rendered_root(unit_file: Path) -> Path | None:
    try:
        first = unit_file.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    m = re.search(r"for the nodes under (\S+) ", first)
    return Path(m.group(1)) if m else None


def write_units(cfg: NodeConfig, out: Path, opts: UnitOptions | None = None) -> list[Path]:
    units = render_units(cfg, opts)
    root = check_layout(cfg)
    old = rendered_root(out / NODE_UNIT)
    if old is not None and old != root:
        err = OtherRoot(f"{out / NODE_UNIT} serves the nodes under {old}, not {root}: one "
                        "set of templates serves one ROOT")
        err.hint = f"put this node under {old}/{cfg.id}/, or render into another --out"
        raise err
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in units.items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written
