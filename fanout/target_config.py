"""``forwarders.d/<target>.yaml``: one target, validated into a frozen dataclass at load.

The distributor reads these files too (``source_dir`` and ``retention``), so adding a
target is adding a file.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout.config import NodeConfig, load_node_config
from fanout.confload import Section, read_yaml
from fanout.errors import ConfigError
from fanout.ids import ID_RE
from fanout.secretfile import check_private, read_token_file
from fanout.targetcheck import check_target, name_problem
from fanout.tlsconfig import NO_CLIENT_TLS, ClientTLS, client_tls

SINK_TYPES = ("fanout", "warp10")
ON_REJECT = ("stop", "quarantine")
MAX_LINGER = 1.0  # seconds; see TargetConfig.linger


@dataclass(frozen=True)
class Retention:
    max_files: int = 0  # 0: unlimited
    max_bytes: int = 0


@dataclass(frozen=True)
class SinkConfig:
    type: str
    endpoint: str
    token_file: Path | None
    token: str | None = field(default=None, repr=False)  # inline secret; never printed
    compress: bool = False
    tls: ClientTLS = NO_CLIENT_TLS  # https: CA to verify the target, our client certificate

    def secret(self) -> str:
        """The target's token, read at start (the file must be private)."""
        if self.token is not None:
            return self.token
        assert self.token_file is not None
        return read_token_file(self.token_file)


@dataclass(frozen=True)
class TargetConfig:
    source: Path
    target: str
    source_dir: Path
    state_dir: Path
    sink: SinkConfig
    ignore_origins: tuple[str, ...] = ()
    chunk_size: int = 1048576
    # When files arrive back to back (closer together than this), the first waits up to
    # this long for the next ones to share its request: one request per file at 100
    # files/s cost the forwarder and the target more CPU than the data. 0: never wait.
    linger: float = 0.015
    connect_timeout: float = 10.0
    request_timeout: float = 300.0
    max_connect_retries: int = 0
    retry_min: float = 0.5
    retry_max: float = 30.0
    adaptive_polling: bool = True
    poll_interval: float = 1.0
    on_reject: str = "stop"
    retention: Retention = Retention()
    auto_resync: bool = False
    auto_resync_retries: int = 3
    node_config: Path | None = None  # the local node's fanout.yaml (for auto_resync)

    @property
    def quarantine_dir(self) -> Path:
        return self.source_dir / "quarantine"

    @property
    def state_file(self) -> Path:
        return self.state_dir / f"forwarder-{self.target}.json"

    @property
    def pause_file(self) -> Path:
        """Exists while the operator has paused this target (``fanout pause``)."""
        return self.state_dir / f"forwarder-{self.target}.paused"


def _default(key: str) -> Any:
    """A key's default, from the dataclass: each default is written once, above."""
    return TargetConfig.__dataclass_fields__[key].default


def load_target_config(path: Path, name: str | None = None) -> TargetConfig:
    """Load one target file; ``name`` overrides the file stem that ``target`` must match
    (for validating a file under a temporary name before it is renamed into place)."""
    path = Path(path).resolve()
    stem = name or path.stem
    data = read_yaml(path)
    sec = Section(path, data)
    target = sec.string("target", required=True)
    problem = name_problem(target)
    if problem:
        raise sec.error("target", problem)
    if target != stem:
        raise sec.error("target", f"must match the file name {stem + '.yaml'!r} (got {target!r})")
    sk = sec.section("sink", required=True)
    kind = sk.choice("type", SINK_TYPES, default="fanout")
    endpoint = sk.string("endpoint", required=True)
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise sk.error("endpoint", f"must be an http(s) URL (got {endpoint!r})")
    token = sk.string("token")
    token_file = sk.path("token_file")
    if (token is None) == (token_file is None):
        raise sk.error("token_file", "give exactly one of token_file or token")
    if token is not None:
        check_private(path, "target file with an inline token")
    sink = SinkConfig(kind, endpoint.rstrip("/"), token_file, token,
                      sk.boolean("compress", False), client_tls(sk))
    if sink.tls != NO_CLIENT_TLS and url.scheme != "https":
        raise sk.error("tls", f"is set but the endpoint is not https:// (got {endpoint!r})")
    sk.finish()
    ret = sec.section("retention")
    retention = Retention(ret.integer("max_files", 0, minimum=0),
                          ret.integer("max_bytes", 0, minimum=0))
    ret.finish()
    cfg = TargetConfig(
        source=path,
        target=target,
        source_dir=sec.path("source_dir", f"../data/targets/{target}"),  # type: ignore[arg-type]
        state_dir=sec.path("state_dir", "../data/state"),  # type: ignore[arg-type]
        sink=sink,
        ignore_origins=tuple(sec.string_list("ignore_origins", check=ID_RE.match)),  # type: ignore[arg-type]
        chunk_size=sec.integer("chunk_size", _default("chunk_size"), minimum=1024),
        linger=sec.number("linger", _default("linger"), minimum=0.0),
        connect_timeout=sec.number("connect_timeout", _default("connect_timeout"), minimum=0.1),
        request_timeout=sec.number("request_timeout", _default("request_timeout"), minimum=0.1),
        max_connect_retries=sec.integer("max_connect_retries",
                                        _default("max_connect_retries"), minimum=0),
        retry_min=sec.number("retry_min", _default("retry_min"), minimum=0.001),
        retry_max=sec.number("retry_max", _default("retry_max"), minimum=0.001),
        adaptive_polling=sec.boolean("adaptive_polling", _default("adaptive_polling")),
        poll_interval=sec.number("poll_interval", _default("poll_interval"), minimum=0.01),
        on_reject=sec.choice("on_reject", ON_REJECT, default=_default("on_reject")),
        retention=retention,
        auto_resync=sec.boolean("auto_resync", _default("auto_resync")),
        auto_resync_retries=sec.integer("auto_resync_retries",
                                        _default("auto_resync_retries"), minimum=1),
        node_config=sec.path("node_config", "../fanout.yaml"),
    )
    sec.finish()
    if cfg.linger > MAX_LINGER:
        raise sec.error("linger", f"must be at most {MAX_LINGER} s (got {cfg.linger}): it is "
                        "added to the replication lag of every file that waits")
    if cfg.retry_max < cfg.retry_min:
        raise sec.error("retry_max", f"must be >= retry_min (got {cfg.retry_max})")
    return cfg


def target_files(targets_dir: Path) -> list[Path]:
    """The target files of a node, in name order (``*.yaml``; dotfiles ignored)."""
    if not targets_dir.is_dir():
        return []
    return sorted(p for p in targets_dir.glob("*.yaml") if not p.name.startswith("."))


def check_target_file(path: Path, node: NodeConfig | None = None) -> None:
    """Load ``forwarders.d/<t>.yaml`` and check it against its node (its ``node_config``,
    when that file exists) and its sibling files; ConfigError names the file and key."""
    cfg = load_target_config(path)
    if node is None and cfg.node_config is not None and cfg.node_config.is_file():
        node = load_node_config(cfg.node_config)
    siblings: dict[str, tuple[Path, str]] = {}
    for other in target_files(cfg.source.parent):
        if other.resolve() == cfg.source:
            continue
        with contextlib.suppress(ConfigError):
            o = load_target_config(other)
            siblings[o.target] = (o.source, o.sink.endpoint)
    check_target(cfg.source, cfg.target, cfg.sink.endpoint, cfg.source_dir, node, siblings)
