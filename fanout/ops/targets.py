"""``fanout target add|list|remove``: adding a target is adding a file to ``forwarders.d/``.

Every check runs before anything is written (the name against the id grammar before any
path is built from it, the endpoint against the node and its other targets, the token),
and the files are then written under dot-names and renamed into place, so a refused or
failed ``add`` leaves the filesystem as it found it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from fanout.config import NodeConfig, load_node_config
from fanout.errors import ConfigError
from fanout.fileio import holder, lock_path
from fanout.ops.init import write_private
from fanout.secretfile import check_private
from fanout.state import (
    DistributorState,
    ForwarderState,
    NodeState,
    distributor_state_path,
    forwarder_state_path,
    node_state_path,
)
from fanout.target_config import SinkConfig, TargetConfig, load_target_config, target_files
from fanout.targetcheck import check_target, is_inside, name_problem


def target_of(cfg: NodeConfig, name: str) -> TargetConfig:
    path = cfg.targets_dir / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(path, None, f"no target named {name!r}",
                          hint=f"fanout target add --config {cfg.source} --name {name} "
                               "--endpoint URL --token SECRET")
    return load_target_config(path)


def _siblings(node: NodeConfig) -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    for path in target_files(node.targets_dir):
        with contextlib.suppress(ConfigError):
            t = load_target_config(path)
            found[t.target] = (t.source, t.sink.endpoint)
    return found


def add_target(config: Path, name: str, endpoint: str, token: str | None,
               token_file: Path | None, sink: str = "fanout", source_dir: str | None = None,
               force: bool = False, tls: dict[str, Path] | None = None) -> Path:
    """Write and validate ``forwarders.d/<name>.yaml``.

    ``tls``: ``ca_file``, ``cert_file``, ``key_file`` (any of them) for an https endpoint,
    written relative to the target file as ``sink.tls``.

    A token given on the command line goes to ``secrets/<name>.token`` (mode 0600) and the
    target file only points at it, so target files can be shown and shared safely.
    """
    node = load_node_config(config)
    problem = name_problem(name)
    if problem:  # before any path is built from it
        raise ConfigError(node.targets_dir, "--name", problem)
    path = node.targets_dir / f"{name}.yaml"
    if path.exists() and not force:
        raise ConfigError(path, None, "already exists", hint="pass --force to replace it")
    if (token is None) == (token_file is None):
        raise ConfigError(path, "sink.token_file", "give exactly one of --token or --token-file")
    if token is not None and (not token.strip() or "\n" in token):
        raise ConfigError(path, "--token", "must be one non-empty line")
    if token_file is not None:
        token_file = Path(token_file).resolve()
        SinkConfig(sink, endpoint, token_file).secret()  # private, readable, not empty
    src = Path(source_dir).resolve() if source_dir else \
        node.datalog_dir.parent / "targets" / name
    siblings = _siblings(node)
    siblings.pop(name, None)  # --force replaces it
    check_target(path, name, endpoint, src, node, siblings)

    secrets_dir = node.base_dir / "secrets"
    final_token = secrets_dir / f"{name}.token" if token is not None else token_file
    assert final_token is not None
    sink_doc = {"type": sink, "endpoint": endpoint,
                "token_file": os.path.relpath(final_token, node.targets_dir)}
    data: dict[str, object] = {
        "target": name,
        "source_dir": os.path.relpath(src, node.targets_dir),
        "state_dir": os.path.relpath(node.state_dir, node.targets_dir),
        "sink": sink_doc,
    }
    if tls:
        data["sink"]["tls"] = {k: os.path.relpath(Path(v).resolve(), node.targets_dir)  # type: ignore[index]
                               for k, v in tls.items()}
    node.targets_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp_token = secrets_dir / f".{name}.token.tmp"
    try:
        if token is not None:
            secrets_dir.mkdir(mode=0o700, exist_ok=True)
            write_private(tmp_token, token + "\n")
            check_private(tmp_token, "token file")
        write_private(tmp, yaml.safe_dump(data, sort_keys=False))
        try:
            # validated under its final token path: point it at the temporary one
            check = dict(data, sink=dict(sink_doc, token_file=os.path.relpath(
                tmp_token, node.targets_dir))) if token is not None else data
            write_private(tmp, yaml.safe_dump(check, sort_keys=False))
            load_target_config(tmp, name=name).sink.secret()
        except ConfigError as exc:
            raise ConfigError(path, exc.key, exc.problem, exc.hint) from None
        write_private(tmp, yaml.safe_dump(data, sort_keys=False))
        if token is not None:
            os.replace(tmp_token, final_token)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_token.unlink(missing_ok=True)
    return path


@dataclass
class TargetInfo:
    name: str
    file: Path
    sink: str | None = None
    endpoint: str | None = None
    source_dir: Path | None = None
    forwarder_pid: int | None = None  # the live holder of its instance lock
    phase: str | None = None  # from its state file
    error: str | None = None  # the file does not load


def list_targets(config: Path) -> list[TargetInfo]:
    """Every target file of the node, loaded or not, with its forwarder if one runs."""
    node = load_node_config(config)
    rows = []
    for path in target_files(node.targets_dir):
        info = TargetInfo(path.stem, path)
        try:
            t = load_target_config(path)
            info.sink, info.endpoint, info.source_dir = t.sink.type, t.sink.endpoint, \
                t.source_dir
            state_dir = t.state_dir
        except ConfigError as exc:
            info.error = str(exc)
            state_dir = node.state_dir
        h = holder(lock_path(state_dir, f"forwarder-{info.name}"))
        info.forwarder_pid = h.pid if h else None
        st = ForwarderState.read(forwarder_state_path(state_dir, info.name))
        info.phase = st.phase if st is not None else None
        rows.append(info)
    return rows


@dataclass
class RemoveResult:
    file: Path
    forwarder: str  # what happened to its forwarder
    removed: list[Path]
    kept: list[str]  # what was left, and why


STATE_SUFFIXES = (".json", ".cursor", ".paused", ".lock")
DISTRIBUTOR_WAIT = 30.0


def remove_target(config: Path, name: str) -> RemoveResult:
    """Stop the target's forwarder, then remove its file, source directory and state files;
    nothing else (its token file and its log are kept)."""
    node = load_node_config(config)
    problem = name_problem(name)
    if problem:  # before any path is built from it
        raise ConfigError(node.targets_dir, "--name", problem)
    path = node.targets_dir / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(path, None, f"no target named {name!r}",
                          hint=f"fanout target list --config {node.source}")
    src, state_dir = node.datalog_dir.parent / "targets" / name, node.state_dir
    with contextlib.suppress(ConfigError):
        t = load_target_config(path)
        src, state_dir = t.source_dir, t.state_dir
    unsafe = _unsafe_to_delete(src, node)
    removed: list[Path] = []
    kept: list[str] = []
    os.unlink(path)  # from here on nothing starts it again: reload, up, the distributor
    removed.append(path)
    forwarder = _stop_forwarder(node, name, state_dir)
    _wait_distributor_drops(node, name)
    if unsafe:
        kept.append(f"{src}: not deleted, {unsafe}")
    elif src.is_dir():
        shutil.rmtree(src)
        removed.append(src)
    for suffix in STATE_SUFFIXES:
        p = state_dir / f"forwarder-{name}{suffix}"
        if p.exists():
            p.unlink()
            removed.append(p)
    token = node.base_dir / "secrets" / f"{name}.token"
    if token.exists():
        kept.append(f"{token}: its secret (delete it if no longer needed)")
    return RemoveResult(path, forwarder, removed, kept)


def _unsafe_to_delete(src: Path, node: NodeConfig) -> str | None:
    """A source_dir that holds anything else of the node is never deleted wholesale."""
    precious = [node.datalog_dir, node.state_dir, node.targets_dir, node.base_dir,
                node.tokens_file]
    if node.store.path is not None:
        precious.append(node.store.path)
    for p in precious:
        if is_inside(p, src):
            return f"it contains {p}"
    if is_inside(src, node.datalog_dir):
        return "it is inside datalog_dir"
    return None


def _stop_forwarder(node: NodeConfig, name: str, state_dir: Path) -> str:
    """Under supervisord: reload (the target file is gone, so its group is stopped and
    removed); under systemd the same through systemctl. Whatever still holds its
    instance lock then (a forwarder started by hand, an orphan) is stopped by its pid."""
    from fanout.supervise import control, orphans
    from fanout.supervise.paths import SupervisePaths
    from fanout.supervise.rpc import Unreachable

    said = "no forwarder was running"
    if node.manager == "systemd":
        from fanout.supervise.systemd import SystemdError, SystemdManager

        with contextlib.suppress(SystemdError):
            res = SystemdManager().reload(node.source)
            if f"forwarder-{name}" in res.removed:
                said = f"forwarder-{name} stopped and removed from fanout@{node.id}.target"
    elif SupervisePaths.of(node).socket.exists():
        with contextlib.suppress(Unreachable):
            res = control.reload(node.source)
            if f"forwarder-{name}" in res.removed:
                said = f"forwarder-{name} stopped and removed from supervisord"
    h = holder(lock_path(state_dir, f"forwarder-{name}"))
    if h is not None:
        killed = orphans.stop([h.pid])
        said = f"forwarder {h} stopped" + (" (killed after the timeout)" if killed else "")
    return said


def _wait_distributor_drops(node: NodeConfig, name: str,
                            timeout: float = DISTRIBUTOR_WAIT) -> None:
    """Make a running distributor re-read forwarders.d/ now and wait until it no longer
    links for ``name``, so nothing is linked into the directory about to be deleted."""
    h = holder(lock_path(node.state_dir, "distributor"))
    if h is None:
        return
    state = distributor_state_path(node.state_dir)
    asked = time.time()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(h.pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            st = DistributorState.read(state)
            if state.stat().st_mtime > asked and st is not None and name not in st.targets:
                return
        time.sleep(0.1)


def node_history(config: Path) -> int:
    """The node's last log tick as its state file last said (0: none, or never ran)."""
    node = load_node_config(config)
    st = NodeState.read(node_state_path(node.state_dir))
    return max(0, st.last_log_tick) if st is not None else 0
