"""``fanout init``: a node directory with its config and a private tokens file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from fanout.errors import ConfigError
from fanout.ids import ID_RE, ID_RULE

# ``admin`` adds to ``replicate`` the right to replace this node's whole store
# (``restore?replace=true``): give it only to a forwarder that may do that (auto_resync,
# ``fanout bootstrap --replace``); every other upstream gets ``replicator``.
TOKENS = {"ingest": ["write"], "reader": ["read"], "replicator": ["replicate"],
          "admin": ["replicate", "admin"]}


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the first byte: never briefly world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def new_secret() -> str:
    """A random secret that never starts with ``-``: ``token_urlsafe`` does one time in 64,
    and every command line taking it as an option value (``--token -abc``) would read it
    as an option."""
    while True:
        value = secrets.token_urlsafe(32)
        if not value.startswith("-"):
            return value


def init_node(directory: Path, node_id: str, listen: str, store: str = "sqlite",
              force: bool = False) -> Path:
    directory = Path(directory)
    cfg_path = directory / "fanout.yaml"
    if not ID_RE.match(node_id):
        raise ConfigError(cfg_path, "id", f"must be {ID_RULE} (got {node_id!r})")
    if cfg_path.exists() and not force:
        raise ConfigError(cfg_path, None, "already exists; refusing to overwrite it",
                          hint="choose another DIR, or pass --force")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "forwarders.d").mkdir(exist_ok=True)
    # The data tree exists from the start: systemd's ReadWritePaths= names it, and a unit
    # naming a missing path fails with 226/NAMESPACE before the node could create it.
    (directory / "data").mkdir(exist_ok=True)
    sec = directory / "secrets"
    sec.mkdir(mode=0o700, exist_ok=True)
    os.chmod(sec, 0o700)
    config = {
        "id": node_id,
        "listen": listen,
        "store": {"type": "sqlite", "path": "data/store.sqlite"}
        if store == "sqlite" else {"type": "memory"},
        "datalog_dir": "data/datalog",
        "state_dir": "data/state",
        "targets_dir": "forwarders.d",
        "log_remote_changes": False,
        "tokens_file": "secrets/tokens.yaml",
    }
    tokens = {tid: {"secret": new_secret(), "permissions": perms}
              for tid, perms in TOKENS.items()}
    write_private(sec / "tokens.yaml", yaml.safe_dump(tokens, sort_keys=False))
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return cfg_path
