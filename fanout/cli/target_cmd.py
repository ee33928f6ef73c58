"""``fanout target add``: adding a target is adding a file to ``forwarders.d/``."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from fanout.cli.init_cmd import write_private
from fanout.config import load_node_config
from fanout.errors import ConfigError
from forwarder.config import load_target_config


def add_target(config: Path, name: str, endpoint: str, token: str | None,
               token_file: Path | None, sink: str = "fanout", source_dir: str | None = None,
               force: bool = False) -> Path:
    """Write and validate ``forwarders.d/<name>.yaml``.

    A token given on the command line goes to ``secrets/<name>.token`` (mode 0600) and the
    target file only points at it, so target files can be shown and shared safely.
    """
    node = load_node_config(config)
    node.targets_dir.mkdir(parents=True, exist_ok=True)
    path = node.targets_dir / f"{name}.yaml"
    if path.exists() and not force:
        raise ConfigError(path, None, "already exists", hint="pass --force to replace it")
    if (token is None) == (token_file is None):
        raise ConfigError(path, "sink.token_file", "give exactly one of --token or --token-file")
    if token is not None:
        secrets_dir = node.base_dir / "secrets"
        secrets_dir.mkdir(mode=0o700, exist_ok=True)
        token_file = secrets_dir / f"{name}.token"
        write_private(token_file, token + "\n")
    assert token_file is not None
    token_file = Path(token_file).resolve()
    data = {
        "target": name,
        "source_dir": os.path.relpath(
            Path(source_dir).resolve() if source_dir else node.datalog_dir.parent
            / "targets" / name, node.targets_dir),
        "state_dir": os.path.relpath(node.state_dir, node.targets_dir),
        "sink": {"type": sink, "endpoint": endpoint,
                 "token_file": os.path.relpath(token_file, node.targets_dir)},
    }
    tmp = path.with_name(f".{path.name}.tmp")
    write_private(tmp, yaml.safe_dump(data, sort_keys=False))
    try:
        load_target_config(tmp, name=name).sink.secret()
    except ConfigError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(path, exc.key, exc.problem, exc.hint) from None
    os.replace(tmp, path)
    return path
