"""``fanout target add|list|remove``: adding a target is adding a file to ``forwarders.d/``.

Every check runs before anything is written (the name against the id grammar before any
path is built from it, the endpoint against the node and its other targets, the token),
and the files are then written under dot-names and renamed into place, so a refused or
failed ``add`` leaves the filesystem as it found it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import yaml

from fanout.cli.init_cmd import write_private
from fanout.config import NodeConfig, load_node_config
from fanout.confload import check_private
from fanout.errors import ConfigError
from fanout.targetcheck import check_target, name_problem
from forwarder.config import SinkConfig, load_target_config, target_files


def _siblings(node: NodeConfig) -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    for path in target_files(node.targets_dir):
        with contextlib.suppress(ConfigError):
            t = load_target_config(path)
            found[t.target] = (t.source, t.sink.endpoint)
    return found


def add_target(config: Path, name: str, endpoint: str, token: str | None,
               token_file: Path | None, sink: str = "fanout", source_dir: str | None = None,
               force: bool = False) -> Path:
    """Write and validate ``forwarders.d/<name>.yaml``.

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
    data = {
        "target": name,
        "source_dir": os.path.relpath(src, node.targets_dir),
        "state_dir": os.path.relpath(node.state_dir, node.targets_dir),
        "sink": {"type": sink, "endpoint": endpoint,
                 "token_file": os.path.relpath(final_token, node.targets_dir)},
    }
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
            check = dict(data, sink=dict(data["sink"], token_file=os.path.relpath(
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
