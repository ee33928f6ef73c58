"""``fanout.yaml``: the node's configuration, validated into a frozen dataclass at load."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fanout.confload import Section, read_yaml

# DESIGN.md says [A-Za-z0-9_.] but its own example id is "paris-1"; a hyphen is
# unambiguous in file names because the seq before it has a fixed 20 digits.
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULT_MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # "sqlite" | "memory"
    path: Path | None


@dataclass(frozen=True)
class BootstrapFrom:
    """A memory node's seed: re-sync from it at every start, then replicate as usual."""

    url: str
    token_file: Path
    timeout: float = 120.0  # give up (exit non-zero) if the seed cannot be read by then


@dataclass(frozen=True)
class NodeConfig:
    source: Path  # the fanout.yaml this came from
    id: str
    host: str
    port: int
    store: StoreConfig
    datalog_dir: Path
    state_dir: Path
    targets_dir: Path
    tokens_file: Path
    log_remote_changes: bool = False
    max_body_size: int = DEFAULT_MAX_BODY
    group_commit: bool = True
    bootstrap_from: BootstrapFrom | None = None

    @property
    def base_dir(self) -> Path:
        return self.source.parent

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def parse_listen(sec: Section, key: str) -> tuple[str, int]:
    value = sec.string(key, required=True)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise sec.error(key, f"must be HOST:PORT with a port in 1..65535 (got {value!r})")
    return host.strip("[]"), int(port)


def load_node_config(path: Path) -> NodeConfig:
    path = Path(path).resolve()
    sec = Section(path, read_yaml(path))
    node_id = sec.string("id", required=True)
    if not ID_RE.match(node_id):
        raise sec.error("id", f"must be 1 to 64 of [A-Za-z0-9_.-] (got {node_id!r})")
    host, port = parse_listen(sec, "listen")
    st = sec.section("store")
    kind = st.choice("type", ("sqlite", "memory"), default="sqlite")
    store_path = st.path("path", "data/store.sqlite" if kind == "sqlite" else None)
    if kind == "memory" and "path" in st.data:
        raise st.error("path", "the memory store keeps no data file; remove this key")
    st.finish()
    cfg = NodeConfig(
        source=path,
        id=node_id,
        host=host,
        port=port,
        store=StoreConfig(kind, store_path),
        datalog_dir=sec.path("datalog_dir", "data/datalog"),  # type: ignore[arg-type]
        state_dir=sec.path("state_dir", "data/state"),  # type: ignore[arg-type]
        targets_dir=sec.path("targets_dir", "forwarders.d"),  # type: ignore[arg-type]
        tokens_file=sec.path("tokens_file", "secrets/tokens.yaml"),  # type: ignore[arg-type]
        log_remote_changes=sec.boolean("log_remote_changes", False),
        max_body_size=sec.integer("max_body_size", DEFAULT_MAX_BODY, minimum=1024),
        group_commit=sec.boolean("group_commit", True),
        bootstrap_from=_bootstrap_from(sec, kind),
    )
    sec.finish()
    if cfg.state_dir == cfg.datalog_dir:
        raise sec.error("state_dir", f"must differ from datalog_dir ({cfg.datalog_dir})")
    return cfg


def _bootstrap_from(sec: Section, store_kind: str) -> BootstrapFrom | None:
    if sec.data.get("bootstrap_from") is None:
        sec.used.add("bootstrap_from")
        return None
    b = sec.section("bootstrap_from")
    if store_kind != "memory":
        raise sec.error("bootstrap_from", "only a memory store re-syncs at start "
                                          "(a sqlite store keeps its data)")
    url = b.string("url", required=True)
    if not url.startswith(("http://", "https://")):
        raise b.error("url", f"must be an http(s) URL (got {url!r})")
    result = BootstrapFrom(url.rstrip("/"), b.path("token_file", required=True),  # type: ignore[arg-type]
                           b.number("timeout", 120.0, minimum=1.0))
    b.finish()
    return result
